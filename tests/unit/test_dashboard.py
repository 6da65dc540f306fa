"""The shipped Grafana dashboard only uses metrics the daemon exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import generate_latest

from hecate.intent import IntentState
from hecate.metrics import Metrics
from hecate.readings import UpsReading

DASHBOARD = Path(__file__).resolve().parents[2] / "configs" / "grafana" / "hecate-dashboard.json"


def test_every_dashboard_metric_is_exported(tmp_path: Path) -> None:
    metrics = Metrics(role="peer")
    metrics.observe_poll(UpsReading(frozenset({"OB"}), 600.0, 70.0, 30.0))
    metrics.observe_coordinator(True)
    metrics.watch_drills(tmp_path)
    (tmp_path / "drills.json").write_text(
        json.dumps(
            {
                "drills": [
                    {
                        "drill": "power-outage",
                        "passed": True,
                        "time_to_recover_s": 12.5,
                        "manual_steps": 0,
                    }
                ]
            }
        )
    )
    metrics.runs.labels("shutdown", "success").inc()
    metrics.triggers.labels("ups").inc()
    metrics.nut_errors.labels("ups", "timeout").inc()
    metrics.rejected.labels("bad_signature").inc()
    metrics.last_run.labels("shutdown", "total").set(1)
    metrics.budget.labels("fallback").set(300)
    metrics.observe_intent(IntentState.NORMAL)
    exported = set(
        re.findall(
            r"^(hecate_[a-z_]+?)(?:_total|_created)?[{ ]",
            generate_latest(metrics.registry).decode(),
            re.MULTILINE,
        )
    )
    exported |= {f"{name}_total" for name in exported}
    dashboard = json.loads(DASHBOARD.read_text())
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"hecate_[a-z_]+", target["expr"])
    }
    assert used, "the dashboard queries nothing"
    assert used <= exported, f"not exported: {sorted(used - exported)}"
