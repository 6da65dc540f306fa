"""The UPS policy: when to shut the cluster down and when power is back for good. Pure.

`step(state, poll, t, params)` takes the previous state, one poll result and the time it was taken,
and returns the next state and the events it caused. Rules:

- Critical = on battery (OB) and (runtime < threshold, or LB, or FSD). When the runtime is missing
  or garbage, only LB and FSD count: a UPS that cannot estimate its runtime is trusted to raise LB.
- A shutdown triggers after `debounce_polls` consecutive critical polls; a poll on mains resets the
  count, a non-critical poll on battery resets it too. Once triggered it latches for the outage.
- A status with neither OL nor OB (empty, WAIT, OFF) is treated like a communication loss.
- Communication loss while last seen on mains never triggers. While last seen on battery it
  triggers once the UPS has been silent for `comm_loss_dead_seconds` (NUT's DEADTIME idea): the
  silence itself is the debounce, so no further polls are needed.
- After an outage that triggered a shutdown, the startup gate opens once mains has been stable for
  `power_stable_seconds` and the charge is at least `min_battery_charge`. An unknown charge does
  not satisfy a non-zero minimum (set it to 0 for UPSes that do not report charge). Losing contact
  with the UPS restarts the stability clock: stability that cannot be observed is not assumed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from hecate.config import HecateConfig
from hecate.readings import CommError, Poll, UpsReading


@dataclass(frozen=True)
class PolicyParams:
    threshold_s: float
    debounce_polls: int
    comm_loss_dead_s: float
    power_stable_s: float
    min_charge_pct: float


def params_from_config(config: HecateConfig, threshold_s: float) -> PolicyParams:
    return PolicyParams(
        threshold_s=threshold_s,
        debounce_polls=config.ups.debounce_polls,
        comm_loss_dead_s=config.ups.comm_loss_dead_seconds,
        power_stable_s=config.startup.power_stable_seconds,
        min_charge_pct=config.startup.min_battery_charge,
    )


@dataclass(frozen=True)
class PolicyState:
    """What the policy remembers between polls."""

    on_battery: bool = False  # last good reading was on battery
    outage_start: float | None = None
    critical_count: int = 0
    latched: bool = False  # a shutdown was triggered during this outage
    startup_pending: bool = False  # the cluster was shut down and waits for the power gate
    mains_since: float | None = None  # start of the current stretch of observed mains
    last_ok_t: float | None = None
    comm_lost: bool = False
    last_charge: float | None = None


@dataclass(frozen=True)
class Event:
    t: float
    event: str
    reason: str
    threshold_s: float
    runtime_s: float | None
    charge_pct: float | None = None
    count: int = 0


def initial_state(*, startup_pending: bool = False) -> PolicyState:
    """`startup_pending=True` when the cluster is known to be down (e.g. after a boot)."""
    return PolicyState(startup_pending=startup_pending)


def is_critical(reading: UpsReading, threshold_s: float) -> tuple[bool, str]:
    """Whether this single reading is critical, and why (for the event's reason)."""
    if not reading.on_battery:
        return False, "on mains"
    if reading.forced_shutdown:
        return True, "FSD (forced shutdown) flag set"
    if reading.low_battery:
        return True, "LB (low battery) flag set"
    if reading.runtime_s is None:
        return False, "on battery, runtime unknown (only LB/FSD can trigger)"
    if reading.runtime_s < threshold_s:
        return True, f"runtime {reading.runtime_s:.0f}s < threshold {threshold_s:.0f}s"
    return False, f"runtime {reading.runtime_s:.0f}s >= threshold {threshold_s:.0f}s"


def step(
    state: PolicyState, poll: Poll, t: float, params: PolicyParams
) -> tuple[PolicyState, list[Event]]:
    if isinstance(poll, UpsReading) and not poll.on_battery and "OL" not in poll.status:
        # Neither OL nor OB (an empty status, WAIT, OFF, ...): the UPS does not say where the
        # power comes from. Treated like silence, never as mains: it must not reset a debounce
        # or start the power-return clock.
        shown = " ".join(sorted(poll.status)) or "empty"
        poll = CommError(f"UPS status {shown} says neither OL nor OB", "unknown_status")
    if isinstance(poll, CommError):
        return _step_comm_error(state, poll, t, params)
    return _step_reading(state, poll, t, params)


def _event(
    t: float,
    name: str,
    reason: str,
    params: PolicyParams,
    runtime: float | None,
    *,
    charge: float | None = None,
    count: int = 0,
) -> Event:
    return Event(t, name, reason, params.threshold_s, runtime, charge, count)


def _step_comm_error(
    state: PolicyState, poll: CommError, t: float, params: PolicyParams
) -> tuple[PolicyState, list[Event]]:
    events: list[Event] = []
    if not state.comm_lost:
        where = "on battery" if state.on_battery else "on mains"
        events.append(_event(t, "comm_lost", f"{poll.message} (last seen {where})", params, None))
    new = replace(state, comm_lost=True, mains_since=None)
    if state.on_battery and not state.latched:
        silent_since = state.last_ok_t if state.last_ok_t is not None else t
        silent = t - silent_since
        if silent >= params.comm_loss_dead_s:
            new = replace(new, latched=True, startup_pending=True)
            events.append(
                _event(
                    t,
                    "trigger_shutdown",
                    f"UPS silent for {silent:.0f}s while on battery "
                    f"(comm_loss_dead_seconds={params.comm_loss_dead_s:.0f})",
                    params,
                    None,
                )
            )
    return new, events


def _step_reading(
    state: PolicyState, reading: UpsReading, t: float, params: PolicyParams
) -> tuple[PolicyState, list[Event]]:
    events: list[Event] = []
    runtime, charge = reading.runtime_s, reading.charge_pct
    if state.comm_lost:
        events.append(
            _event(t, "comm_restored", "UPS answers again", params, runtime, charge=charge)
        )
    new = replace(state, comm_lost=False, last_ok_t=t, last_charge=charge)

    if reading.on_battery:
        if not state.on_battery:
            events.append(_event(t, "on_battery", "mains lost", params, runtime, charge=charge))
            new = replace(new, on_battery=True, outage_start=t, critical_count=0)
        new = replace(new, mains_since=None)
        critical, why = is_critical(reading, params.threshold_s)
        if new.latched:
            return new, events
        if not critical:
            if state.critical_count:
                events.append(_event(t, "condition_cleared", why, params, runtime, charge=charge))
            return replace(new, critical_count=0), events
        count = state.critical_count + 1
        new = replace(new, critical_count=count)
        if count >= params.debounce_polls:
            new = replace(new, latched=True, startup_pending=True)
            events.append(
                _event(t, "trigger_shutdown", why, params, runtime, charge=charge, count=count)
            )
        else:
            events.append(
                _event(
                    t,
                    "condition_met",
                    f"{why} ({count}/{params.debounce_polls})",
                    params,
                    runtime,
                    charge=charge,
                    count=count,
                )
            )
        return new, events

    # On mains (OL or anything without OB).
    if state.on_battery:
        length = t - state.outage_start if state.outage_start is not None else 0.0
        events.append(
            _event(
                t,
                "power_restored",
                f"mains back after {length:.0f}s on battery",
                params,
                runtime,
                charge=charge,
            )
        )
        new = replace(new, on_battery=False, outage_start=None, critical_count=0, latched=False)
    mains_since = new.mains_since if new.mains_since is not None else t
    new = replace(new, mains_since=mains_since, critical_count=0)
    if new.startup_pending:
        gate_open, why = startup_gate(reading, mains_since, t, params)
        if gate_open:
            new = replace(new, startup_pending=False)
            events.append(_event(t, "startup_allowed", why, params, runtime, charge=charge))
    return new, events


def startup_gate(
    reading: UpsReading, mains_since: float, t: float, params: PolicyParams
) -> tuple[bool, str]:
    """Whether mains has been stable long enough and the battery holds enough charge."""
    stable = t - mains_since
    if stable < params.power_stable_s:
        return False, f"mains stable {stable:.0f}s < {params.power_stable_s:.0f}s"
    charge = reading.charge_pct
    if params.min_charge_pct > 0 and charge is None:
        return False, "battery charge unknown"
    if charge is not None and charge < params.min_charge_pct:
        return False, f"charge {charge:.0f}% < {params.min_charge_pct:.0f}%"
    shown = "unknown" if charge is None else f"{charge:.0f}%"
    return True, f"mains stable {stable:.0f}s, charge {shown}"


def latch(state: PolicyState) -> PolicyState:
    """Mark the current outage as handled: a shutdown is running for it, startup will follow.

    The power-return clock restarts: mains must be seen stable again after this shutdown.
    """
    return replace(state, latched=True, startup_pending=True, mains_since=None)


def keep_startup_pending(state: PolicyState) -> PolicyState:
    """The gate opened but the startup could not start yet: ask again at the next poll."""
    return replace(state, startup_pending=True)
