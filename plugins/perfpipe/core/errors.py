"""Exceptions that separate bad input from infrastructure failures and performance verdicts."""


class PerfpipeError(Exception):
    """Base class of perfpipe's own errors."""


class InputError(PerfpipeError):
    """Bad params, target, threshold or script: refused before any load is sent (CLI exit 2)."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


class TargetNotAllowedError(InputError):
    """The target host is outside the allowlist."""


class InfrastructureError(PerfpipeError):
    """k6 crashed, InfluxDB unreachable, ... : never reported as a performance verdict (CLI exit 2)."""
