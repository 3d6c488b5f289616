"""perfpipe.core.model.overrides: what `--set`, the `overrides` Param and the REST API's conf accept."""

from __future__ import annotations

import pytest

from perfpipe.core.errors import InputError
from perfpipe.core.model.base import END
from perfpipe.core.model.overrides import (HARD_MAX_VUS, overrides_json_schema, split_key, validate_overrides)


def _refusal(document) -> InputError:
    with pytest.raises(InputError) as exc:
        validate_overrides(document)
    return exc.value


def test_the_issue_example_names_the_key_and_the_known_parts():
    assert str(_refusal({"thresholds.p95_ms.bogus": 1})) == \
        "overrides.thresholds.p95_ms.bogus: unknown key (known: op, threshold, warn, weight, key, baseline_runs)"


def test_an_unknown_top_level_key_lists_the_known_keys_and_how_to_scope():
    message = str(_refusal({"vu": 3}))
    assert message.startswith("overrides.vu: unknown key (known: executor, vus, duration, stages,")
    assert "'load.vus'" in message


def test_every_problem_of_a_document_at_once():
    error = _refusal({"vus": 0, "duration": "5d", "thresholds.p95_ms.weight": 0, "load.bogus": 1})
    lines = str(error).splitlines()
    assert [line.split(":")[0] for line in lines] == ["overrides.vus", "overrides.duration",
                                                      "overrides.thresholds.p95_ms.weight", "overrides.load.bogus"]
    assert error.field == "overrides.vus"


@pytest.mark.parametrize("document, expected", [
    ({"vus": 2.0}, {"vus": 2}),  # JSON has one number type
    ({"load.vus": 10, "duration": 30}, {"load.vus": 10, "duration": 30}),
    ({"thresholds.p95_ms.weight": 2}, {"thresholds.p95_ms.weight": 2}),
    ({"thresholds.p95_ms": {"threshold": 300, "key": True}}, {"thresholds.p95_ms": {"threshold": 300, "key": True}}),
    ({"thresholds.p95_ms": "off"}, {"thresholds.p95_ms": "off"}),
    ({"thresholds.p95_ms.warn": None}, {"thresholds.p95_ms.warn": None}),
    ({"stages": [{"duration": "5s", "target": 3.0}]}, {"stages": [{"duration": "5s", "target": 3}]}),
    (None, {}),
])
def test_accepted_documents_come_back_normalised(document, expected):
    assert validate_overrides(document) == expected


@pytest.mark.parametrize("document, field", [
    ({"vus": HARD_MAX_VUS + 1}, "overrides.vus"),
    ({"vus": True}, "overrides.vus"),
    ({"think_time_s": float("nan")}, "overrides.think_time_s"),  # not JSON, but YAML and Python can say it
    ({"thresholds.p95_ms.threshold": float("inf")}, "overrides.thresholds.p95_ms.threshold"),
    ({"thresholds.p95_ms.op": "=="}, "overrides.thresholds.p95_ms.op"),
    ({"thresholds.p95_ms.threshold": None}, "overrides.thresholds.p95_ms.threshold"),  # only warn may be null
    ({"thresholds.p95 ms": 1}, "overrides.thresholds.p95 ms"),
    ({"stages": [{"duration": "5s"}]}, "overrides.stages[0].target"),
    ({"stages": []}, "overrides.stages"),
    ({"chaos.phases": {"baseline": "5s", "inject": "5s"}}, "overrides.chaos.phases.recovery"),
    ({"": 1}, "overrides."),
])
def test_refused_documents_name_the_field(document, field):
    assert _refusal(document).field == field


def test_a_document_that_is_not_a_mapping_is_refused():
    assert str(_refusal(["vus", 3])) == "overrides: expected a mapping of key -> value, got ['vus', 3]"


@pytest.mark.parametrize("key, expected", [
    ("load.vus", ("load", ["vus"])), ("thresholds.p95_ms.op", (None, ["thresholds", "p95_ms", "op"])),
    ("chaos.thresholds.p95_ms", ("chaos", ["thresholds", "p95_ms"])), ("load", (None, ["load"])),
])
def test_split_key(key, expected):
    assert split_key(key) == expected


def test_the_json_schema_refuses_keys_outside_its_patterns():
    schema = overrides_json_schema()
    assert schema["additionalProperties"] is False
    assert all(pattern.startswith("^") and pattern.endswith(END) for pattern in schema["patternProperties"])
    # the form's description comes from the model and names the keys a user can set
    assert "thresholds.<check>" in schema["description"]
