"""The UPS policy, rule by rule with explicit time, plus property tests."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from hecate.config.model import parse_config
from hecate.core.policy.rules import is_critical
from hecate.core.policy.step import latch, step
from hecate.core.policy.values import PolicyParams, PolicyState, initial_state, params_from_config
from hecate.core.readings import CommError, Poll, UpsReading, parse_status

P = PolicyParams(
    threshold_s=330, debounce_polls=3, comm_loss_dead_s=30, power_stable_s=60, min_charge_pct=50
)


def r(status: str, runtime: float | None = 1800, charge: float | None = 100) -> UpsReading:
    return UpsReading(parse_status(status), runtime, charge)


ERR = CommError("connection refused")


def run(
    polls: Sequence[tuple[float, Poll]], params: PolicyParams = P, state: PolicyState | None = None
) -> list[tuple[float, str]]:
    current = state or initial_state()
    out: list[tuple[float, str]] = []
    for t, poll in polls:
        current, events = step(current, poll, t, params)
        out += [(e.t, e.event) for e in events]
    return out


def triggers(polls: Sequence[tuple[float, Poll]], params: PolicyParams = P) -> list[float]:
    return [t for t, name in run(polls, params) if name == "trigger_shutdown"]


def test_critical_rules_table() -> None:
    table = [
        (r("OL", 10), False),
        (r("OL LB", 10), False),
        (r("OL FSD", 10), False),
        (r("OB DISCHRG", 1000), False),
        (r("OB DISCHRG", 329), True),
        (r("OB DISCHRG", 330), False),
        (r("OB LB", 5000), True),
        (r("OB FSD", 5000), True),
        (r("OB DISCHRG", None), False),  # runtime unknown: only LB/FSD count
        (r("OB LB", None), True),
    ]
    for reading, expected in table:
        assert is_critical(reading, 330)[0] is expected, reading


def test_triggers_after_debounce_polls_and_latches() -> None:
    polls = [
        (0, r("OL")),
        (5, r("OB", 1000)),
        (10, r("OB", 300)),
        (15, r("OB", 290)),
        (20, r("OB", 280)),
        (25, r("OB", 270)),
        (30, r("OB LB", 100)),
    ]
    assert triggers(polls) == [20]  # third consecutive critical poll, then latched


def test_a_mains_flicker_does_not_reset_the_evidence() -> None:
    # issue #11: mains flickering back for one poll while the battery drains used to reset the
    # count forever; the evidence now stays in the window, so the third critical poll triggers.
    polls = [
        (0, r("OB", 100)),
        (5, r("OB", 100)),
        (10, r("OL")),
        (15, r("OB", 100)),
        (20, r("OB", 100)),
    ]
    assert triggers(polls) == [15]


def test_a_non_critical_battery_poll_does_not_reset_the_evidence() -> None:
    # issue #11: one noisy runtime reading used to reset the count; now it does not.
    polls = [
        (0, r("OB", 100)),
        (5, r("OB", 100)),
        (10, r("OB", 2000)),
        (15, r("OB", 100)),
        (20, r("OB", 100)),
        (25, r("OB", 100)),
    ]
    assert triggers(polls) == [15]


def test_missing_runtime_triggers_only_on_lb() -> None:
    polls = [(t, r("OB", None)) for t in range(0, 50, 5)]
    assert triggers(polls) == []
    # LB is confirmed by a second LB poll (lb_confirm_polls=2), not debounce_polls
    assert triggers(
        [*polls, (50, r("OB LB", None)), (55, r("OB LB", None)), (60, r("OB LB", None))]
    ) == [55]


def test_comm_loss_on_mains_never_triggers() -> None:
    polls: list[tuple[float, Poll]] = [(0, r("OL")), *[(t, ERR) for t in range(5, 600, 5)]]
    events = run(polls)
    assert "trigger_shutdown" not in [e for _, e in events]
    assert events[0] == (5, "comm_lost")


def test_comm_loss_on_battery_triggers_after_dead_time() -> None:
    polls: list[tuple[float, Poll]] = [
        (0, r("OL")),
        (5, r("OB", 1500)),
        (10, ERR),
        (20, ERR),
        (34, ERR),
        (35, ERR),
        (40, ERR),
    ]
    assert triggers(polls) == [35]  # silent since the last good poll at t=5


def test_comm_restored_before_dead_time_does_not_trigger() -> None:
    polls: list[tuple[float, Poll]] = [
        (0, r("OB", 1500)),
        (10, ERR),
        (20, ERR),
        (30, r("OB", 1500)),
        (40, ERR),
        (55, ERR),
        (59, ERR),
    ]
    assert triggers(polls) == []


def test_startup_gate_waits_for_stable_mains_and_charge() -> None:
    down = [(0, r("OB", 100)), (5, r("OB", 100)), (10, r("OB", 100))]
    assert triggers(down) == [10]
    back = [
        (20, r("OL", 500, 30)),
        (50, r("OL", 500, 40)),
        (85, r("OL", 800, 49)),
        (90, r("OL", 900, 55)),
    ]
    events = run(down + back)
    assert (20, "power_restored") in events
    assert [t for t, e in events if e == "startup_allowed"] == [90]


def test_a_new_outage_restarts_the_stability_clock() -> None:
    polls = [
        (0, r("OB", 100)),
        (5, r("OB", 100)),
        (10, r("OB", 100)),
        (20, r("OL", 900, 90)),
        (70, r("OB", 900, 90)),
        (75, r("OL", 900, 90)),
        (100, r("OL", 900, 90)),
        (135, r("OL", 900, 90)),
    ]
    assert [t for t, e in run(polls) if e == "startup_allowed"] == [135]


def test_comm_loss_restarts_the_stability_clock() -> None:
    state = initial_state(startup_pending=True)
    polls: list[tuple[float, Poll]] = [
        (0, r("OL", 900, 90)),
        (50, ERR),
        (55, r("OL", 900, 90)),
        (100, r("OL", 900, 90)),
        (115, r("OL", 900, 90)),
    ]
    assert [t for t, e in run(polls, state=state) if e == "startup_allowed"] == [115]


def test_unknown_charge_keeps_the_gate_closed_unless_minimum_is_zero() -> None:
    # issue #11: an unknown charge no longer blocks forever; with no runtime either, the gate
    # stays closed until charge_unknown_wait_s of extra stable mains (1800 s by default).
    state = initial_state(startup_pending=True)
    polls = [(0, r("OL", None, None)), (100, r("OL", None, None))]
    assert "startup_allowed" not in [e for _, e in run(polls, state=state)]
    zero = PolicyParams(330, 3, 30, 60, 0)
    assert "startup_allowed" in [e for _, e in run(polls, zero, state=state)]


def test_unknown_charge_falls_back_to_runtime_then_to_a_bounded_wait() -> None:
    state = initial_state(startup_pending=True)
    by_runtime = [(0, r("OL", 200, None)), (60, r("OL", 329, None)), (65, r("OL", 330, None))]
    assert [t for t, e in run(by_runtime, state=state) if e == "startup_allowed"] == [65]
    by_wait = [(float(t), r("OL", None, None)) for t in range(0, 1870, 10)]
    assert [t for t, e in run(by_wait, state=state) if e == "startup_allowed"] == [1860]


def test_blip_shorter_than_debounce_does_nothing() -> None:
    polls = [(0, r("OL")), (5, r("OB", 100)), (10, r("OB", 100)), (15, r("OL"))]
    assert [e for _, e in run(polls)] == [
        "on_battery",
        "condition_met",
        "condition_met",
        "power_restored",
    ]


# --- properties ---------------------------------------------------------------------------

statuses = st.sampled_from(["OL", "OL CHRG", "OL LB", "OL FSD", "OB DISCHRG", "OB LB", "OB FSD"])
readings = st.builds(
    r,
    statuses,
    st.one_of(st.none(), st.floats(0, 5000)),
    st.one_of(st.none(), st.floats(0, 100)),
)
polls_st = st.one_of(readings, st.just(ERR))


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["OL", "OL CHRG", "OL LB", "TRIM", "BOOST BYPASS", "OL CAL"]),
            st.one_of(st.none(), st.floats(0, 5000)),
        ),
        max_size=40,
    )
)
def test_never_triggers_while_on_mains(seq: list[tuple[str, float | None]]) -> None:
    # On mains without FSD (issue #11: FSD is a command and triggers on mains; see below).
    polls = [(5.0 * i, r(s, rt)) for i, (s, rt) in enumerate(seq)]
    assert triggers(polls) == []


@settings(max_examples=200)
@given(
    st.lists(polls_st, max_size=20),
    st.integers(1, 6),
    st.lists(
        st.sampled_from([r("OB", 10), r("OB LB", 2000), r("OB FSD", None)]), min_size=6, max_size=12
    ),
)
def test_triggers_no_later_than_debounce_after_condition_holds(
    prefix: list[Poll], debounce: int, critical: list[UpsReading]
) -> None:
    params = PolicyParams(330, debounce, 30, 60, 50)
    polls: list[tuple[float, Poll]] = [(5.0 * i, p) for i, p in enumerate(prefix)]
    start = len(polls)
    polls += [(5.0 * (start + i), p) for i, p in enumerate(critical)]
    fired = triggers(polls, params)
    assert fired, "a condition held for >= debounce polls must trigger"
    assert fired[0] <= 5.0 * (start + debounce - 1)


@settings(max_examples=200)
@given(st.lists(st.integers(1, 2), min_size=1, max_size=15), st.integers(61, 600))
def test_isolated_glitches_never_trigger(bursts: list[int], mains: int) -> None:
    # issue #11 replaced "flapping never triggers" (it was the defect: a battery draining under
    # a flickering mains must trigger). What must still hold: bursts of at most debounce-1
    # critical polls that never share a window (mains longer than the window between them).
    polls: list[tuple[float, Poll]] = []
    t = 0.0
    for burst in bursts:
        for _ in range(burst):
            polls.append((t, r("OB", 10)))
            t += 5
        polls.append((t, r("OL")))
        t += mains
    assert triggers(polls) == []


def test_status_without_ol_or_ob_is_not_mains() -> None:
    polls: list[tuple[float, Poll]] = [
        (0, r("OB", 100)),
        (5, r("OB", 100)),
        (10, r("", 100)),
        (15, r("OB", 100)),
        (20, r("WAIT", 100)),
        (25, r("OB LB", 100)),
    ]
    # the unknown statuses neither count nor reset: the third OB poll triggers
    assert triggers(polls) == [15]
    # issue #11: a status that says nothing about the source (OFF, ALARM, ...) is not a loss
    # of contact: the UPS answers. It is reported once and changes nothing else.
    events = run([(0, r("OL")), (5, r("OFF")), (10, r("OFF")), (15, r("WAIT"))])
    assert events == [(5, "power_source_unknown"), (15, "comm_lost")]


def test_latch_restarts_the_power_return_clock() -> None:
    state = initial_state()
    state, _ = step(state, r("OL", 900, 90), 0, P)
    state = latch(state)  # e.g. a peer's trigger while this UPS is on mains
    state, events = step(state, r("OL", 900, 90), 5, P)
    assert events == []
    state, events = step(state, r("OL", 900, 90), 66, P)
    assert [e.event for e in events] == ["startup_allowed"]


# --- issue #11 properties over the windowed policy ------------------------------------------

DEFAULTS = PolicyParams(330, 3, 30, 60, 50, max_gap_s=20)
line_like = st.builds(
    r,
    st.sampled_from(["OL", "OL CHRG", "OL LB", "TRIM", "BOOST BYPASS", "OL CAL", "OFF", "ALARM"]),
    st.one_of(st.none(), st.floats(0, 5000)),
    st.one_of(st.none(), st.floats(0, 100)),
)


@settings(max_examples=300)
@given(
    st.lists(st.one_of(line_like, st.just(ERR), st.just(r("WAIT"))), max_size=60),
    st.lists(st.floats(1, 400), min_size=60, max_size=60),
)
def test_no_trigger_on_mains_without_fsd(seq: list[Poll], gaps: list[float]) -> None:
    # Never on battery, no FSD: silences, gaps, unknown flags and any numbers never trigger.
    t, polls = 0.0, []
    for poll, gap in zip(seq, gaps, strict=False):
        polls.append((t, poll))
        t += gap
    assert triggers(polls, DEFAULTS) == []


critical_st = st.sampled_from(
    [r("OB", 10), r("OB LB", 2000), r("OB DISCHRG", None, 20), r("OB FSD", None), r("OL FSD")]
)
noise_st = st.sampled_from(
    [r("OL"), r("OB", 2000), ERR, r("OB CAL", 10), r("ALARM", 2000), r("TRIM"), r("")]
)


@settings(max_examples=300)
@given(
    st.lists(polls_st, max_size=30),
    st.lists(st.tuples(critical_st, noise_st), min_size=3, max_size=12),
)
def test_a_ups_critical_over_a_window_always_triggers(
    prefix: list[Poll], pairs: list[tuple[UpsReading, Poll]]
) -> None:
    # Whatever came before, a window in which every other poll is critical (the rest any noise:
    # mains flickers, healthy or calibrating battery readings, silence, unknown flags) triggers
    # no later than the third critical poll, unless a shutdown is already latched.
    state = initial_state()
    t = 0.0
    for poll in prefix:
        state, _ = step(state, poll, t, DEFAULTS)
        t += 5
    if state.latched:
        return
    fired: list[float] = []
    critical_at: list[float] = []
    for critical, noise in pairs:
        for poll in (critical, noise):
            if poll is critical:
                critical_at.append(t)
            state, events = step(state, poll, t, DEFAULTS)
            fired += [e.t for e in events if e.event == "trigger_shutdown"]
            t += 5
    assert fired, "a UPS critical over the window must trigger"
    assert fired[0] <= critical_at[2]


def test_params_from_config_reads_the_new_keys() -> None:
    base = {"nodes": {"servers": ["s1"], "agents": []}}
    default = params_from_config(parse_config(base), 330)
    assert (default.honor_fsd, default.lb_confirm_polls, default.min_charge_on_battery) == (
        True,
        2,
        50,
    )
    assert default.critical_window_s == 60  # max(60, 2 x 3 x 5)
    assert default.max_gap_s == 20  # 3 x 5 + 5
    ups = {
        "debounce_polls": 10,
        "poll_interval_seconds": 10,
        "honor_fsd": False,
        "min_charge_on_battery": 25,
        "max_poll_gap_seconds": 90,
    }
    custom = params_from_config(parse_config({**base, "ups": ups}), 330)
    assert custom.critical_window_s == 200  # 2 x 10 x 10: debounce_polls keeps working
    assert (custom.honor_fsd, custom.min_charge_on_battery, custom.max_gap_s) == (False, 25, 90)
