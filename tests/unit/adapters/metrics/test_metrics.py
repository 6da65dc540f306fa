"""The metrics an operator alerts on: which series exist, with which labels and values."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from hecate.adapters.metrics.exposition import render_text
from hecate.adapters.metrics.registry import (
    NUT_ERROR_KINDS,
    REJECT_REASONS,
    Metrics,
    Role,
    plausible,
    ups_name,
)
from hecate.adapters.statedir.drill_history import KNOWN_DRILLS
from hecate.core.budget import Budget
from hecate.core.intent import IntentState
from hecate.core.readings import CommError, UpsReading
from hecate.core.run_history import Outcome
from hecate.drills.catalog import DRILLS

Sample = tuple[str, tuple[tuple[str, str], ...], float]


def samples(metrics: Metrics) -> list[Sample]:
    text = render_text(metrics.registry).decode()
    return [
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def values(metrics: Metrics, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: value for n, labels, value in samples(metrics) if n == name}


def daemon_like(tmp_path: Path, role: Role = "coordinator") -> Metrics:
    metrics = Metrics(ups="pyrphoros", role=role)
    metrics.watch_drills(tmp_path)
    return metrics


def test_every_labelled_counter_starts_at_zero_for_its_known_labels(tmp_path: Path) -> None:
    # Why: a counter that appears only at its first increment hides that increment from
    # increase()/rate(); the single real trigger of an outage would read as 0.
    m = daemon_like(tmp_path)
    runs = values(m, "hecate_runs_total")
    assert {dict(k)["kind"] for k in runs} == {"shutdown", "startup"}
    assert {dict(k)["outcome"] for k in runs} == {o.value for o in Outcome}
    assert len(runs) == 2 * len(Outcome)
    assert set(runs.values()) == {0.0}
    triggers = values(m, "hecate_triggers_total")
    assert triggers == {(("source", "ups"),): 0.0, (("source", "peer"),): 0.0}
    errors = values(m, "hecate_nut_errors_total")
    assert {dict(k)["kind"] for k in errors} == set(NUT_ERROR_KINDS)
    assert {dict(k)["ups"] for k in errors} == {"pyrphoros"}
    assert set(errors.values()) == {0.0}
    rejected = values(m, "hecate_coordination_rejected_total")
    assert {dict(k)["reason"] for k in rejected} == set(REJECT_REASONS)
    drills = values(m, "hecate_drill_runs_total")
    assert len(drills) == 2 * len(KNOWN_DRILLS)
    assert set(drills.values()) == {0.0}
    assert values(m, "hecate_ups_polls_total") == {(("ups", "pyrphoros"),): 0.0}


def test_a_peer_counts_only_its_own_ups_triggers_and_exports_reachability(
    tmp_path: Path,
) -> None:
    coordinator = daemon_like(tmp_path, "coordinator")
    assert values(coordinator, "hecate_coordinator_reachable") == {}
    coordinator.observe_coordinator(False)  # no-op: "unreachable" would be a lie here
    assert values(coordinator, "hecate_coordinator_reachable") == {}
    peer = daemon_like(tmp_path, "peer")
    assert values(peer, "hecate_triggers_total") == {(("source", "ups"),): 0.0}
    peer.observe_coordinator(False)
    assert values(peer, "hecate_coordinator_reachable") == {(): 0.0}
    peer.observe_coordinator(True)
    assert values(peer, "hecate_coordinator_reachable") == {(): 1.0}


def test_unknown_and_garbage_readings_are_absent_and_flagged(tmp_path: Path) -> None:
    m = daemon_like(tmp_path)
    # Firmware garbage seen in real dumps: a load of 4.6e126; no runtime at all.
    m.observe_poll(UpsReading(frozenset({"OB", "DISCHRG"}), None, 71.0, 4.6e126))
    assert values(m, "hecate_ups_runtime_seconds") == {}
    assert values(m, "hecate_ups_load_percent") == {}
    assert values(m, "hecate_ups_charge_percent") == {(("ups", "pyrphoros"),): 71.0}
    known = {dict(k)["quantity"]: v for k, v in values(m, "hecate_ups_reading_known").items()}
    assert known == {"runtime": 0.0, "charge": 1.0, "load": 0.0}
    assert values(m, "hecate_ups_on_battery") == {(("ups", "pyrphoros"),): 1.0}
    status = {dict(k)["flag"]: v for k, v in values(m, "hecate_ups_status").items()}
    assert status["OB"] == 1.0 and status["OL"] == 0.0
    assert not any(math.isnan(v) for _, _, v in samples(m))


def test_an_unreadable_ups_drops_its_readings_and_counts_the_error(tmp_path: Path) -> None:
    m = daemon_like(tmp_path)
    m.observe_poll(UpsReading(frozenset({"OL"}), 900.0, 100.0, 30.0))
    assert values(m, "hecate_ups_runtime_seconds") == {(("ups", "pyrphoros"),): 900.0}
    m.observe_poll(CommError("refused", "unreachable"))
    assert values(m, "hecate_ups_readable") == {(("ups", "pyrphoros"),): 0.0}
    # The last good values would be stale lies: gone, like the status flags.
    assert values(m, "hecate_ups_runtime_seconds") == {}
    assert values(m, "hecate_ups_status") == {}
    assert values(m, "hecate_ups_on_battery") == {}
    assert set(values(m, "hecate_ups_reading_known").values()) == {0.0}
    errors = values(m, "hecate_nut_errors_total")
    assert errors[(("kind", "unreachable"), ("ups", "pyrphoros"))] == 1.0
    assert values(m, "hecate_ups_polls_total") == {(("ups", "pyrphoros"),): 2.0}


def test_only_the_budget_source_in_use_is_exported(tmp_path: Path) -> None:
    m = daemon_like(tmp_path)
    m.observe_budget(Budget(estimate_s=300.0, threshold_s=330.0, source="fallback", samples=0))
    assert values(m, "hecate_shutdown_budget_seconds") == {(("source", "fallback"),): 300.0}
    m.observe_budget(Budget(estimate_s=120.0, threshold_s=132.0, source="history", samples=4))
    assert values(m, "hecate_shutdown_budget_seconds") == {(("source", "history"),): 120.0}
    assert values(m, "hecate_shutdown_threshold_seconds") == {(): 132.0}


def test_every_ups_series_carries_the_ups_label(tmp_path: Path) -> None:
    m = daemon_like(tmp_path)
    m.observe_poll(UpsReading(frozenset({"OL", "CHRG"}), 900.0, 80.0, 30.0))
    ups_series = [(n, dict(labels)) for n, labels, _ in samples(m) if n.startswith("hecate_ups_")]
    assert len(ups_series) > 10
    assert all(labels.get("ups") == "pyrphoros" for _, labels in ups_series), ups_series
    assert ups_name("pyrphoros@10.0.0.2:3493") == "pyrphoros"


def test_build_info_says_version_role_and_ups(tmp_path: Path) -> None:
    m = daemon_like(tmp_path, "peer")
    info = values(m, "hecate_build_info")
    assert len(info) == 1
    (labels, value), *_ = info.items()
    assert value == 1.0
    assert dict(labels)["role"] == "peer" and dict(labels)["ups"] == "pyrphoros"
    assert dict(labels)["version"]


def test_drill_history_gives_last_run_time_and_counts(tmp_path: Path) -> None:
    history = [
        {"drill": "power-outage", "passed": False, "started_at": 1000.0, "manual_steps": 1},
        {"drill": "power-outage", "passed": True, "started_at": 2000.0, "time_to_recover_s": 9},
    ]
    (tmp_path / "drills.json").write_text(json.dumps({"version": 1, "drills": history}))
    m = daemon_like(tmp_path)
    runs = values(m, "hecate_drill_runs_total")
    assert runs[(("drill", "power-outage"), ("result", "pass"))] == 1.0
    assert runs[(("drill", "power-outage"), ("result", "fail"))] == 1.0
    assert runs[(("drill", "foundation-recovery"), ("result", "fail"))] == 0.0
    when = values(m, "hecate_drill_last_run_timestamp_seconds")
    assert when == {(("drill", "power-outage"),): 2000.0}
    assert values(m, "hecate_drill_last_passed") == {(("drill", "power-outage"),): 1.0}
    assert values(m, "hecate_drill_last_recovery_seconds") == {(("drill", "power-outage"),): 9.0}


def test_a_corrupt_drill_history_gives_zero_counts_not_a_failed_scrape(tmp_path: Path) -> None:
    (tmp_path / "drills.json").write_text("[1, 2")
    m = daemon_like(tmp_path)
    assert set(values(m, "hecate_drill_runs_total").values()) == {0.0}


def test_known_drills_match_the_catalog() -> None:
    assert set(KNOWN_DRILLS) == set(DRILLS)


def test_metrics_do_not_import_the_drills() -> None:
    # The drills import the daemon, which imports the metrics: the metrics must stay below.
    code = (
        "import sys, hecate.adapters.metrics.registry; "
        "bad = [m for m in sys.modules if m.startswith('hecate.drills')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def full_exposition(tmp_path: Path, role: Role) -> str:
    m = daemon_like(tmp_path, role)
    (tmp_path / "drills.json").write_text(
        json.dumps({"drills": [{"drill": "power-outage", "passed": True, "started_at": 5.0}]})
    )
    m.observe_poll(UpsReading(frozenset({"OB", "DISCHRG"}), 600.0, 70.0, 30.0))
    m.observe_poll(CommError("timeout", "timeout"))
    m.observe_budget(Budget(estimate_s=300.0, threshold_s=330.0, source="fallback", samples=0))
    m.observe_intent(IntentState.SHUTTING_DOWN)
    m.observe_coordinator(True)
    m.debounce.set(2)
    m.runs.labels("shutdown", "success").inc()
    m.last_run.labels("shutdown", "total").set(12.5)
    m.triggers.labels("ups").inc()
    m.rejected.labels("stale").inc()
    return render_text(m.registry).decode()


@pytest.mark.parametrize("role", ["coordinator", "peer"])
def test_promtool_check_metrics_finds_nothing(tmp_path: Path, role: Role) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: scripts/setup installs Debian's prometheus package"
    text = full_exposition(tmp_path, role)
    done = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and not (done.stdout + done.stderr).strip(), (
        done.stdout + done.stderr
    )


@settings(max_examples=200, deadline=None)
@given(
    runtime=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
    charge=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
    load=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
)
def test_any_reading_exports_only_finite_plausible_values(
    runtime: float | None, charge: float | None, load: float | None
) -> None:
    m = Metrics(ups="u")
    m.observe_poll(UpsReading(frozenset({"OL"}), runtime, charge, load))
    assert all(math.isfinite(v) for _, _, v in samples(m))
    for name, quantity, given_value in (
        ("hecate_ups_runtime_seconds", "runtime", runtime),
        ("hecate_ups_charge_percent", "charge", charge),
        ("hecate_ups_load_percent", "load", load),
    ):
        exported = values(m, name)
        expected = plausible(quantity, given_value)
        known = values(m, "hecate_ups_reading_known")[(("quantity", quantity), ("ups", "u"))]
        if expected is None:
            assert exported == {} and known == 0.0
        else:
            assert exported == {(("ups", "u"),): expected} and known == 1.0
