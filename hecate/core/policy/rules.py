"""The policy's judgements of one reading: is it critical evidence (`is_critical`, with the
charge-drain estimate), and is power back for good (`startup_gate`, `charge_gate`). Pure.

`hecate.core.policy.step.step` applies them over time; `hecate status` uses `pending_startup_wait`.
"""

from __future__ import annotations

from hecate.core.policy.values import PolicyParams, PolicyState
from hecate.core.readings import CommError, Poll, PowerSource, UpsReading

# Seconds of charge history needed before a drain rate is trusted.
DRAIN_MIN_SPAN_S = 60.0


def is_critical(  # noqa: PLR0911  (one return per rule reads best)
    reading: UpsReading,
    threshold_s: float,
    min_charge_on_battery: float = 0.0,
    drain_runtime_s: float | None = None,
) -> tuple[bool, str]:
    """Whether this single reading on battery is critical evidence, and why.

    FSD on battery counts here (it matters when `honor_fsd` is off); FSD as a command is handled
    by `step`. During CAL only LB and FSD count.
    """
    if not reading.on_battery:
        return False, "on mains"
    if reading.forced_shutdown:
        return True, "FSD (forced shutdown) flag set"
    if reading.low_battery:
        return True, "LB (low battery) flag set"
    if reading.calibrating:
        return False, "runtime calibration (CAL): only LB and FSD count"
    if reading.runtime_s is not None:
        if reading.runtime_s < threshold_s:
            return True, f"runtime {reading.runtime_s:.0f}s < threshold {threshold_s:.0f}s"
        return False, f"runtime {reading.runtime_s:.0f}s >= threshold {threshold_s:.0f}s"
    charge = reading.charge_pct
    if charge is not None and charge < min_charge_on_battery:
        return True, (
            f"runtime unknown, charge {charge:.0f}% < min_charge_on_battery "
            f"{min_charge_on_battery:.0f}%"
        )
    if drain_runtime_s is not None and drain_runtime_s < threshold_s:
        return True, (
            f"runtime unknown, charge drain gives {drain_runtime_s:.0f}s < threshold "
            f"{threshold_s:.0f}s"
        )
    if charge is None:
        return False, "on battery, runtime and charge unknown (only LB/FSD can trigger)"
    return False, f"on battery, runtime unknown, charge {charge:.0f}%"


def drain_runtime(ref: tuple[float, float] | None, charge: float | None, t: float) -> float | None:
    """Seconds left at the charge's observed drain rate since the episode's first reading."""
    if ref is None or charge is None:
        return None
    t0, c0 = ref
    if t - t0 < DRAIN_MIN_SPAN_S or c0 - charge < 1.0:
        return None
    rate = (c0 - charge) / (t - t0)
    return charge / rate


def startup_gate(
    reading: UpsReading, mains_since: float, t: float, params: PolicyParams
) -> tuple[bool, str]:
    """Whether power is back for good; the reason says what was met, or what it still waits for."""
    stable = t - mains_since
    if reading.power_source is not PowerSource.LINE:
        return False, "mains to return"
    if reading.forced_shutdown:
        return False, "the UPS's FSD flag to clear"
    if stable < params.power_stable_s:
        return False, f"mains stable {stable:.0f}s < {params.power_stable_s:.0f}s"
    ok, why = charge_gate(reading, stable, params)
    if not ok:
        return False, why
    return True, f"mains stable {stable:.0f}s, {why}"


def charge_gate(reading: UpsReading, stable_s: float, params: PolicyParams) -> tuple[bool, str]:
    """The battery part of the startup gate, with the fallback for an unreadable charge."""
    charge, runtime = reading.charge_pct, reading.runtime_s
    if charge is not None:
        if charge < params.min_charge_pct:
            return False, f"charge {charge:.0f}% < {params.min_charge_pct:.0f}%"
        return True, f"charge {charge:.0f}%"
    if params.min_charge_pct <= 0:
        return True, "charge unknown (no minimum)"
    if runtime is not None and runtime >= params.threshold_s:
        return True, (
            f"charge unknown, runtime {runtime:.0f}s >= threshold {params.threshold_s:.0f}s"
        )
    waited = stable_s - params.power_stable_s
    if waited >= params.charge_unknown_wait_s:
        return True, (
            f"charge unknown, mains stable {params.charge_unknown_wait_s:.0f}s beyond "
            "power_stable_seconds (charge_unknown_wait_seconds)"
        )
    left = params.charge_unknown_wait_s - waited
    return False, (
        f"charge unknown: runtime >= {params.threshold_s:.0f}s on mains, or {left:.0f}s more of "
        "stable mains (charge_unknown_wait_seconds)"
    )


def pending_startup_wait(reading: Poll, params: PolicyParams) -> str:
    """What a pending startup waits for, judged from one reading (for `hecate status`).

    Mains stability is measured by the daemon over time; one reading can only tell the rest.
    """
    if isinstance(reading, CommError):
        return f"the UPS to answer ({reading.message})"
    source = reading.power_source
    if source is PowerSource.BATTERY:
        return "mains to return (the UPS is on battery)"
    if source is not PowerSource.LINE:
        shown = " ".join(sorted(reading.status)) or "empty"
        return f"a status that says the UPS is on line (now {shown})"
    if reading.forced_shutdown:
        return "the UPS's FSD flag to clear"
    ok, why = charge_gate(reading, params.power_stable_s, params)
    stable = f"mains seen stable for {params.power_stable_s:.0f}s by the daemon"
    if ok:
        return f"{stable} ({why}: met)"
    return f"{stable} and {why}"


def trace_active(s: PolicyState) -> bool:
    """Whether the polls are recorded as an outage trace right now."""
    episode = s.outage_start is not None  # an outage episode, mains flickers included
    return episode or s.on_battery or s.latched or s.startup_pending or s.critical_count > 0


def own_ups(policy: PolicyState, now: float, params: PolicyParams) -> tuple[bool, str]:
    """Whether this UPS is back on mains and stable, as peers are told (their coordinator's
    startup waits for it after this instance's trigger shut the cluster down)."""
    if policy.comm_lost:
        return False, "the UPS does not answer"
    if policy.on_battery or policy.mains_since is None:
        return False, "mains to return"
    if policy.startup_pending:
        return False, policy.startup_wait or "the startup gate"
    stable = now - policy.mains_since
    if stable < params.power_stable_s:
        return False, f"mains stable {stable:.0f}s < {params.power_stable_s:.0f}s"
    return True, f"on mains, stable {stable:.0f}s"
