"""`ups.max_on_battery_seconds` (issue 27 item 7): properties of the cap on time on battery.

The traces with their expected outcomes are in test_policy_corpus_cap.py; here: an independent
model of the outage episode the cap must follow exactly, and what the cap must never do (delay
a trigger, act before its time, change anything before it is due).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from hecate.config.model import parse_config
from hecate.core.policy.step import step
from hecate.core.policy.values import PolicyParams, initial_state, params_from_config
from hecate.core.readings import CommError, Poll, UpsReading, parse_status

BASE = PolicyParams(330, 3, 30, 60, 50, max_gap_s=20)
ERR = CommError("connection refused")


def r(status: str, runtime: float | None = 1800, charge: float | None = 100) -> UpsReading:
    return UpsReading(parse_status(status), runtime, charge)


def run(polls: Sequence[tuple[float, Poll]], params: PolicyParams) -> list[tuple[float, str, str]]:
    state = initial_state()
    out: list[tuple[float, str, str]] = []
    for t, poll in polls:
        state, events = step(state, poll, t, params)
        out += [(e.t, e.event, e.reason) for e in events]
    return out


def triggers(polls: Sequence[tuple[float, Poll]], params: PolicyParams) -> list[float]:
    return [t for t, name, _ in run(polls, params) if name == "trigger_shutdown"]


def timed(seq: list[Poll], gaps: list[float]) -> list[tuple[float, Poll]]:
    t, out = 0.0, []
    for poll, gap in zip(seq, gaps, strict=False):
        out.append((t, poll))
        t += gap
    return out


# --- the outage episode, modelled on its own ------------------------------------------------


def expected_cap_triggers(polls: list[tuple[float, bool]], cap: float, clear: float) -> list[float]:
    """(t, on battery) polls with a healthy battery: the cap triggers at the first poll on
    battery `cap` into the episode; the episode ends after `clear` seconds of mains."""
    episode: float | None = None
    mains_since: float | None = None
    latched = False
    fired: list[float] = []
    for t, on_battery in polls:
        if on_battery:
            mains_since = None
            episode = t if episode is None else episode
            if not latched and t - episode >= cap:
                fired.append(t)
                latched = True
        else:
            mains_since = t if mains_since is None else mains_since
            if episode is not None and t - mains_since >= clear:
                episode, latched = None, False
    return fired


healthy_battery = st.builds(lambda rt: r("OB DISCHRG", rt, 100), st.floats(330, 5000))
mains = st.sampled_from([r("OL"), r("OL CHRG", 900, 80)])


@settings(max_examples=250, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.floats(1, 20)), min_size=1, max_size=80),
    st.data(),
    st.floats(5, 300),
    st.floats(0, 60),
)
def test_with_a_healthy_battery_the_cap_follows_the_outage_episode_exactly(
    shape: list[tuple[bool, float]], data: st.DataObject, cap: float, clear: float
) -> None:
    # Never before `cap` seconds of the episode; flickers shorter than outage_clear_seconds do
    # not restart the count, longer ones do; once an episode, at its first poll on battery due.
    params = replace(BASE, max_on_battery_s=cap, outage_clear_s=clear)
    t, polls, model = 0.0, [], []
    for on_battery, gap in shape:
        polls.append((t, data.draw(healthy_battery if on_battery else mains)))
        model.append((t, on_battery))
        t += gap
    assert triggers(polls, params) == expected_cap_triggers(model, cap, clear)


# --- what the cap must never do, whatever the readings ------------------------------------

any_poll = st.one_of(
    st.builds(
        r,
        st.sampled_from(["OL", "OL CHRG", "OB DISCHRG", "OB LB", "OB CAL", "OL FSD", "ALARM", ""]),
        st.one_of(st.none(), st.floats(0, 5000)),
        st.one_of(st.none(), st.floats(0, 100)),
    ),
    st.just(ERR),
)
gaps_st = st.lists(st.floats(0.5, 40), min_size=60, max_size=60)


@settings(max_examples=150, deadline=None)
@given(st.lists(any_poll, max_size=60), gaps_st, st.floats(1, 200))
def test_the_cap_never_delays_a_trigger(seq: list[Poll], gaps: list[float], cap: float) -> None:
    polls = timed(seq, gaps)
    uncapped = triggers(polls, BASE)
    capped = triggers(polls, replace(BASE, max_on_battery_s=cap))
    if uncapped:
        assert capped, "the cap took a shutdown away"
        assert capped[0] <= uncapped[0]


@settings(max_examples=150, deadline=None)
@given(st.lists(any_poll, max_size=60), gaps_st, st.floats(1, 200))
def test_the_cap_never_acts_before_its_time(seq: list[Poll], gaps: list[float], cap: float) -> None:
    polls = timed(seq, gaps)
    first = next(
        (
            t
            for t, p in polls
            if isinstance(p, UpsReading) and p.on_battery and "CAL" not in p.status
        ),
        None,
    )
    for t, name, reason in run(polls, replace(BASE, max_on_battery_s=cap)):
        if name == "trigger_shutdown" and "ups.max_on_battery_seconds" in reason:
            assert first is not None
            assert t - first >= cap


@settings(max_examples=100, deadline=None)
@given(st.lists(any_poll, max_size=60), gaps_st)
def test_a_cap_not_yet_due_changes_nothing(seq: list[Poll], gaps: list[float]) -> None:
    polls = timed(seq, gaps)  # at most 60 x 40 s: a cap of a day is never due
    assert run(polls, replace(BASE, max_on_battery_s=86400)) == run(polls, BASE)


# --- the rule, poll by poll -----------------------------------------------------------------


def test_the_cap_triggers_once_per_episode_and_again_in_the_next() -> None:
    params = replace(BASE, max_on_battery_s=10, outage_clear_s=30)
    first = [(float(t), r("OB", 1500)) for t in range(0, 30, 5)]
    back = [(float(t), r("OL")) for t in range(30, 65, 5)]  # stable 30 s at t=60: over
    second = [(float(t), r("OB", 1500)) for t in range(65, 90, 5)]
    assert triggers(first + back + second, params) == [10.0, 75.0]


def test_the_cap_reason_names_the_key_and_the_claim() -> None:
    params = replace(BASE, max_on_battery_s=120)
    polls: list[tuple[float, Poll]] = [(float(t), r("OB", 1500)) for t in range(0, 125, 5)]
    [(t, reason)] = [(t, why) for t, name, why in run(polls, params) if name == "trigger_shutdown"]
    assert t == 120
    assert reason == (
        "on battery for 120s (ups.max_on_battery_seconds 120), whatever the runtime estimate "
        "says (1500s)"
    )


def test_a_pending_startup_waits_for_mains_after_a_cap_trigger() -> None:
    params = replace(BASE, max_on_battery_s=10)
    state = initial_state()
    for t in (0.0, 5.0, 10.0):
        state, _ = step(state, r("OB", 1500), t, params)
    assert state.latched
    assert state.startup_pending
    assert state.startup_wait == "mains to return (the UPS is on battery)"


def test_params_from_config_reads_the_cap() -> None:
    base = {"nodes": {"servers": ["s1"], "agents": []}, "ups": {"target": "pyrphoros@localhost"}}
    assert params_from_config(parse_config(base), 330).max_on_battery_s is None  # off by default
    ups = {"target": "pyrphoros@localhost", "max_on_battery_seconds": 120}
    assert params_from_config(parse_config({**base, "ups": ups}), 330).max_on_battery_s == 120
