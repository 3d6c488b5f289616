"""perfpipe's layers, read from the source with ast: core <- app <- entry.

- perfpipe.core imports nothing from perfpipe.app or perfpipe.entry (it stands on its own, like a provider);
- perfpipe.app imports nothing from perfpipe.entry;
- no import cycles among perfpipe's modules (function-local imports count: they only postpone the cycle);
- every function-local import says why it is local, in a comment on its line or the line above.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[3] / "plugins" / "perfpipe"
LAYERS = ("core", "app", "entry")  # each may import only from the layers before it
ROOT_MODULE = "perfpipe"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))
                            if "__pycache__" not in p.parts}


def _resolve(module: str, names: list[str]) -> set[str]:
    """The perfpipe modules an import statement depends on: `from a.b import c` is a.b.c when that is a module
    (the package a.b itself only when a name is not a submodule: its __init__ runs either way, as a parent)."""
    submodules = {f"{module}.{name}" for name in names if f"{module}.{name}" in MODULES}
    if module in MODULES and (len(submodules) < len(names) or not names):
        submodules.add(module)
    return submodules


def _imports(path: Path) -> list[tuple[ast.stmt, set[str], bool]]:
    """(statement, perfpipe modules it imports, is it inside a function) for every import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            local = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                out.append((child, set().union(*(_resolve(a.name, []) for a in child.names)), in_function))
            elif isinstance(child, ast.ImportFrom):
                assert child.level == 0, f"{path}:{child.lineno}: relative import (use the full perfpipe.* name)"
                out.append((child, _resolve(child.module or "", [a.name for a in child.names]), in_function))
            visit(child, local)

    visit(tree, False)
    return out


IMPORTS = {name: _imports(path) for name, path in MODULES.items()}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def test_the_modules_are_found():
    assert {"perfpipe.core.k6.run", "perfpipe.app.stage", "perfpipe.entry.dag_factory"} <= set(MODULES)


def test_each_layer_imports_only_the_layers_below_it():
    wrong = []
    for module, statements in IMPORTS.items():
        layer = _layer(module)
        if layer is None:
            continue
        allowed = set(LAYERS[:LAYERS.index(layer) + 1])
        for statement, imported, _ in statements:
            for target in imported:
                if _layer(target) is not None and _layer(target) not in allowed:
                    wrong.append(f"{MODULES[module].relative_to(PACKAGE.parent)}:{statement.lineno} "
                                 f"({layer}) imports {target}")
    assert wrong == []


def _cycles() -> list[list[str]]:
    graph = {m: sorted({t for _, imported, _ in statements for t in imported if t != m})
             for m, statements in IMPORTS.items()}
    cycles, state, stack = [], {}, []

    def walk(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                walk(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            walk(node)
    return cycles


def test_no_import_cycles():
    assert [" -> ".join(c) for c in _cycles()] == []


def test_every_function_local_import_says_why():
    """A comment on the import's lines or just above it; a run of imports (blank lines at most between) shares the
    one above its first."""
    silent = []
    for module, statements in IMPORTS.items():
        lines = MODULES[module].read_text(encoding="utf-8").splitlines()
        explained_up_to = -1  # the last line of the latest explained function-local import (-1: none yet)
        for statement, _, in_function in sorted(statements, key=lambda s: s[0].lineno):
            if not in_function:
                continue
            first, last = statement.lineno - 1, (statement.end_lineno or statement.lineno) - 1
            above = lines[first - 1].strip() if first > 0 else ""
            if (above.startswith("#") or any("#" in lines[i] for i in range(first, last + 1))
                    or (explained_up_to >= 0 and all(not line.strip() for line in lines[explained_up_to + 1:first]))):
                explained_up_to = last
            else:
                silent.append(f"{MODULES[module].relative_to(PACKAGE.parent)}:{statement.lineno}: "
                              f"{lines[first].strip()}")
    assert silent == [], "say why each import is function-local (a comment on its line or the line above)"


def test_the_checks_see_what_they_check(tmp_path):
    """The helpers read function-local imports and cycles as meant (on a tiny tree, not perfpipe's)."""
    source = tmp_path / "m.py"
    source.write_text("import os\n\ndef f():\n    # why\n    from perfpipe.core import paths\n"
                      "    import perfpipe.core.errors  # why\n")
    found = _imports(source)
    assert [(s.lineno, sorted(i), local) for s, i, local in found] == [
        (1, [], False), (5, ["perfpipe.core.paths"], True), (6, ["perfpipe.core.errors"], True)]
