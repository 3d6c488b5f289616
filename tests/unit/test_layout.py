"""The unit tests mirror the source: tests/unit/perfpipe/<package path>/test_<module>[_<aspect>].py for
plugins/perfpipe/<package path>/<module>.py (demo/ and bench/ alike), and every test folder is a package.

Why packages: pytest runs in its default (prepend) import mode, so a test file's module name comes from its
__init__.py chain ("unit.perfpipe.app.test_config"). A test folder without __init__.py would be imported by its
bare name: tests/unit/perfpipe/ would shadow the real perfpipe package, and two test_k6.py files would clash.
(--import-mode=importlib is not an option: tests/integration import `conftest` by name, which importlib mode
would load a second time, with a second session directory and other ports.)
"""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
UNIT = TESTS / "unit"

# Mirrored trees: tests/unit/<key> tests the source folder <value>.
MIRRORS = {"perfpipe": ROOT / "plugins" / "perfpipe", "demo": ROOT / "demo", "bench": ROOT / "bench"}

# Tests of the package as a whole, named for what they check rather than a module.
WHOLE_PACKAGE_TESTS = {"perfpipe/test_layers.py"}

def _test_files() -> list[Path]:
    return sorted(p for p in TESTS.rglob("test_*.py") if "__pycache__" not in p.parts)


def test_every_test_folder_is_a_package():
    folders = {p.parent for p in _test_files()} | {p.parent for p in TESTS.rglob("conftest.py")}
    missing = sorted(str(f.relative_to(ROOT)) for f in folders
                     if f != TESTS and not (f / "__init__.py").is_file())
    assert missing == [], f"add an empty __init__.py to: {missing}"


def test_no_flat_unit_test_files():
    flat = sorted(p.name for p in UNIT.glob("test_*.py") if p.name != Path(__file__).name)
    assert flat == [], f"move these under tests/unit/<package path>/: {flat}"


def _modules(folder: Path) -> set[str]:
    return {p.stem for p in folder.glob("*.py") if p.stem != "__init__"} | \
           {p.name for p in folder.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}


def test_every_unit_test_file_names_the_module_it_tests():
    strays = []
    for path in _test_files():
        relative = path.relative_to(UNIT) if UNIT in path.parents else None
        if relative is None or len(relative.parts) < 2 or relative.as_posix() in WHOLE_PACKAGE_TESTS:
            continue  # integration tests, this file and the whole-package tests
        source = MIRRORS[relative.parts[0]].joinpath(*relative.parts[1:-1])
        name = path.stem.removeprefix("test_")
        if not source.is_dir() or not any(name == m or name.startswith(m + "_") for m in _modules(source)):
            strays.append(str(path.relative_to(ROOT)))
    assert strays == [], f"no module of that name in the mirrored source folder: {strays}"


def test_every_library_module_has_unit_tests():
    package = MIRRORS["perfpipe"]
    untested = set()
    for module in package.rglob("*.py"):
        relative = module.relative_to(package)
        if module.name == "__init__.py" and relative.parent.name != "cli":  # a package's module is its __init__
            continue
        stem = relative.parent.name if module.name == "__init__.py" else module.stem
        folder = UNIT / "perfpipe" / (relative.parent.parent if module.name == "__init__.py" else relative.parent)
        if not any(folder.glob(f"test_{stem}.py")) and not any(folder.glob(f"test_{stem}_*.py")) \
                and not (folder / stem).is_dir():
            untested.add(str(relative))
    assert untested == set(), f"no unit tests for: {sorted(untested)}"
