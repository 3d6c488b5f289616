"""What the CLI's unit tests share: main() with its stdout in a buffer and no run allowed to start."""

from __future__ import annotations

import io

import pytest

from perfpipe.entry.cli import local, output


@pytest.fixture
def out(monkeypatch) -> io.StringIO:
    """main()'s stdout as a buffer (the process's own fds untouched); loading a DAG fails the test: these
    inputs must be refused, or answered, before any run starts."""
    buffer = io.StringIO()
    monkeypatch.setattr(output, "reserve_stdout", lambda: buffer)
    monkeypatch.setattr(local, "load_dag", lambda dag_id: pytest.fail("no run may start here"))
    return buffer
