"""Battery truth on synthetic traces whose truth is known by construction."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from hecate.adapters.metrics.exposition import render_text
from hecate.adapters.metrics.registry import Metrics
from hecate.core.battery import (
    BatteryTruth,
    analyse_trace,
    battery_truth,
    corrected_threshold,
    coverage,
)
from hecate.core.readings import UpsReading
from hecate.core.trace import TracePoint, parse_trace_lines
from tests.unit.daemon.test_daemon import World


def lines(*rows: dict[str, object]) -> list[TracePoint]:
    return parse_trace_lines([json.dumps(r) for r in rows])


def discharge(
    claim0: float, burn_per_s: float, seconds: int, step: int = 10, load: float = 34.0
) -> list[dict[str, object]]:
    """On battery for `seconds`, the claim falling `burn_per_s` claimed seconds per second."""
    return [
        {"t": float(t), "status": "OB DISCHRG", "runtime": claim0 - burn_per_s * t, "load": load}
        for t in range(0, seconds + 1, step)
    ]


def test_an_honest_ups_has_ratio_one() -> None:
    points = lines(*discharge(900, 1.0, 300), {"t": 310, "status": "OL CHRG", "runtime": 600})
    (truth,) = analyse_trace(points)
    assert abs(truth.ratio - 1.0) < 1e-9
    assert not truth.ran_out
    assert truth.load_pct == 34.0


def test_a_claim_burning_twice_as_fast_as_time_is_worth_half() -> None:
    # Why: 1200 s claimed, 600 s left after 300 s: each claimed second is worth 0.5 s.
    points = lines(*discharge(1200, 2.0, 300), {"t": 310, "status": "OL", "runtime": 600})
    (truth,) = analyse_trace(points)
    assert abs(truth.ratio - 0.5) < 1e-9
    assert abs(truth.discharge_rate - 2.0) < 1e-9


def test_a_ups_that_ran_out_is_measured_by_what_it_delivered() -> None:
    # Claimed 600 s at the start, low battery after 300 s (the claim stayed optimistic).
    rows = discharge(600, 0.5, 290)
    rows.append({"t": 300.0, "status": "OB LB", "runtime": 450})
    (truth,) = analyse_trace(lines(*rows))
    assert truth.ran_out
    assert abs(truth.ratio - 300 / 600) < 1e-9


def test_a_ups_that_vanished_on_battery_ran_out() -> None:
    rows = [*discharge(480, 1.0, 240), {"t": 250, "error": "connection refused"}]
    (truth,) = analyse_trace(lines(*rows))
    assert truth.ran_out and abs(truth.ratio - 240 / 480) < 1e-9


def test_blips_and_stretches_without_runtime_teach_nothing() -> None:
    blip = lines(*discharge(900, 1.0, 30), {"t": 40, "status": "OL"})
    assert analyse_trace(blip) == []
    no_runtime = lines(*[{"t": t, "status": "OB"} for t in range(0, 400, 10)])
    assert analyse_trace(no_runtime) == []
    mains = lines(*[{"t": t, "status": "OL", "runtime": 900} for t in range(0, 400, 10)])
    assert analyse_trace(mains) == []
    # The claim fell by 20 s in 5 min: too little to say anything (rounding, recalibration).
    flat = lines(*discharge(900, 20 / 300, 300), {"t": 310, "status": "OL"})
    assert analyse_trace(flat) == []


def test_the_correction_weighs_outages_by_their_length() -> None:
    long_liar = lines(*discharge(1200, 2.0, 300), {"t": 310, "status": "OL"})
    short_honest = lines(*discharge(900, 1.0, 100), {"t": 110, "status": "OL"})
    truth = battery_truth([("a", long_liar), ("b", short_honest)])
    assert truth.correction is not None
    assert abs(truth.correction - (0.5 * 300 + 1.0 * 100) / 400) < 1e-9
    assert [o.source for o in truth.outages] == ["a", "b"]
    assert battery_truth([]).correction is None


def test_coverage_says_what_the_battery_covers_at_the_current_load() -> None:
    truth = BatteryTruth((), correction=0.5)
    cover = coverage(truth, runtime_s=1220, load_pct=34, needed_s=330)
    assert cover.sentence() == "at 34 % load the UPS covers about 610 s; a shutdown needs 330 s"
    assert cover.ok and cover.margin_s == 280
    short = coverage(truth, runtime_s=400, load_pct=80, needed_s=330)
    assert not short.ok and "130 s short" in short.sentence()
    unlearned = coverage(BatteryTruth((), None), runtime_s=400, load_pct=None, needed_s=330)
    assert unlearned.covered_s == 400 and not unlearned.corrected


def test_learned_correction_only_moves_the_shutdown_earlier() -> None:
    assert corrected_threshold(330, BatteryTruth((), 0.5)) == 660
    assert corrected_threshold(330, BatteryTruth((), 1.4)) == 330  # never later
    assert corrected_threshold(330, BatteryTruth((), None)) == 330


@settings(max_examples=100, deadline=None)
@given(
    ratio=st.floats(min_value=0.2, max_value=2.0),
    seconds=st.integers(min_value=120, max_value=3000),
    threshold=st.floats(min_value=1, max_value=5000),
)
def test_a_known_ratio_is_recovered_and_never_delays_a_shutdown(
    ratio: float, seconds: int, threshold: float
) -> None:
    claim0 = seconds / ratio * 2  # enough claim left at the end
    points = lines(*discharge(claim0, 1 / ratio, seconds), {"t": seconds + 10, "status": "OL"})
    truth = battery_truth([("x", points)])
    if (claim0 - (claim0 - seconds / ratio)) < 30:  # too little burnt to learn from
        assert truth.correction is None
        return
    assert truth.correction is not None
    assert abs(truth.correction - ratio) < 1e-6 * max(1.0, ratio)
    assert corrected_threshold(threshold, truth) >= threshold


def test_the_metrics_export_the_correction_and_the_covered_runtime() -> None:
    m = Metrics(ups="u")
    m.observe_battery(BatteryTruth((), correction=0.5))
    m.observe_poll(UpsReading(frozenset({"OL"}), 1220.0, 100.0, 34.0))
    text = render_text(m.registry).decode()
    assert 'hecate_ups_runtime_correction_ratio{ups="u"} 0.5' in text
    assert 'hecate_ups_covered_runtime_seconds{ups="u"} 610.0' in text
    assert 'hecate_ups_outages_analysed{ups="u"} 0.0' in text


def write_liar_trace(state_dir: Path) -> None:
    traces = state_dir / "traces"
    traces.mkdir(parents=True)
    rows = [*discharge(1200, 2.0, 300), {"t": 310, "status": "OL"}]
    (traces / "outage-20260101T000000Z.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows)
    )


def test_the_daemon_is_advisory_unless_learned_is_chosen(tmp_path: Path) -> None:
    write_liar_trace(tmp_path / "state")
    advisory = World(tmp_path)
    assert advisory.daemon.battery.correction is not None
    assert abs(advisory.daemon.battery.correction - 0.5) < 1e-9
    assert advisory.daemon.params.threshold_s == advisory.daemon.budget.threshold_s


def test_learned_correction_raises_the_daemons_threshold(tmp_path: Path) -> None:
    write_liar_trace(tmp_path / "state")
    learned = World(
        tmp_path,
        ups={"target": "pyrphoros@localhost", "debounce_polls": 2, "runtime_correction": "learned"},
    )
    assert abs(learned.daemon.params.threshold_s - 2 * learned.daemon.budget.threshold_s) < 1e-6
    text = render_text(learned.daemon.metrics.registry).decode()
    assert f"hecate_shutdown_threshold_seconds {learned.daemon.params.threshold_s}" in text


def test_the_daemon_learns_from_an_outage_once_its_trace_closes(tmp_path: Path) -> None:
    w = World(tmp_path)
    assert w.daemon.battery.correction is None
    # 120 s on battery, the claim falling 3 s per second (well above the threshold throughout).
    for step in range(25):
        w.poll(UpsReading(frozenset({"OB", "DISCHRG"}), 3000 - 3 * 5 * step, 90, 40), dt=5)
    assert w.daemon.battery.correction is None  # still recording
    # the trace spans the whole outage episode: it closes once mains was stable for
    # ups.outage_clear_seconds (30 s) and the recorder's tail polls are written
    for _ in range(12):
        w.poll(UpsReading(frozenset({"OL"}), 2000, 90, 40), dt=5)
    assert w.daemon.battery.correction is not None
    assert abs(w.daemon.battery.correction - 1 / 3) < 1e-6
    text = render_text(w.daemon.metrics.registry).decode()
    assert 'hecate_ups_outages_analysed{ups="pyrphoros"} 1.0' in text
