"""The shipped Grafana dashboard: only exported series, every series shown, importable."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from hecate.adapters.metrics.exposition import render_text
from hecate.adapters.metrics.registry import Metrics
from hecate.core.battery import BatteryTruth
from hecate.core.budget import Budget
from hecate.core.intent import IntentState
from hecate.core.readings import UpsReading

DASHBOARD = Path(__file__).resolve().parents[4] / "configs" / "grafana" / "hecate-dashboard.json"
NOT_ON_A_PANEL: set[str] = set()  # every exported series is worth a panel today


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def expressions() -> list[str]:
    return [t["expr"] for p in panels() for t in p["targets"]]


def exported_names(tmp_path: Path) -> set[str]:
    names: set[str] = set()
    for role in ("coordinator", "peer"):
        metrics = Metrics(ups="u", role=role)
        metrics.watch_drills(tmp_path)
        metrics.observe_poll(UpsReading(frozenset({"OB"}), 600.0, 70.0, 30.0))
        metrics.observe_battery(BatteryTruth((), 0.9))
        metrics.observe_coordinator(True)
        metrics.observe_budget(Budget(300.0, 330.0, "fallback", 0))
        metrics.observe_intent(IntentState.NORMAL)
        metrics.last_run.labels("shutdown", "total").set(1)
        text = render_text(metrics.registry).decode()
        names |= set(re.findall(r"^(hecate_[a-z_]+)[{ ]", text, re.MULTILINE))
    (tmp_path / "drills.json").write_text(
        json.dumps({"drills": [{"drill": "power-outage", "passed": True, "started_at": 1.0,
                                "time_to_recover_s": 2.0}]})
    )  # fmt: skip
    metrics = Metrics()
    metrics.watch_drills(tmp_path)
    text = render_text(metrics.registry).decode()
    names |= set(re.findall(r"^(hecate_drill_[a-z_]+)[{ ]", text, re.MULTILINE))
    return {name for name in names if not name.endswith("_created")}


def used_names() -> set[str]:
    return {name for expr in expressions() for name in re.findall(r"hecate_[a-z_]+", expr)}


def test_every_dashboard_metric_is_exported(tmp_path: Path) -> None:
    used = used_names()
    assert used, "the dashboard queries nothing"
    exported = exported_names(tmp_path)
    assert used <= exported, f"not exported: {sorted(used - exported)}"


def test_every_exported_series_is_on_a_panel(tmp_path: Path) -> None:
    missing = exported_names(tmp_path) - used_names() - NOT_ON_A_PANEL
    assert not missing, f"exported but on no panel: {sorted(missing)}"


def test_queries_follow_the_instance_and_ups_variables() -> None:
    names = {v["name"] for v in dashboard()["templating"]["list"]}
    assert {"datasource", "instance", "ups"} <= names
    for expr in expressions():
        assert 'instance=~"$instance"' in expr, expr
        if "hecate_ups_" in expr:
            assert 'ups=~"$ups"' in expr, expr


def test_no_fixed_windows_only_grafana_ranges() -> None:
    # Why: a fixed [1d] on a 6 h dashboard counts what the operator is not looking at.
    for expr in expressions():
        for window in re.findall(r"\[([^\]]+)\]", expr):
            assert window in ("$__range", "$__rate_interval"), expr


def test_zero_one_stats_say_what_they_mean() -> None:
    for title in ("On battery", "UPS readable", "Coordinator reachable (peers)"):
        (panel,) = [p for p in panels() if p["title"] == title]
        mappings = panel["fieldConfig"]["defaults"]["mappings"]
        texts = {k: v["text"] for m in mappings for k, v in m["options"].items()}
        assert set(texts) == {"0", "1"} and all(texts.values()), title
        colors = {k: v["color"] for m in mappings for k, v in m["options"].items()}
        assert "red" in colors.values(), title
    (on_battery,) = [p for p in panels() if p["title"] == "On battery"]
    assert on_battery["fieldConfig"]["defaults"]["mappings"][0]["options"]["1"]["color"] == "red"
    (intent,) = [p for p in panels() if p["title"] == "Intent"]
    assert intent["options"]["textMode"] == "name"
    assert intent["targets"][0]["legendFormat"] == "{{state}}"


def test_the_dashboard_imports_like_a_grafana_com_one() -> None:
    data = dashboard()
    assert data["__inputs"][0]["pluginId"] == "prometheus"
    required = {(r["type"], r["id"]) for r in data["__requires"]}
    assert ("datasource", "prometheus") in required and ("grafana", "grafana") in required
    assert {("panel", p["type"]) for p in panels()} <= required
    ids = [p["id"] for p in data["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels():
        assert panel.get("description"), panel["title"]
