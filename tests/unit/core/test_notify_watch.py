"""The pure notification decisions (issue 27): one message per outage episode however much the
UPS flaps, the UPS unreadable at once on battery and after a while on mains, folding and the
hourly cap; the messages say host, UPS, what happened and what comes next."""

from __future__ import annotations

import itertools
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from hecate.config.notify import EVENT_SEVERITY
from hecate.core import notify_events as ne
from hecate.core.notify_events import Notice
from hecate.core.notify_watch import (
    FOLD_S,
    PollFacts,
    Throttle,
    WatchSettings,
    WatchState,
    admit,
    watch,
)

WHERE = ne.Where("hecate-1", "rack@localhost")
SETTINGS = WatchSettings(startup_wait_s=900, unreadable_s=300)
MAINS = PollFacts(
    now=0.0,
    wall=1_700_000_000.0,
    readable=True,
    detail="",
    on_battery=False,
    episode=False,
    runtime_s=1800.0,
    charge_pct=100.0,
    threshold_s=330.0,
    replace_battery=False,
    startup_pending=False,
    waits_for=None,
)
BATTERY = replace(MAINS, on_battery=True, episode=True, runtime_s=1500.0, charge_pct=90.0)


def run(facts: list[PollFacts], state: WatchState | None = None) -> list[Notice]:
    s = state or WatchState()
    out: list[Notice] = []
    for t, f in enumerate(facts):
        s, notices = watch(s, replace(f, now=float(t), wall=f.wall + t), WHERE, SETTINGS)
        out += notices
    return out


def test_an_outage_gives_one_on_battery_and_one_power_restored_in_plain_words() -> None:
    notices = run([MAINS, BATTERY, BATTERY, replace(BATTERY, on_battery=False), MAINS])
    assert [n.event for n in notices] == ["on_battery", "power_restored"]
    first = notices[0]
    assert first.severity == "warning"
    assert "[hecate-1] UPS rack@localhost: on battery: runtime 25 min, charge 90 %" in first.body
    assert "a shutdown starts below 6 min" in first.body
    assert "Next: watching the battery" in first.body
    assert "the outage lasted 3 s" in notices[1].body


@settings(max_examples=200)
@given(st.lists(st.sampled_from(["mains", "battery", "flicker", "lost"]), max_size=40))
def test_a_flapping_ups_gives_one_message_per_episode_alternating(steps: list[str]) -> None:
    kinds = {
        "mains": MAINS,
        "battery": BATTERY,
        "flicker": replace(BATTERY, on_battery=False),  # mains within the episode
        "lost": replace(BATTERY, readable=False, detail="refused", runtime_s=None),
    }
    facts = [kinds[s] for s in steps]
    events = [n.event for n in run(facts) if n.event in ("on_battery", "power_restored")]
    episodes = sum(
        1 for i, f in enumerate(facts) if f.episode and (i == 0 or not facts[i - 1].episode)
    )
    # never two of a kind in a row, never more on_battery than episodes
    assert all(a != b for a, b in itertools.pairwise(events))
    assert events.count("on_battery") <= episodes
    if events:
        assert events[0] == "on_battery"


def test_a_daemon_restarted_during_an_outage_does_not_announce_it_again() -> None:
    notices = run([BATTERY, BATTERY, MAINS], WatchState(episode_since=-50.0, episode_told=True))
    assert [n.event for n in notices] == ["power_restored"]
    assert "the outage lasted 52 s" in notices[0].body


def test_the_ups_unreadable_is_told_at_once_on_battery_critical() -> None:
    lost = replace(BATTERY, readable=False, detail="connection refused")
    notices = run([BATTERY, lost, lost, lost])
    unreadable = [n for n in notices if n.event == "ups_unreadable"]
    assert len(unreadable) == 1
    assert unreadable[0].severity == "critical"
    assert "connection refused" in unreadable[0].body


def test_the_ups_unreadable_on_mains_is_told_after_the_setting_once() -> None:
    lost = replace(MAINS, readable=False, detail="driver down")
    s = WatchState()
    told: list[Notice] = []
    for t in (0.0, 100.0, 299.0, 300.0, 400.0):
        s, out = watch(s, replace(lost, now=t), WHERE, SETTINGS)
        told += out
    assert [n.event for n in told] == ["ups_unreadable"]
    assert "unreadable for 5 min on mains (driver down)" in told[0].body
    s, out = watch(s, replace(MAINS, now=500.0), WHERE, SETTINGS)
    s, out = watch(s, replace(lost, now=501.0), WHERE, SETTINGS)
    assert out == []  # a new stretch starts its own wait


def test_rb_and_a_long_startup_wait_are_told_once_per_stretch() -> None:
    rb = replace(MAINS, replace_battery=True)
    assert [n.event for n in run([rb, rb, MAINS, rb])] == ["battery_replace", "battery_replace"]
    waiting = replace(MAINS, startup_pending=True, waits_for="charge >= 50 %")
    s = WatchState()
    told: list[Notice] = []
    for t in (0.0, 899.0, 900.0, 1800.0):
        s, out = watch(s, replace(waiting, now=t), WHERE, SETTINGS)
        told += out
    assert [n.event for n in told] == ["startup_waiting"]
    assert "waited 15 min for charge >= 50 %" in told[0].body


def _n(event: str, key: str = "") -> Notice:
    return ne.notice(WHERE, event, "x", "y", 0.0, key=key)


def test_admit_folds_a_repeat_and_says_so_in_the_next_message() -> None:
    t, out = admit(Throttle(), [_n("peer_unreachable")], 0.0, 30)
    t, out2 = admit(t, [_n("peer_unreachable")], 10.0, 30)
    assert len(out) == 1
    assert out2 == []
    t, out3 = admit(t, [_n("battery_replace")], 20.0, 30)
    assert "(1 earlier message(s) held back)" in out3[0].body
    t, out4 = admit(t, [_n("peer_unreachable")], FOLD_S + 1, 30)
    assert len(out4) == 1


def test_admit_never_folds_episode_events() -> None:
    notices = [_n("on_battery"), _n("power_restored"), _n("on_battery"), _n("power_restored")]
    _, out = admit(Throttle(), notices, 0.0, 30)
    assert len(out) == 4


@given(st.lists(st.sampled_from(sorted(EVENT_SEVERITY)), max_size=80), st.integers(1, 10))
def test_admit_caps_an_hour_except_critical(events: list[str], cap: int) -> None:
    notices = [_n(e, key=f"k{i}") for i, e in enumerate(events)]
    _, out = admit(Throttle(), notices, 0.0, cap)
    non_critical = [n for n in out if n.severity != "critical"]
    assert len(non_critical) <= cap
    assert sum(n.severity == "critical" for n in out) == sum(
        n.severity == "critical" for n in notices
    )


def test_the_cap_frees_up_after_an_hour() -> None:
    t, out = admit(Throttle(), [_n("on_battery"), _n("power_restored")], 0.0, 1)
    assert len(out) == 1
    t, out = admit(t, [_n("on_battery")], 3601.0, 1)
    assert len(out) == 1
    assert "held back" in out[0].body


def test_a_flow_report_becomes_stage_failed_then_finished() -> None:
    flow = ne.FlowSummary(
        "shutdown", "partial", 250.0, failed_stages=[("stop_agents", "rc 2")], unreached=["n2"]
    )
    notices = ne.flow_finished(WHERE, flow, 300.0, 0.0)
    assert [n.event for n in notices] == ["stage_failed", "shutdown_finished"]
    assert "shutdown stage stop_agents failed: rc 2" in notices[0].body
    assert "shutdown partial in 4 min (budget 5 min); nodes not reached: n2" in notices[1].body
    failed = ne.flow_finished(WHERE, ne.FlowSummary("startup", "refused", 0.0), 300.0, 0.0)
    assert [(n.event, n.severity) for n in failed] == [("startup_failed", "critical")]


@given(st.sampled_from(sorted(EVENT_SEVERITY)), st.floats(0, 4e9))
def test_every_notice_survives_the_spool_format(event: str, at: float) -> None:
    n = ne.test_message(WHERE, event, at)
    assert Notice.from_json(n.to_json()) == n
    assert n.severity == EVENT_SEVERITY[event]


def test_a_battery_delivering_less_than_it_claims_is_told_once() -> None:
    weak = replace(MAINS, battery_ratio=0.62)
    notices = run([replace(MAINS, battery_ratio=0.95), weak, weak, weak])
    assert [n.event for n in notices] == ["battery_replace"]
    assert "it delivered 62% of the runtime it claimed" in notices[0].body


def test_a_peers_coordinator_lost_for_90s_is_told_once_per_stretch() -> None:
    lost = replace(MAINS, coordinator_reachable=False)
    s = WatchState()
    told: list[Notice] = []
    for t, facts in [(0.0, lost), (60.0, lost), (90.0, lost), (120.0, lost)]:
        s, out = watch(s, replace(facts, now=t), WHERE, SETTINGS)
        told += out
    assert [n.event for n in told] == ["peer_unreachable"]
    assert "the coordinator cannot be reached (for 90 s" in told[0].body
    s, out = watch(s, replace(MAINS, now=130.0, coordinator_reachable=True), WHERE, SETTINGS)
    s, out = watch(s, replace(lost, now=140.0), WHERE, SETTINGS)
    assert out == []  # a new stretch waits its own 90 s
    assert run([MAINS, MAINS]) == []  # a coordinator (None) never tells it
