"""Traces: parsing, errors, and the shipped example traces replaying to the documented events."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from hecate.config.model import default_config
from hecate.core.policy.values import params_from_config
from hecate.core.readings import CommError, UpsReading
from hecate.core.replay import replay
from hecate.core.trace import encode_point, load_trace, parse_trace_lines
from hecate.errors import TraceError

TRACES = Path(__file__).resolve().parents[3] / "hecate" / "data" / "traces"
DEFAULT = params_from_config(default_config(), 330)  # the default config, as the README says

# What the README documents for the default config (fallback budget 300 s, threshold 330 s).
EXPECTED = {
    "clean-outage.jsonl": [
        (10, "on_battery"),
        (25, "condition_met"),
        (30, "condition_met"),
        (35, "trigger_shutdown"),
        (45, "power_restored"),
        (75, "outage_over"),  # issue #11: the episode ends after 30 s of stable mains
        (110, "startup_allowed"),
    ],
    "blip.jsonl": [
        (5, "on_battery"),
        (5, "condition_met"),
        (10, "condition_met"),
        (15, "power_restored"),
    ],
    "comm-loss-on-mains.jsonl": [(10, "comm_lost"), (95, "comm_restored")],
    "comm-loss-on-battery.jsonl": [(5, "on_battery"), (10, "comm_lost"), (35, "trigger_shutdown")],
    # issue #11: a daemon trace across a wall-clock step replays on its monotonic time
    "clock-step.jsonl": [
        (5, "on_battery"),
        (5, "condition_met"),
        (10, "condition_met"),
        (15, "comm_lost"),
        (20, "comm_restored"),
        (20, "trigger_shutdown"),
    ],
    # issue #11: FSD is a command, on mains too; mains under FSD is not stable power
    "fsd-on-mains.jsonl": [(10, "trigger_shutdown"), (50, "outage_over"), (80, "startup_allowed")],
    # issue 27: a runtime claim that never falls; without a cap only the UPS's death is seen
    "lying-battery.jsonl": [(5, "on_battery"), (205, "comm_lost"), (225, "trigger_shutdown")],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_traces_replay_to_documented_events(name: str) -> None:
    events = replay(load_trace(TRACES / name), DEFAULT)
    assert [(e.t, e.event) for e in events] == EXPECTED[name]


def test_flapping_mains_while_the_battery_drains_triggers() -> None:
    # issue #11: this trace (runtime 200 s < 330 s on every battery poll, mains back for one
    # poll in three) used to never trigger; the third critical poll in the window does.
    events = replay(load_trace(TRACES / "flapping.jsonl"), DEFAULT)
    assert [e.t for e in events if e.event == "trigger_shutdown"] == [20]
    assert [e.event for e in events].count("power_restored") == 3


def test_a_cap_on_time_on_battery_shuts_the_lying_battery_down_with_runtime_to_spare() -> None:
    # issue 27 item 7: ups.max_on_battery_seconds 120, on battery from t=5, claiming 1500 s
    capped = replace(DEFAULT, max_on_battery_s=120.0)
    events = replay(load_trace(TRACES / "lying-battery.jsonl"), capped)
    [trigger] = [e for e in events if e.event == "trigger_shutdown"]
    assert (trigger.t, trigger.runtime_s) == (125, 1500)
    assert "ups.max_on_battery_seconds 120" in trigger.reason


def test_every_shipped_trace_is_covered() -> None:
    assert {p.name for p in TRACES.glob("*.jsonl")} == {*EXPECTED, "flapping.jsonl"}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "JSON object"),
        ('{"status": "OL"}', "missing 't'"),
        ('{"t": -1, "status": "OL"}', "non-negative"),
        ('{"t": 1}', "'status' or 'error'"),
    ],
)
def test_malformed_lines_name_their_line(line: str, message: str) -> None:
    with pytest.raises(TraceError, match=message) as info:
        parse_trace_lines(['{"t": 0, "status": "OL"}', line], "x.jsonl")
    assert "x.jsonl:2" in str(info.value)


def test_time_going_backwards_is_rejected() -> None:
    with pytest.raises(TraceError, match="back in time"):
        parse_trace_lines(['{"t": 5, "status": "OL"}', '{"t": 4, "status": "OL"}'])


def test_garbage_numbers_become_unknown() -> None:
    [point] = parse_trace_lines(['{"t": 1, "status": "OB", "runtime": "n/a", "charge": -3}'])
    assert isinstance(point.poll, UpsReading)
    assert point.poll.runtime_s is None
    assert point.poll.charge_pct is None


def test_encode_roundtrip() -> None:
    reading = UpsReading(frozenset({"OB", "DISCHRG"}), 900.0, 71.0, 20.0)
    lines = [encode_point(12.0, reading), encode_point(14.0, CommError("refused"))]
    points = parse_trace_lines(lines)
    assert points[0].poll == reading
    assert points[1].poll == CommError("refused")
