"""The daemon's notifications: what it sees (polls, flows, triggers) turned into messages for
people and handed to the sender thread (hecate.adapters.notify.sender), never blocking.

Each instance tells about its own UPS; the events of the cluster (shutdown, startup, their
stages) come from the instance that runs the flow, so a coordinator and its peers never send
the same event twice. A forwarded trigger the coordinator did not take is told by the peer.
The open outage episode is kept in `state_dir/notify-state.json`, so a daemon restarted during
an outage does not announce it again.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from hecate.adapters.metrics.notify_series import NotifySeries
from hecate.adapters.metrics.registry import Metrics
from hecate.adapters.notify.sender import NotifySender
from hecate.adapters.notify.targets import load_targets
from hecate.adapters.statedir.drill_history import KNOWN_DRILLS, last_runs, load_history
from hecate.adapters.statedir.files import atomic_write_json, corrupt_counts, read_json
from hecate.adapters.systemd.selfupdate import UpdateFailedCache
from hecate.config.model import HecateConfig
from hecate.config.notify import NotifyTarget
from hecate.core import notify_events as ne
from hecate.core import supervisor_vocabulary as sv
from hecate.core.battery import BatteryTruth
from hecate.core.budget import Budget
from hecate.core.clock import Clock
from hecate.core.notify_watch import PollFacts, Throttle, WatchSettings, WatchState, admit, watch
from hecate.core.readings import CommError
from hecate.core.supervisor import SupervisorState
from hecate.errors import HecateError, StateError
from hecate.flows.report import FlowReport

log = logging.getLogger("hecate.daemon")

STATE_FILE = "notify-state.json"


def summary(report: FlowReport) -> ne.FlowSummary:
    failed = [
        (s.name, s.detail or s.status.value)
        for s in report.stages
        if s.status.value in ("failed", "partial")
    ]
    unreached = sorted(
        {node for s in report.stages for node, st in s.nodes.items() if st == "unreachable"}
    )
    return ne.FlowSummary(
        report.kind, report.outcome.value, report.duration_s, failed, unreached, report.message
    )


class DaemonView(Protocol):
    """What the notices read of the daemon: its budget and battery truth, as learned."""

    budget: Budget
    battery: BatteryTruth


DRILLS_EVERY_S = 3600.0  # drills.json changes only when a drill runs (from the CLI)


class Notices:
    def __init__(
        self, config: HecateConfig, metrics: Metrics, clocks: Clock, daemon: DaemonView
    ) -> None:
        self.config = config
        self.clocks = clocks
        self.daemon = daemon
        self.metrics = metrics
        self.where = ne.Where(
            config.coordination.peer_name or socket.gethostname(), str(config.ups.target)
        )
        self._lock = threading.Lock()
        self._save_lock = threading.Lock()
        self._episode_wall: float | None = None
        self._throttle = Throttle()
        self._report: FlowReport | None = None
        self._corrupt = corrupt_counts()
        try:
            targets: list[NotifyTarget] = load_targets(config)
        except HecateError as exc:
            log.error("notifications off: %s", exc)
            targets = []
        self.sender: NotifySender | None = None
        if targets:
            self.sender = NotifySender(
                config.state_dir, targets, retry_max_s=config.notify.retry_max_seconds
            )
            series = NotifySeries(
                metrics.registry, [t.name for t in targets], self.sender.spool.depth
            )
            self.sender.count = series.count
            self.sender.chores = self._chores
            self.sender.start()
        self._watch = self._restored()
        self.update_failed: Callable[[], bool] = UpdateFailedCache()
        self._update_told = False
        # first looked at an hour into the daemon's life: a restart is not a reminder
        self._drills_at: float | None = clocks.monotonic()
        self._drills_told: set[str] = set()

    # --- the open episode across restarts ---------------------------------------------------

    def _restored(self) -> WatchState:
        try:
            data = read_json(self.config.state_dir / STATE_FILE)
        except HecateError:
            return WatchState()
        start = data.get("episode_wall") if isinstance(data, dict) else None
        if not isinstance(start, int | float):
            return WatchState()
        ago = max(0.0, self.clocks.wall() - start)
        return WatchState(episode_since=self.clocks.monotonic() - ago, episode_told=True)

    def _save(self, before: WatchState, after: WatchState) -> None:
        """Record the told episode's start (or its end) in a thread of its own: a slow or
        failing disk never holds a poll."""
        if before.episode_told == after.episode_told or self.sender is None:
            return
        start = None
        if after.episode_told and after.episode_since is not None:
            start = self.clocks.wall() - (self.clocks.monotonic() - after.episode_since)
        self._episode_wall = start
        threading.Thread(
            target=self._write_episode, name="hecate-notify-state", daemon=True
        ).start()

    def _write_episode(self) -> None:
        with self._save_lock:  # the latest value wins, whichever thread writes last
            try:
                data = {"episode_wall": self._episode_wall}
                atomic_write_json(self.config.state_dir / STATE_FILE, data)
            except HecateError as exc:
                log.warning("cannot record the outage episode for notifications: %s", exc)

    # --- what the daemon sees ---------------------------------------------------------------

    def feed(self, event: sv.Event, effects: list[sv.Effect], sup: SupervisorState) -> None:
        """After each supervisor decision (any thread): never blocks on the network."""
        if self.sender is None:
            return
        wall = self.clocks.wall()
        out: list[ne.Notice] = []
        with self._lock:
            if isinstance(event, sv.Polled):
                out += self._polled(event, sup, wall)
            elif isinstance(event, sv.FlowFinished):
                out += self._flow_finished(event, wall)
            elif isinstance(event, sv.ForwardFailed):
                detail = "a forwarded shutdown trigger was not taken"
                out.append(ne.peer_unreachable(self.where, "the coordinator", detail, wall))
            for effect in effects:
                if isinstance(effect, sv.RunShutdown):
                    out.append(
                        ne.shutdown_triggered(
                            self.where, effect.reason, self.daemon.budget.estimate_s, wall
                        )
                    )
            corrupt = corrupt_counts()
            if corrupt != self._corrupt:
                new = sorted(k for k, v in corrupt.items() if v > self._corrupt.get(k, 0))
                self._corrupt = corrupt
                out.append(ne.state_set_aside(self.where, new, wall))
            self._throttle, out = admit(
                self._throttle, out, self.clocks.monotonic(), self.config.notify.max_per_hour
            )
            self.sender.submit(out)  # under the lock: in the order decided (never blocks)

    def _polled(self, event: sv.Polled, sup: SupervisorState, wall: float) -> list[ne.Notice]:
        poll, policy = event.poll, sup.policy
        reading = None if isinstance(poll, CommError) else poll
        waits = policy.startup_wait
        if sup.awaiting and waits is None and policy.startup_pending:
            waits = f"the UPS of {', '.join(sorted(sup.awaiting))}"
        facts = PollFacts(
            now=event.now,
            wall=wall,
            readable=reading is not None,
            detail=poll.message if isinstance(poll, CommError) else "",
            on_battery=policy.on_battery,
            episode=policy.outage_start is not None,
            runtime_s=reading.runtime_s if reading else None,
            charge_pct=reading.charge_pct if reading else None,
            threshold_s=event.params.threshold_s,
            replace_battery=reading is not None and "RB" in reading.status,
            startup_pending=policy.startup_pending,
            waits_for=waits,
            battery_ratio=self.daemon.battery.correction,
            coordinator_reachable=self._coordinator(),
        )
        settings = WatchSettings(
            self.config.notify.startup_wait_seconds, self.config.notify.ups_unreadable_seconds
        )
        before = self._watch
        self._watch, out = watch(before, facts, self.where, settings)
        self._save(before, self._watch)
        return out

    def _chores(self) -> None:
        """On the sender's thread, once a minute: a failed self-update (systemctl), told once
        per stretch of failure; drills overdue, looked at once an hour (the first an hour after
        start), told when a drill becomes overdue."""
        failed = self.update_failed()
        if failed != self._update_told:
            self._update_told = failed
            if failed:
                self._send(ne.self_update_failed(self.where, self.clocks.wall()))
        now = self.clocks.monotonic()
        if self._drills_at is None or now - self._drills_at >= DRILLS_EVERY_S:
            self._drills_at = now
            self._drills()

    def _drills(self) -> None:
        try:
            history = load_history(self.config.state_dir)
        except StateError:  # set aside and told as state_set_aside; nothing known to be overdue
            return
        wall = self.clocks.wall()
        overdue = ne.overdue_drills(last_runs(history), KNOWN_DRILLS, wall, ne.DRILL_MAX_AGE_S)
        if set(overdue) - self._drills_told:
            self._send(ne.drills_overdue(self.where, overdue, wall))
        self._drills_told = set(overdue)

    def send(self, notice: ne.Notice) -> None:
        """One notice from elsewhere in the daemon (load shedding), throttled as the others."""
        self._send(notice)

    def _send(self, notice: ne.Notice) -> None:
        with self._lock:
            self._throttle, out = admit(
                self._throttle, [notice], self.clocks.monotonic(), self.config.notify.max_per_hour
            )
            if self.sender is not None:
                self.sender.submit(out)

    def _coordinator(self) -> bool | None:
        gauge = self.metrics.coordinator_reachable  # a peer's probe (hecate.daemon.background)
        return None if gauge is None else gauge.labels().value == 1

    def _flow_finished(self, event: sv.FlowFinished, wall: float) -> list[ne.Notice]:
        report, self._report = self._report, None
        if report is not None and report.kind == event.kind.value:
            flow = summary(report)
        else:
            flow = ne.FlowSummary(event.kind.value, event.outcome.value, 0.0, detail=event.reason)
        if event.outcome is sv.FlowOutcome.REFUSED:
            flow = replace(flow, outcome="refused", detail="a startup guard said no")
        return ne.flow_finished(self.where, flow, self.daemon.budget.estimate_s, wall)

    def finished(self, report: FlowReport) -> None:
        """A flow's report (before its FlowFinished event)."""
        with self._lock:
            self._report = report

    def close(self) -> None:
        if self.sender is not None:
            self.sender.close()
