"""perfpipe.app.targets.validate_target: refusals added after review name their field and leak no secret."""

from __future__ import annotations

import pytest

from perfpipe.core.errors import InputError
from perfpipe.app.targets import validate_target


def test_credentials_in_base_url_are_refused():
    with pytest.raises(InputError) as exc:
        validate_target({"base_url": "http://user:secret@127.0.0.1:8090", "requests": [{"path": "/"}]}, "t", "t")
    assert exc.value.field == "t.base_url" and "secret" not in str(exc.value)


def test_target_gates_are_validated_with_their_field():
    with pytest.raises(InputError) as exc:
        validate_target({"base_url": "http://127.0.0.1:1", "requests": [{"path": "/"}],
                         "gates": {"load": {"p95_ms": {"op": "~", "threshold": 1}}}}, "t", "targets.t")
    assert exc.value.field == "targets.t.gates.load.p95_ms.op"
    with pytest.raises(InputError) as exc:
        validate_target({"base_url": "http://127.0.0.1:1", "requests": [{"path": "/"}],
                         "gates": {"lod": {}}}, "t", "targets.t")
    assert exc.value.field == "targets.t.gates.lod"
