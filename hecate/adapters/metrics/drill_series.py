"""The drill series (`hecate_drill_*`), read from the drill history file at each scrape.

Only `hecate.adapters.statedir.drill_history` (the file) is imported, never `hecate.drills`: the
daemon's metrics
must not load Ansible or lightkube (an import-linter contract in pyproject.toml checks it).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hecate.adapters.metrics.exposition import (
    Collector,
    CounterMetricFamily,
    Family,
    GaugeMetricFamily,
)
from hecate.adapters.statedir.drill_history import KNOWN_DRILLS, load_history
from hecate.errors import StateError


def drill_families(history: list[dict[str, Any]], known: Iterable[str]) -> list[Family]:
    """Drill series from the drill history (pure)."""
    passed = GaugeMetricFamily(
        "hecate_drill_last_passed", "1 when the drill's last run passed", labels=["drill"]
    )
    recovery = GaugeMetricFamily(
        "hecate_drill_last_recovery_seconds",
        "Time to recover in the drill's last run",
        labels=["drill"],
    )
    manual = GaugeMetricFamily(
        "hecate_drill_last_manual_steps",
        "Manual steps the drill's last run needed",
        labels=["drill"],
    )
    when = GaugeMetricFamily(
        "hecate_drill_last_run_timestamp_seconds",
        "Unix time the drill last ran; absent for a drill never run",
        labels=["drill"],
    )
    runs = CounterMetricFamily(
        "hecate_drill_runs",
        "Drill runs by result, from the kept drill history (0 for a drill never run)",
        labels=["drill", "result"],
    )
    last: dict[str, dict[str, Any]] = {}
    counts: dict[tuple[str, str], int] = {
        (name, result): 0 for name in known for result in ("pass", "fail")
    }
    for entry in history:
        name = str(entry.get("drill", "?"))
        last[name] = entry
        result = "pass" if entry.get("passed") else "fail"
        counts.setdefault((name, "pass"), 0)
        counts.setdefault((name, "fail"), 0)
        counts[(name, result)] += 1
    for name, entry in sorted(last.items()):
        passed.add_metric([name], 1.0 if entry.get("passed") else 0.0)
        seconds = _number(entry.get("time_to_recover_s"))
        if seconds is not None:
            recovery.add_metric([name], seconds)
        steps = _number(entry.get("manual_steps"))
        manual.add_metric([name], steps if steps is not None else 0.0)
        started = _number(entry.get("started_at"))
        if started is not None:
            when.add_metric([name], started)
    for (name, result), count in sorted(counts.items()):
        runs.add_metric([name, result], count)
    return [passed, recovery, manual, when, runs]


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


class DrillHistoryCollector(Collector):
    """Drill results, read from state_dir/drills.json at each scrape (drills run as a CLI)."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    def collect(self) -> Iterable[Family]:
        try:
            history = load_history(self.state_dir)
        except StateError:
            history = []
        return drill_families(history, KNOWN_DRILLS)
