"""The demo API's command line: loopback only, field-named errors, the memory/PostgreSQL worker rule."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from demo import app  # noqa: E402


def test_defaults_keep_the_old_stand_alone_target():
    opts = app.parse_args([])
    assert (opts.host, opts.port, opts.workers, opts.redis_url, opts.database_url) == ("127.0.0.1", 8090, 1, None, None)


def test_with_a_database_two_workers_by_default():
    opts = app.parse_args(["--database-url", "postgresql://demo@127.0.0.1:5443/demo"])
    assert opts.workers == 2


@pytest.mark.parametrize("argv,needle", [
    (["--workers", "2"], "--workers > 1 needs --database-url"),
    (["--workers", "0", "--database-url", "postgresql://demo@127.0.0.1/demo"], "--workers must be 1..64"),
    (["--error-rate", "2"], "--error-rate must be within 0..1"),
    (["--max-concurrency", "-1"], "--max-concurrency must be >= 0"),
    (["--cache-ttl-s", "0"], "--cache-ttl-s must be 1..86400"),
])
def test_bad_numbers_are_refused_naming_the_flag(argv, needle, capsys):
    with pytest.raises(SystemExit):
        app.parse_args(argv)
    assert needle in capsys.readouterr().err


@pytest.mark.parametrize("argv,needle", [
    (["--redis-url", "redis://10.1.2.3:6379/0"], "refusing --redis-url '10.1.2.3'"),
    (["--database-url", "postgresql://demo@db.example.com/demo"], "refusing --database-url 'db.example.com'"),
    (["--database-url", "mysql://127.0.0.1/demo"], "--database-url must start with postgresql:// or postgres://"),
    (["--database-url", "postgresql://demo:secret@127.0.0.1/demo"], "--database-url must not carry a password"),
])
def test_backends_must_be_loopback_and_passwordless(argv, needle):
    with pytest.raises(SystemExit) as err:
        app.parse_args(argv)
    assert needle in str(err.value)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com", ""])
def test_non_loopback_bind_is_refused(host):
    with pytest.raises(SystemExit) as err:
        app.bind_address(app.parse_args(["--host", host]))
    assert "refusing --host" in str(err.value)


def test_container_mode_only_inside_a_container(monkeypatch, capsys):
    monkeypatch.setattr(app, "in_container", lambda: False)
    with pytest.raises(SystemExit):
        app.parse_args(["--container", "--host", "0.0.0.0"])
    assert "--container is only allowed inside a container" in capsys.readouterr().err
    monkeypatch.setattr(app, "in_container", lambda: True)
    opts = app.parse_args(["--container", "--host", "0.0.0.0", "--database-url", "postgresql://demo@postgres/demo"])
    assert app.bind_address(opts)[1] == "0.0.0.0"
