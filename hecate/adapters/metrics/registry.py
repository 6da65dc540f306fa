"""Prometheus metrics: one registry per daemon, names prefixed `hecate_` with their units.

Rules the series follow, so that alerts and `increase()` work (README, "Metrics"):
- every labelled counter exists at 0 for its known label values from the start, so the first
  event is a step Prometheus can see;
- a reading the UPS does not give (or gives as garbage) is absent, never NaN, and
  `hecate_ups_reading_known{quantity}` says so explicitly;
- series that do not apply to a role are not exported (`hecate_coordinator_reachable` on a
  coordinator), nor is a budget source that is not in use;
- UPS series carry a `ups` label (the NUT UPS name), as the common NUT exporters do.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal

from hecate import __version__
from hecate.adapters.http_server import BoundedServer, Limits
from hecate.adapters.metrics.drill_series import DrillHistoryCollector
from hecate.adapters.metrics.etcd_series import EtcdCollector
from hecate.adapters.metrics.exposition import (
    Collector,
    CollectorRegistry,
    Counter,
    CounterMetricFamily,
    Family,
    Gauge,
    GaugeMetricFamily,
    make_wsgi_app,
)
from hecate.adapters.metrics.feed_series import FeedCollector
from hecate.adapters.statedir.files import corrupt_counts
from hecate.adapters.statedir.unsaved import write_failure_counts
from hecate.adapters.systemd.selfupdate import UpdateFailedCache
from hecate.config.addresses import ListenAddress
from hecate.core.battery import BatteryTruth
from hecate.core.budget import Budget
from hecate.core.intent import IntentState
from hecate.core.readings import CommError, Poll, UpsReading
from hecate.core.run_history import Outcome
from hecate.core.supervisor import SupervisorState

Role = Literal["coordinator", "peer"]

UPS_FLAGS = ("OL", "OB", "LB", "FSD", "CHRG", "DISCHRG", "BYPASS", "RB", "OVER", "TRIM", "BOOST")
RUN_KINDS = ("shutdown", "startup")
# The state files a corrupt copy can be set aside from (hecate.adapters.statedir.store,
# flows.ledger, drills).
KNOWN_STATE_FILES = ("intent.json", "runs.json", "ledger.json", "drills.json")
# The files a flow writes (hecate.adapters.statedir.save), whose refused writes are counted.
FLOW_STATE_FILES = (
    "intent.json",
    "runs.json",
    "ledger.json",
    "last-shutdown-report.json",
    "last-startup-report.json",
    "hecate.lock",
)
# CommError kinds the adapters produce (hecate.adapters.nut's KIND_*, "error" for a reader that
# raised,
# "unknown_status" when the policy cannot read a status); others are counted when they occur.
NUT_ERROR_KINDS = (
    "unreachable",
    "driver_down",
    "auth",
    "timeout",
    "unknown_ups",
    "protocol",
    "error",
)
# hecate.adapters.peers.http's rejection reasons.
REJECT_REASONS = ("malformed", "unsigned", "bad_timestamp", "stale", "bad_signature", "replayed")
# The daemon's background chores (hecate.daemon.chore_watch), each failure counted.
BACKGROUND_CHORES = ("warmup", "cache", "probe", "ask_peers", "forward", "trace", "shed")
QUANTITIES = ("runtime", "charge", "load")
# Plausible ranges: beyond them a reading is firmware garbage (real dumps hold loads of 1e126,
# charges of 255) and is exported as unknown rather than drawn or alerted on.
PLAUSIBLE: dict[str, tuple[float, float]] = {
    "runtime": (0.0, 7 * 86400.0),
    "charge": (0.0, 100.0),
    "load": (0.0, 200.0),
}


def ups_name(target: str) -> str:
    """The NUT UPS name of a `ups@host[:port]` target (the `ups` label)."""
    return target.partition("@")[0]


def plausible(quantity: str, value: float | None) -> float | None:
    """The value when it is a finite reading inside its plausible range, else None."""
    if value is None or not math.isfinite(value):
        return None
    low, high = PLAUSIBLE[quantity]
    return value if low <= value <= high else None


def reading_values(reading: UpsReading) -> dict[str, float | None]:
    """runtime, charge and load of a reading, None where unknown or implausible."""
    return {
        "runtime": plausible("runtime", reading.runtime_s),
        "charge": plausible("charge", reading.charge_pct),
        "load": plausible("load", reading.load_pct),
    }


def ups_families(ups: str, poll: Poll | None, truth: BatteryTruth | None = None) -> list[Family]:
    """The UPS gauges for the last poll (None: not polled yet) and the battery truth learned
    from recorded outages. Pure: the collector's core."""
    readable = GaugeMetricFamily(
        "hecate_ups_readable", "1 when the last UPS poll succeeded", labels=["ups"]
    )
    known = GaugeMetricFamily(
        "hecate_ups_reading_known",
        "1 when the UPS gave a plausible value for the quantity (runtime, charge, load) "
        "at the last poll; the quantity's own series is absent while this is 0",
        labels=["ups", "quantity"],
    )
    status = GaugeMetricFamily(
        "hecate_ups_status",
        "UPS status flag present (1) or not (0); absent while the UPS is unreadable",
        labels=["ups", "flag"],
    )
    on_battery = GaugeMetricFamily(
        "hecate_ups_on_battery", "1 while the UPS is on battery (OB)", labels=["ups"]
    )
    runtime = GaugeMetricFamily(
        "hecate_ups_runtime_seconds",
        "Runtime the UPS claims (battery.runtime); absent when unknown",
        labels=["ups"],
    )
    charge = GaugeMetricFamily(
        "hecate_ups_charge_percent", "Battery charge; absent when unknown", labels=["ups"]
    )
    load = GaugeMetricFamily(
        "hecate_ups_load_percent", "UPS load; absent when unknown", labels=["ups"]
    )
    ratio = GaugeMetricFamily(
        "hecate_ups_runtime_correction_ratio",
        "Runtime delivered / runtime claimed in the last recorded outages (1 = honest UPS); "
        "absent before the first usable outage",
        labels=["ups"],
    )
    analysed = GaugeMetricFamily(
        "hecate_ups_outages_analysed",
        "Recorded outages behind hecate_ups_runtime_correction_ratio",
        labels=["ups"],
    )
    covered = GaugeMetricFamily(
        "hecate_ups_covered_runtime_seconds",
        "The UPS's runtime claim times the learned correction: what the battery covers now",
        labels=["ups"],
    )
    if truth is not None:
        analysed.add_metric([ups], float(len(truth.outages)))
        if truth.correction is not None:
            ratio.add_metric([ups], truth.correction)
    reading = poll if isinstance(poll, UpsReading) else None
    readable.add_metric([ups], 1.0 if reading is not None else 0.0)
    values = reading_values(reading) if reading is not None else dict.fromkeys(QUANTITIES)
    for quantity in QUANTITIES:
        known.add_metric([ups, quantity], 0.0 if values[quantity] is None else 1.0)
    if reading is not None:
        for flag in UPS_FLAGS:
            status.add_metric([ups, flag], 1.0 if flag in reading.status else 0.0)
        on_battery.add_metric([ups], 1.0 if reading.on_battery else 0.0)
        for family, quantity in ((runtime, "runtime"), (charge, "charge"), (load, "load")):
            value = values[quantity]
            if value is not None:
                family.add_metric([ups], value)
        claim = values["runtime"]
        if claim is not None and truth is not None and truth.correction is not None:
            covered.add_metric([ups], claim * truth.correction)
    return [readable, known, status, on_battery, runtime, charge, load, ratio, analysed, covered]


class UpsCollector(Collector):
    """Exports the last poll at each scrape: unknown values are left out, not set to NaN."""

    def __init__(self, ups: str) -> None:
        self.ups = ups
        self.last: Poll | None = None
        self.truth: BatteryTruth | None = None

    def collect(self) -> Iterable[Family]:
        return ups_families(self.ups, self.last, self.truth)


class CorruptStateCollector(Collector):
    """State files this process found unreadable and set aside, by file name."""

    def collect(self) -> Iterable[Family]:
        family = CounterMetricFamily(
            "hecate_state_corrupt_files",
            "State files found unreadable and set aside as NAME.corrupt-TIMESTAMP",
            labels=["file"],
        )
        # the known files are always present (at 0), so the first one set aside is a step
        counts = dict.fromkeys(KNOWN_STATE_FILES, 0) | corrupt_counts()
        for name, count in sorted(counts.items()):
            family.add_metric([name], count)
        yield family


class StateWriteFailuresCollector(Collector):
    """Writes the state disk refused (kept in memory and the runtime dir until it allows)."""

    def collect(self) -> Iterable[Family]:
        family = CounterMetricFamily(
            "hecate_state_write_failures",
            "State file writes the disk refused (full, read-only, gone, failing); the content "
            "is kept in memory and under the runtime directory until the disk allows",
            labels=["file"],
        )
        counts = dict.fromkeys(FLOW_STATE_FILES, 0) | write_failure_counts()
        for name, count in sorted(counts.items()):
            family.add_metric([name], count)
        yield family


class SelfUpdateCollector(Collector):
    """1 while systemd shows hecate-update.service failed: Hecate is not updating itself."""

    def __init__(self, failed: Callable[[], bool]) -> None:
        self.failed = failed

    def collect(self) -> Iterable[Family]:
        family = GaugeMetricFamily(
            "hecate_self_update_failed",
            "1 when the last hecate-update run failed (it could not or would not update)",
        )
        family.add_metric([], 1.0 if self.failed() else 0.0)
        yield family


class Metrics:
    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        ups: str = "ups",
        role: Role = "coordinator",
        update_failed: Callable[[], bool] | None = None,
    ) -> None:
        self.registry = registry or CollectorRegistry()
        self.ups = ups
        self.role = role
        r = self.registry
        self.build = Gauge(
            "hecate_build_info",
            "Always 1; labels say the version, role and UPS (join on instance)",
            ["version", "role", "ups"],
            registry=r,
        )
        self.build.labels(__version__, role, ups).set(1)
        self._ups = UpsCollector(ups)
        r.register(self._ups)
        self.polls = Counter("hecate_ups_polls", "UPS polls", ["ups"], registry=r)
        self.polls.labels(ups)
        self.nut_errors = Counter(
            "hecate_nut_errors", "Failed UPS polls by kind", ["ups", "kind"], registry=r
        )
        for kind in NUT_ERROR_KINDS:
            self.nut_errors.labels(ups, kind)
        self.threshold = Gauge(
            "hecate_shutdown_threshold_seconds",
            "Runtime below which a shutdown triggers (safety factor x budget)",
            registry=r,
        )
        self.budget = Gauge(
            "hecate_shutdown_budget_seconds",
            "Estimated shutdown duration; `source` says where it comes from (history, fallback)",
            ["source"],
            registry=r,
        )
        self.budget_samples = Gauge(
            "hecate_shutdown_budget_samples", "Successful runs behind the budget", registry=r
        )
        self.debounce = Gauge(
            "hecate_debounce_critical_polls", "Consecutive critical polls so far", registry=r
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
            "hecate_runs", "Runs by kind and outcome", ["kind", "outcome"], registry=r
        )
        for kind in RUN_KINDS:
            for outcome in Outcome:
                self.runs.labels(kind, outcome.value)
        self.triggers = Counter(
            "hecate_triggers",
            "Shutdown triggers by source (ups: this instance's UPS; peer: a peer's request)",
            ["source"],
            registry=r,
        )
        for source in ("ups", "peer") if role == "coordinator" else ("ups",):
            self.triggers.labels(source)
        self.coordinator_reachable: Gauge | None = None
        if role == "peer":
            self.coordinator_reachable = Gauge(
                "hecate_coordinator_reachable",
                "1 when the coordinator answered the last request (peers only)",
                registry=r,
            )
        self.rejected = Counter(
            "hecate_coordination_rejected",
            "Coordination requests rejected (bad signature, malformed, replayed)",
            ["reason"],
            registry=r,
        )
        for reason in REJECT_REASONS:
            self.rejected.labels(reason)
        self.background_failures = Counter(
            "hecate_background_failures",
            "Failed runs of a background chore (warm-up, cache, probe, peers, forward, trace)",
            ["chore"],
            registry=r,
        )
        for chore in BACKGROUND_CHORES:
            self.background_failures.labels(chore)
        self._server: BoundedServer | None = None
        r.register(CorruptStateCollector())
        r.register(StateWriteFailuresCollector())
        r.register(SelfUpdateCollector(update_failed or UpdateFailedCache()))

    def watch_drills(
        self, state_dir: Path, supervisor: Callable[[], SupervisorState | None] | None = None
    ) -> None:
        """The drills' history; with `supervisor` (the daemon's), the metrics per feed too."""
        self.registry.register(DrillHistoryCollector(state_dir))
        if supervisor is not None:
            self.registry.register(FeedCollector(supervisor))
        self.registry.register(EtcdCollector(state_dir))

    def observe_poll(self, poll: Poll) -> None:
        self.polls.labels(self.ups).inc()
        self._ups.last = poll
        if isinstance(poll, CommError):
            self.nut_errors.labels(self.ups, poll.kind).inc()

    def observe_battery(self, truth: BatteryTruth) -> None:
        self._ups.truth = truth

    def observe_budget(self, budget: Budget) -> None:
        self.threshold.set(budget.threshold_s)
        self.budget.clear()  # only the source in use: an inactive one is not a 0 s budget
        self.budget.labels(budget.source).set(budget.estimate_s)
        self.budget_samples.set(budget.samples)

    def observe_intent(self, state: IntentState) -> None:
        for each in IntentState:
            self.intent.labels(each.value).set(1 if each is state else 0)

    def observe_coordinator(self, reachable: bool) -> None:
        """A peer's request to the coordinator was answered (or not); no-op elsewhere."""
        if self.coordinator_reachable is not None:
            self.coordinator_reachable.set(1 if reachable else 0)

    def serve(self, listen: ListenAddress | str, limits: Limits | None = None) -> int:
        """Serve /metrics on `[host]:port` (bounded: see hecate.adapters.http_server); the bound
        port (0
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
