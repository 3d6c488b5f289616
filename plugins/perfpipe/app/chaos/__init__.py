"""Chaos fault injection for the chaos test: validated specs, injectors, a holder process that always restores.

    from perfpipe.app.chaos import parse_chaos, FaultHold, restore_leftovers
    spec = parse_chaos("demo", target["chaos"])          # InputError naming the field, before any load
    restore_leftovers()                                   # undo faults of holders that died (SIGKILL, crash)
    hold = FaultHold.start(spec, "cache_failure", hold_s=60, on_event=log_event)
    ...                                                   # measure while the fault is held
    info = hold.wait()                                    # or hold.restore() early (on_kill / finally)
"""

from perfpipe.app.chaos.holder import FaultHold, restore_leftovers
from perfpipe.app.chaos.injectors import ChaosError
from perfpipe.app.chaos.spec import ChaosSpec, ComponentSpec, ScenarioSpec, parse_chaos

__all__ = ["ChaosError", "ChaosSpec", "ComponentSpec", "FaultHold", "ScenarioSpec", "parse_chaos",
           "restore_leftovers"]
