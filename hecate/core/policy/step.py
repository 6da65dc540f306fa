"""The UPS policy: when to shut the cluster down and when power is back for good. Pure.

`step(state, poll, t, params)` takes the previous state, one poll result and the time it was taken
on a monotonic clock (seconds; only differences matter), and returns the next state and the events
it caused. The rules it applies (outage episodes, windowed critical evidence, LB, FSD,
calibration, loss of contact, the cap on time on battery, gaps, the startup gate) and why are
written once, in docs/design/policy.md; tests/unit/core/test_policy_corpus*.py hold the
adversarial traces that pin them.

The parameters, the state and the events live in `hecate.core.policy.values`, the judgements of one
reading (critical evidence, the startup gate) in `hecate.core.policy.rules`.
"""

from __future__ import annotations

from dataclasses import replace

from hecate.core.policy.rules import drain_runtime, is_critical, startup_gate
from hecate.core.policy.values import Event, PolicyParams, PolicyState
from hecate.core.readings import CommError, Poll, PowerSource, UpsReading


def step(
    state: PolicyState, poll: Poll, t: float, params: PolicyParams
) -> tuple[PolicyState, list[Event]]:
    events: list[Event] = []
    if state.last_poll_t is not None and t - state.last_poll_t > params.max_gap_s:
        gap = t - state.last_poll_t
        state = replace(state, mains_since=None)
        events.append(
            _event(
                t,
                "observation_gap",
                f"no poll for {gap:.0f}s (> {params.max_gap_s:.0f}s): the power was not"
                " observed, mains stability restarts",
                params,
                None,
            )
        )
    state = replace(state, last_poll_t=t)
    if isinstance(poll, UpsReading) and poll.power_source is PowerSource.NO_DATA:
        # An empty status or WAIT: the driver has no data. Treated like silence.
        shown = " ".join(sorted(poll.status)) or "empty"
        poll = CommError(f"UPS status {shown} carries no data", "no_data")
    if isinstance(poll, CommError):
        new, more = _step_comm_error(state, poll, t, params)
    else:
        new, more = _step_reading(state, poll, t, params)
    return new, events + more


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
    if new.startup_pending:
        new = replace(new, startup_wait="the UPS to answer again")
    if state.on_battery and not state.latched:
        silent_since = state.last_ok_t if state.last_ok_t is not None else t
        silent = t - silent_since
        capped = _cap_reason(state, t, params, None)
        if silent >= params.comm_loss_dead_s:
            why = (
                f"UPS silent for {silent:.0f}s while on battery "
                f"(comm_loss_dead_seconds={params.comm_loss_dead_s:.0f})"
            )
        elif capped is not None:  # last seen on battery: the outage's clock runs on
            why = f"{capped}, the UPS silent for {silent:.0f}s"
        else:
            return new, events
        new = _trigger(new, t)
        events.append(_event(t, "trigger_shutdown", why, params, None))
    return new, events


def _cap_reason(
    state: PolicyState, t: float, params: PolicyParams, runtime: float | None
) -> str | None:
    """Why `ups.max_on_battery_seconds` is reached now, or None: the cap is off, the episode has
    not been on battery outside calibration, or it has not lasted that long yet."""
    cap, start = params.max_on_battery_s, state.cap_start
    if cap is None or start is None or t - start < cap:
        return None
    elapsed = t - start
    if state.battery_since is not None and state.battery_since > start:
        head = (
            f"{elapsed:.0f}s since the outage went on battery, mains flickers shorter than "
            "ups.outage_clear_seconds included"
        )
    else:
        head = f"on battery for {elapsed:.0f}s"
    why = f"{head} (ups.max_on_battery_seconds {cap:g})"
    if runtime is not None:
        why += f", whatever the runtime estimate says ({runtime:.0f}s)"
    return why


def _trigger(state: PolicyState, t: float) -> PolicyState:
    start = state.outage_start if state.outage_start is not None else t
    return replace(state, latched=True, startup_pending=True, outage_start=start)


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

    if params.honor_fsd and reading.forced_shutdown and not new.latched:
        new = _trigger(new, t)
        events.append(
            _event(
                t,
                "trigger_shutdown",
                "FSD (forced shutdown) set by the UPS's primary: every client goes down now",
                params,
                runtime,
                charge=charge,
            )
        )

    source = reading.power_source
    if source is PowerSource.BATTERY:
        return _on_battery(new, reading, t, params, events)
    if source is PowerSource.LINE:
        return _on_line(new, reading, t, params, events)
    # A reading that says nothing about the source (OFF, ALARM, RB, DISCHRG alone, ...): the UPS
    # answers, so it is not a loss of contact; the last known source stands, and mains is not
    # observed (the stability clock restarts).
    if not state.source_unknown:
        shown = " ".join(sorted(reading.status))
        where = "on battery" if state.on_battery else "on mains"
        events.append(
            _event(
                t,
                "power_source_unknown",
                f"UPS status {shown} says neither OL nor OB (last seen {where})",
                params,
                runtime,
                charge=charge,
            )
        )
    new = replace(new, source_unknown=True, mains_since=None)
    if new.startup_pending:
        new = replace(new, startup_wait="a status that says the UPS is on line")
    if new.on_battery:
        return _evidence(new, reading, t, params, events, as_battery=True)
    return new, events


def _on_battery(
    state: PolicyState,
    reading: UpsReading,
    t: float,
    params: PolicyParams,
    events: list[Event],
) -> tuple[PolicyState, list[Event]]:
    runtime, charge = reading.runtime_s, reading.charge_pct
    new = replace(state, source_unknown=False, mains_since=None)
    if not state.on_battery:
        if reading.calibrating:
            name, why = "calibration", "runtime calibration (CAL): the UPS runs on battery"
        else:
            name, why = "on_battery", "mains lost"
        if state.outage_start is not None:
            why += " again (same outage episode)"
        events.append(_event(t, name, why, params, runtime, charge=charge))
        start = state.outage_start if state.outage_start is not None else t
        new = replace(new, on_battery=True, outage_start=start, battery_since=t)
    if new.drain_ref is None and charge is not None and not reading.calibrating:
        new = replace(new, drain_ref=(t, charge))
    if new.cap_start is None and not reading.calibrating:
        new = replace(new, cap_start=t)
    if new.startup_pending:
        new = replace(new, startup_wait="mains to return (the UPS is on battery)")
    return _evidence(new, reading, t, params, events, as_battery=False)


def _evidence(
    state: PolicyState,
    reading: UpsReading,
    t: float,
    params: PolicyParams,
    events: list[Event],
    *,
    as_battery: bool,
) -> tuple[PolicyState, list[Event]]:
    """Count this poll's critical evidence in the window; trigger when the window holds enough."""
    runtime, charge = reading.runtime_s, reading.charge_pct
    judged = reading
    if as_battery:  # source unknown in an episode on battery: judge it as on battery
        judged = replace(reading, status=reading.status | {"OB"})
    if params.honor_fsd and judged.forced_shutdown:
        # FSD was already acted on as a command; judge the rest of the reading.
        judged = replace(judged, status=judged.status - {"FSD"})
    drain = None if judged.calibrating else drain_runtime(state.drain_ref, charge, t)
    critical, why = is_critical(judged, params.threshold_s, params.min_charge_on_battery, drain)
    horizon = t - params.critical_window_s
    times = tuple(x for x in state.critical_times if x > horizon)
    lbs = tuple(x for x in state.lb_times if x > horizon)
    if critical:
        times += (t,)
        if judged.low_battery:
            lbs += (t,)
    new = replace(
        state,
        critical_times=times,
        lb_times=lbs,
        critical_count=len(times),
        was_critical=critical,
    )
    if new.latched:
        return new, events
    enough = len(times) >= params.debounce_polls or len(lbs) >= params.lb_confirm_polls
    capped = None if judged.calibrating else _cap_reason(new, t, params, runtime)
    if capped is not None and not (critical and enough):  # the evidence says more, if it can
        new = replace(_trigger(new, t), startup_wait="mains to return (the UPS is on battery)")
        events.append(
            _event(t, "trigger_shutdown", capped, params, runtime, charge=charge, count=len(times))
        )
        return new, events
    if not critical:
        if state.was_critical:
            events.append(
                _event(
                    t,
                    "condition_cleared",
                    f"{why} ({len(times)} critical poll(s) still in the last "
                    f"{params.critical_window_s:.0f}s)",
                    params,
                    runtime,
                    charge=charge,
                    count=len(times),
                )
            )
        return new, events
    count = len(times)
    if enough:  # _trigger leaves the startup pending: it waits for mains
        new = replace(_trigger(new, t), startup_wait="mains to return (the UPS is on battery)")
        if count >= params.debounce_polls:
            detail = f"{count} critical polls in {params.critical_window_s:.0f}s"
        else:
            detail = f"LB on {len(lbs)} polls in {params.critical_window_s:.0f}s"
        events.append(
            _event(
                t,
                "trigger_shutdown",
                f"{why} ({detail})",
                params,
                runtime,
                charge=charge,
                count=count,
            )
        )
    else:
        events.append(
            _event(
                t,
                "condition_met",
                f"{why} ({count}/{params.debounce_polls} in {params.critical_window_s:.0f}s)",
                params,
                runtime,
                charge=charge,
                count=count,
            )
        )
    return new, events


def _on_line(
    state: PolicyState,
    reading: UpsReading,
    t: float,
    params: PolicyParams,
    events: list[Event],
) -> tuple[PolicyState, list[Event]]:
    runtime, charge = reading.runtime_s, reading.charge_pct
    new = replace(state, source_unknown=False, was_critical=False)
    if state.on_battery:
        since = state.battery_since if state.battery_since is not None else t
        events.append(
            _event(
                t,
                "power_restored",
                f"mains back after {t - since:.0f}s on battery",
                params,
                runtime,
                charge=charge,
            )
        )
        new = replace(new, on_battery=False, battery_since=None)
    if reading.forced_shutdown:
        # Mains under FSD is not power back for good: the primary is about to cut the output.
        new = replace(new, mains_since=None)
        if new.startup_pending:
            new = replace(new, startup_wait="the UPS's FSD flag to clear")
        return new, events
    mains_since = new.mains_since if new.mains_since is not None else t
    new = replace(new, mains_since=mains_since)
    stable = t - mains_since
    episode = new.outage_start is not None
    if (episode or new.latched) and stable >= params.outage_clear_s:
        if episode:
            start = new.outage_start if new.outage_start is not None else t
            events.append(
                _event(
                    t,
                    "outage_over",
                    f"mains stable {stable:.0f}s: the outage that began {t - start:.0f}s ago"
                    " is over",
                    params,
                    runtime,
                    charge=charge,
                )
            )
        new = replace(
            new,
            outage_start=None,
            latched=False,
            critical_times=(),
            lb_times=(),
            critical_count=0,
            drain_ref=None,
            cap_start=None,
        )
    if new.startup_pending:
        gate_open, why = startup_gate(reading, mains_since, t, params)
        if gate_open:
            new = replace(new, startup_pending=False, startup_wait=None)
            events.append(_event(t, "startup_allowed", why, params, runtime, charge=charge))
        else:
            new = replace(new, startup_wait=why)
    return new, events


def latch(state: PolicyState) -> PolicyState:
    """Mark the current outage as handled: a shutdown is running for it, startup will follow.

    The power-return clock restarts: mains must be seen stable again after this shutdown.
    """
    return replace(state, latched=True, startup_pending=True, mains_since=None)


def keep_startup_pending(state: PolicyState) -> PolicyState:
    """The gate opened but the startup could not start yet: ask again at the next poll."""
    return replace(state, startup_pending=True)
