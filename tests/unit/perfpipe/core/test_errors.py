"""perfpipe.core.errors: input errors name their field; infrastructure errors are never input errors."""

from __future__ import annotations

from perfpipe.core.errors import InfrastructureError, InputError, PerfpipeError, TargetNotAllowedError


def test_an_input_error_leads_with_its_field():
    error = InputError("overrides.vus", "expected an integer")
    assert (error.field, str(error)) == ("overrides.vus", "overrides.vus: expected an integer")


def test_the_three_kinds_are_told_apart_by_type():
    allowed = TargetNotAllowedError("target.base_url", "10.0.0.5 is outside the allowlist")
    assert isinstance(allowed, InputError) and allowed.field == "target.base_url"  # exit 2, refused before load
    assert not isinstance(InfrastructureError("InfluxDB down"), InputError)
    assert all(issubclass(e, PerfpipeError) for e in (InputError, TargetNotAllowedError, InfrastructureError))
