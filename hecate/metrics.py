"""Prometheus metrics: one registry per daemon, names prefixed `hecate_` with their units."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Info, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hecate import __version__
from hecate.addresses import ListenAddress
from hecate.budget import Budget
from hecate.drills.base import load_history
from hecate.errors import StateError
from hecate.httpserve import BoundedServer, Limits
from hecate.intent import IntentState
from hecate.readings import CommError, Poll
from hecate.statefiles import corrupt_counts

UPS_FLAGS = ("OL", "OB", "LB", "FSD", "CHRG", "DISCHRG", "BYPASS", "RB", "OVER", "TRIM", "BOOST")


class CorruptStateCollector(Collector):
    """State files this process found unreadable and set aside, by file name."""

    def collect(self) -> Iterable[CounterMetricFamily]:
        family = CounterMetricFamily(
            "hecate_state_corrupt_files",
            "State files found unreadable and set aside as NAME.corrupt-TIMESTAMP",
            labels=["file"],
        )
        for name, count in sorted(corrupt_counts().items()):
            family.add_metric([name], count)
        yield family


class DrillHistoryCollector(Collector):
    """Drill results, read from state_dir/drills.json at each scrape (drills run as a CLI)."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    def collect(self) -> Iterable[Metric]:
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
        runs = CounterMetricFamily(
            "hecate_drill_runs", "Drill runs by result", labels=["drill", "result"]
        )
        try:
            history = load_history(self.state_dir)
        except StateError:
            history = []
        last: dict[str, dict[str, object]] = {}
        counts: dict[tuple[str, str], int] = {}
        for entry in history:
            name = str(entry.get("drill", "?"))
            last[name] = entry
            result = "pass" if entry.get("passed") else "fail"
            counts[(name, result)] = counts.get((name, result), 0) + 1
        for name, entry in sorted(last.items()):
            passed.add_metric([name], 1.0 if entry.get("passed") else 0.0)
            seconds = entry.get("time_to_recover_s")
            if isinstance(seconds, int | float):
                recovery.add_metric([name], float(seconds))
            steps = entry.get("manual_steps", 0)
            manual.add_metric([name], float(steps) if isinstance(steps, int | float) else 0.0)
        for (name, result), count in sorted(counts.items()):
            runs.add_metric([name, result], count)
        return [passed, recovery, manual, runs]


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.build = Info("hecate_build", "Hecate build information", registry=r)
        self.build.info({"version": __version__})
        self.ups_status = Gauge(
            "hecate_ups_status", "UPS status flag present (1) or not (0)", ["flag"], registry=r
        )
        self.on_battery = Gauge(
            "hecate_ups_on_battery", "1 while the UPS is on battery", registry=r
        )
        self.ups_up = Gauge("hecate_ups_readable", "1 when the last UPS poll succeeded", registry=r)
        self.runtime = Gauge(
            "hecate_ups_runtime_seconds", "UPS runtime estimate (NaN when unknown)", registry=r
        )
        self.charge = Gauge(
            "hecate_ups_charge_percent", "Battery charge (NaN when unknown)", registry=r
        )
        self.load = Gauge("hecate_ups_load_percent", "UPS load (NaN when unknown)", registry=r)
        self.threshold = Gauge(
            "hecate_shutdown_threshold_seconds",
            "Runtime below which a shutdown triggers (safety factor x budget)",
            registry=r,
        )
        self.budget = Gauge(
            "hecate_shutdown_budget_seconds",
            "Estimated shutdown duration",
            ["source"],
            registry=r,
        )
        self.budget_samples = Gauge(
            "hecate_shutdown_budget_samples", "Successful runs behind the budget", registry=r
        )
        self.debounce = Gauge(
            "hecate_debounce_count", "Consecutive critical polls so far", registry=r
        )
        self.intent = Gauge(
            "hecate_intent_state", "1 for the current intent state", ["state"], registry=r
        )
        self.last_run = Gauge(
            "hecate_last_run_duration_seconds",
            "Duration of the last run, per kind and stage (stage=total for the whole run)",
            ["kind", "stage"],
            registry=r,
        )
        self.runs = Counter(
            "hecate_runs_total", "Runs by kind and outcome", ["kind", "outcome"], registry=r
        )
        self.triggers = Counter(
            "hecate_triggers_total", "Shutdown triggers by source", ["source"], registry=r
        )
        self.nut_errors = Counter(
            "hecate_nut_errors_total", "Failed UPS polls by kind", ["kind"], registry=r
        )
        self.coordinator_reachable = Gauge(
            "hecate_coordinator_reachable",
            "1 when the coordinator answered the last request (peers only)",
            registry=r,
        )
        self.rejected = Counter(
            "hecate_coordination_rejected_total",
            "Coordination requests rejected (bad signature, malformed)",
            ["reason"],
            registry=r,
        )
        self.polls = Counter("hecate_ups_polls_total", "UPS polls", registry=r)
        self._server: BoundedServer | None = None
        r.register(CorruptStateCollector())

    def watch_drills(self, state_dir: Path) -> None:
        self.registry.register(DrillHistoryCollector(state_dir))

    def observe_poll(self, poll: Poll) -> None:
        self.polls.inc()
        nan = float("nan")
        if isinstance(poll, CommError):
            self.ups_up.set(0)
            self.nut_errors.labels(poll.kind).inc()
            return
        self.ups_up.set(1)
        for flag in UPS_FLAGS:
            self.ups_status.labels(flag).set(1 if flag in poll.status else 0)
        self.on_battery.set(1 if poll.on_battery else 0)
        self.runtime.set(poll.runtime_s if poll.runtime_s is not None else nan)
        self.charge.set(poll.charge_pct if poll.charge_pct is not None else nan)
        self.load.set(poll.load_pct if poll.load_pct is not None else nan)

    def observe_budget(self, budget: Budget) -> None:
        self.threshold.set(budget.threshold_s)
        for source in ("history", "fallback"):
            self.budget.labels(source).set(budget.estimate_s if source == budget.source else 0)
        self.budget_samples.set(budget.samples)

    def observe_intent(self, state: IntentState) -> None:
        for each in IntentState:
            self.intent.labels(each.value).set(1 if each is state else 0)

    def serve(self, listen: ListenAddress | str, limits: Limits | None = None) -> int:
        """Serve /metrics on `[host]:port` (bounded: see hecate.httpserve); the bound port (0
        picks a free one). An empty host means every interface, named on purpose."""
        app = make_wsgi_app(self.registry)
        self._server = BoundedServer(listen, app, name="metrics", limits=limits or Limits())
        self._server.start()
        return self._server.port

    @property
    def http(self) -> BoundedServer | None:
        return self._server

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
