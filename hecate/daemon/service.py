"""The daemon's shell: poll the UPS, feed the policy, carry out actions, serve metrics and peers.

Flows run in a worker thread so that polling goes on during a startup: a new outage must be able
to stop it. The daemon never dies on UPS errors; they are events, log lines and metrics.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from hecate.adapters.http_server import Limits, connection_cap, reserve_file_descriptors
from hecate.adapters.metrics.registry import Metrics, ups_name
from hecate.adapters.peers.http import (
    CoordinatorClient,
    CoordinatorHandlers,
    CoordinatorServer,
    TriggerRequest,
)
from hecate.adapters.statedir.awaiting import save_awaiting
from hecate.adapters.statedir.save import take_over
from hecate.adapters.statedir.store import StateStore
from hecate.adapters.systemd.notify import SystemdNotifier, watchdog_interval_s
from hecate.config.model import HecateConfig
from hecate.core import supervisor_vocabulary as sv
from hecate.core.battery import BatteryTruth, corrected_threshold
from hecate.core.budget import Budget
from hecate.core.clock import Clock, as_clock
from hecate.core.policy.rules import trace_active
from hecate.core.policy.values import PolicyParams, PolicyState, params_from_config
from hecate.core.readings import CommError, Poll
from hecate.core.supervisor import decide
from hecate.core.supervisor_vocabulary import (
    Answer,
    Effect,
    Event,
    FlowFinished,
    FlowKind,
    FlowOutcome,
    ForwardFailed,
    PeerReported,
    PeerTriggered,
    Polled,
    Record,
    RetryAt,
    SaveAwaiting,
    StartupRequested,
)
from hecate.daemon import wiring
from hecate.daemon.background import (
    CacheRefresher,
    CoordinatorProbe,
    ReadableWatch,
    ask_peers,
    cancel_warmups,
    close_chores,
    forward_trigger,
    intent_answer,
    record_report,
    spawn,
    wait_for_worker,
)
from hecate.daemon.chore_watch import ChoreWatch
from hecate.daemon.flow_run import OUTCOMES, run_flow
from hecate.daemon.notices import Notices
from hecate.daemon.reload import validated_reload
from hecate.daemon.shedding import Shedder
from hecate.daemon.trace_recorder import TraceRecorder
from hecate.errors import GuardRefusedError, HecateError
from hecate.flows.report import FlowReport
from hecate.flows.warmup import ConnectionWarmer

log = logging.getLogger("hecate.daemon")

FLOW_EFFECTS = (sv.RunShutdown, sv.RunStartup, sv.CancelStartup, sv.ForwardTrigger)


class Daemon:
    def __init__(
        self,
        config: HecateConfig,
        *,
        reader: Callable[[], Poll],
        ups_command: Callable[[str], None] | None = None,
        context_factory: wiring.ContextFactory | None = None,
        metrics: Metrics | None = None,
        notifier: SystemdNotifier | None = None,
        clock: Clock | Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.reader = reader
        clocks = self.clocks = as_clock(clock)  # the flows get the same clock port
        self.clock = clocks.wall  # intents, run records, file names
        self.mono = clocks.monotonic  # every interval: policy, retries
        self.ups_command = ups_command  # the UPS port's instant command (its credentials read once)
        self.metrics = metrics or Metrics(
            ups=ups_name(config.ups.target), role=config.coordination.role
        )
        self.chores = ChoreWatch(self.metrics)  # no background thread dies of an exception
        # One long-lived Ansible port: its ssh masters are opened when an outage begins, so the
        # shutdown's first stage pays no connection set-up (flows/warmup.py).
        self.warmer: ConnectionWarmer | None = None
        self._old_warmers: list[ConnectionWarmer] = []  # replaced on SIGHUP, closed at the end
        self._own_factory = context_factory is None  # rebuilt with the config on SIGHUP
        if context_factory is None:
            self.warmer, context_factory = wiring.own_flow_ports(
                config, reader, ups_command, clocks, self.chores
            )
        self.context_factory = context_factory
        self._reload_from: Callable[[], HecateConfig] | None = None
        self._reload_requested = threading.Event()
        self.metrics.watch_drills(config.state_dir, lambda: getattr(self, "sup", None))
        self.notifier = notifier or SystemdNotifier()
        self.store = StateStore(config.state_dir)
        self.stop_event = threading.Event()
        self.peer_name = config.coordination.peer_name or socket.gethostname()
        self._lock = threading.Lock()  # guards self.sup and the worker handles
        self._worker: threading.Thread | None = None
        self._cancel = threading.Event()
        self._worker_kind: FlowKind | None = None
        self.reports: list[FlowReport] = []
        self.cache = CacheRefresher(self.chores)
        self.probe = CoordinatorProbe(self.metrics, self.chores)
        self.readable = ReadableWatch(str(config.ups.target), self.notifier)
        self.budget = self._budget()
        self.battery = self._battery_truth()
        self.sup = wiring.initial_supervisor(config, self.store, self.clock(), self.metrics)
        self.recorder = TraceRecorder(config.state_dir / "traces")
        self.server: CoordinatorServer | None = None
        self.client: CoordinatorClient | None = None
        self.metrics_port: int | None = None
        self.notices = Notices(config, self.metrics, clocks, self)
        self.shedder = Shedder(self)  # load shedding on battery (issue 28): reads its record

    # --- set-up -----------------------------------------------------------------------------

    def _budget(self) -> Budget:
        return wiring.load_budget(self.config, self.store, self.metrics)

    def _battery_truth(self) -> BatteryTruth:
        return wiring.learn_battery(self.config, self.budget, self.metrics)

    @property
    def params(self) -> PolicyParams:
        threshold = self.budget.threshold_s
        if self.config.ups.runtime_correction == "learned":
            threshold = corrected_threshold(threshold, self.battery)  # only ever earlier
        return params_from_config(self.config, threshold)

    def start_services(self) -> None:
        # Descriptors first: the HTTP ports together stay well below the limit, so a flood of
        # connections never reaches the NUT socket, the state files or Ansible.
        fd_limit = reserve_file_descriptors()
        limits = Limits(max_connections=connection_cap(fd_limit, Limits().max_connections))
        log.info(
            "file descriptors: %d; at most %d connections per port",
            fd_limit,
            limits.max_connections,
        )
        metrics_port = self.metrics.serve(self.config.metrics.listen, limits)
        log.info("metrics on %s (port %s)", self.config.metrics.listen, metrics_port)
        # Every instance serves its intent (peers' startups check it); only the coordinator
        # acts on triggers and startup requests.
        handlers = CoordinatorHandlers(
            on_trigger=self._peer_trigger,
            on_startup_request=self._peer_startup_request,
            intent=self._intent_json,
            on_rejected=lambda reason: self.metrics.rejected.labels(reason).inc(),
        )
        self.server, self.client = wiring.serve_coordination(self.config, limits, handlers)
        self.metrics_port = metrics_port  # published last: every listener is up

    # --- the loop ---------------------------------------------------------------------------

    def run(self, max_polls: int | None = None) -> None:
        take_over(self.config.state_dir)  # what a process that ended could not write
        self.start_services()
        self.notifier.ready()
        self.notifier.status("watching the UPS")
        interval = self.config.ups.poll_interval_seconds
        watchdog = watchdog_interval_s()
        polls = 0
        try:
            while not self.stop_event.is_set():
                self.poll_once()
                polls += 1
                if max_polls is not None and polls >= max_polls:
                    break
                deadline = time.monotonic() + interval
                while not self.stop_event.is_set():
                    self.notifier.watchdog()
                    if self._reload_requested.is_set():
                        self.reload()
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self.stop_event.wait(min(left, watchdog or left))
        finally:
            self.close()

    def poll_once(self) -> list[sv.Effect]:
        """One poll through the supervisor; the actions it decided (an owed shutdown counts)."""
        t = self.clock()
        m = self.mono()
        try:
            poll = self.reader()
        except Exception as exc:
            poll = CommError(f"UPS read failed: {exc}", "error")
        self.metrics.observe_poll(poll)
        self.readable.observe(poll)
        effects = self._feed(Polled(poll, m, self.params))
        self.chores.attempt("shed", lambda: self.shedder.observe(poll, m))  # after _feed
        recording = self.recorder.current
        active = trace_active(self.state)  # a trace that cannot be written: logged once
        self.chores.attempt("trace", lambda: self.recorder.observe(t, poll, active=active, mono=m))
        if recording is not None and self.recorder.current is None:
            self.battery = self._battery_truth()  # an outage ended: learn from it
        self.metrics.debounce.set(self.state.critical_count)
        idle = self.sup.running is None
        if self.warmer is not None and self.state.on_battery and idle:
            self.warmer.warm(self.mono())
        self.probe.maybe(self.client, m)  # an interval: on the monotonic clock
        actions: list[sv.Effect] = [
            sv.RunShutdown(e.reason, e.nodes) if isinstance(e, sv.ShutdownOwed) else e
            for e in effects
            if isinstance(e, (*FLOW_EFFECTS, sv.ShutdownOwed))
        ]
        s = self.state
        if not actions and idle and not (s.on_battery or s.startup_pending):
            self.cache.maybe(self.config, self.context_factory, m)
        return actions

    @property
    def state(self) -> PolicyState:
        return self.sup.policy

    @property
    def _cache_thread(self) -> threading.Thread | None:
        return self.cache.thread

    # --- effects: the supervisor decides, the shell carries out ------------------------------

    def _feed(self, event: Event) -> list[Effect]:
        with self._lock:
            self.sup, effects = decide(self.sup, event)
        self.notices.feed(event, effects, self.sup)
        for effect in effects:
            self._carry_out(effect)
        return effects

    def _carry_out(self, effect: Effect) -> None:
        if isinstance(effect, Record):
            log.log(effect.level, "%s", effect.message)
            if effect.counter is not None:
                self.metrics.triggers.labels(effect.counter.split(":")[1]).inc()
        elif isinstance(effect, RetryAt):
            log.warning("%s will be retried in %.0fs", effect.kind.value, effect.at - self.mono())
        elif isinstance(effect, SaveAwaiting):
            try:
                save_awaiting(self.config.state_dir, effect.names)
            except HecateError as exc:
                log.error("cannot record the peers the startup waits for: %s", exc)
        elif isinstance(effect, sv.AskPeers):
            spawn("ask-peers", self.chores.guarded("ask_peers", self._ask_peers))
        elif isinstance(effect, sv.CancelStartup):
            log.info("action=CancelStartup reason=%s", effect.reason)
            with self._lock:  # never waits: the poll and HTTP threads must not block
                if self._worker_kind is FlowKind.STARTUP:  # not a shutdown started since
                    self._cancel.set()
        elif isinstance(effect, sv.RunShutdown | sv.RunStartup):
            kind = FlowKind.SHUTDOWN if isinstance(effect, sv.RunShutdown) else FlowKind.STARTUP
            log.info("action=%s reason=%s", type(effect).__name__, effect.reason)
            self._start_flow(kind, effect.reason, effect.nodes)
        elif isinstance(effect, sv.ForwardTrigger):
            spawn("forward", self.chores.guarded("forward", lambda: self._forward(effect.reason)))

    def _start_flow(self, kind: FlowKind, reason: str, nodes: tuple[str, ...] | None) -> None:
        cancel, args = threading.Event(), (kind, reason, nodes)  # nodes: a partial flow's
        worker = threading.Thread(
            target=self._flow_thread, args=(*args, cancel), name=f"hecate-{kind.value}"
        )
        with self._lock:
            self._cancel, self._worker, self._worker_kind = cancel, worker, kind
        worker.start()
        self.notifier.status(f"{kind.value} running: {reason}")

    def _flow_thread(
        self, kind: FlowKind, reason: str, nodes: tuple[str, ...] | None, cancel: threading.Event
    ) -> None:
        outcome = FlowOutcome.ERROR
        try:
            report = run_flow(self.config, self.context_factory, kind, reason, cancel, nodes)
            self._finished(report)
            outcome = OUTCOMES.get(report.outcome, FlowOutcome.FAILED)
        except GuardRefusedError as exc:
            log.warning("startup refused: %s", exc)
            outcome = FlowOutcome.REFUSED
        except Exception as exc:
            log.error("%s could not run: %s", kind.value, exc)
            self.metrics.runs.labels(kind.value, "failed").inc()
        finally:
            try:
                self.metrics.observe_intent(self.store.read_intent(self.clock()).state)
            except HecateError as exc:
                log.error("intent unreadable: %s", exc)
            self.notifier.status("watching the UPS")
            self._feed(FlowFinished(kind, outcome, reason, self.mono()))

    def _finished(self, report: FlowReport) -> None:
        self.reports.append(report)
        log.info("%s finished: %s in %.1fs", report.kind, report.outcome.value, report.duration_s)
        record_report(self.metrics, report)
        self.notices.finished(report)
        self.budget = self._budget()
        self.battery = self._battery_truth()

    def _forward(self, reason: str) -> None:
        if not forward_trigger(self.client, self.peer_name, reason, self.metrics):
            self._feed(ForwardFailed(reason, self.mono()))

    def _ask_peers(self) -> None:
        for intent in ask_peers(self.config):
            self._feed(PeerReported(intent, self.mono()))

    # --- coordination handlers (called from the HTTP server's threads) ----------------------

    def _answer(self, event: Event) -> str:
        answers = [e.text for e in self._feed(event) if isinstance(e, Answer)]
        return answers[0] if answers else ""

    def _peer_trigger(self, request: TriggerRequest) -> bool:
        return self._answer(PeerTriggered(request.peer, request.reason, self.mono())) == "started"

    def _peer_startup_request(self, peer: str) -> str:
        return self._answer(StartupRequested(peer, self.mono()))

    def _intent_json(self) -> dict[str, Any]:
        ups = {"name": str(self.config.ups.target), "back": self.sup.ups_back}
        ups_json = {**ups, "detail": self.sup.ups_detail}  # what a coordinator waits for
        extra = {"running": self.sup.running, "name": self.peer_name, "ups": ups_json}
        return intent_answer(self.store, self.clock(), extra)

    # --- reloading (SIGHUP) -----------------------------------------------------------------

    def request_reload(self, load: Callable[[], HecateConfig]) -> None:
        """Safe from a signal handler: the poll loop reloads at its next wake-up."""
        self._reload_from = load
        self._reload_requested.set()

    def reload(self) -> bool:
        """Validate the new configuration, then take it; an invalid one (or one that only a
        restart can apply) is refused with a log line and the running one kept."""
        self._reload_requested.clear()
        new = validated_reload(self.config, self._reload_from)
        if new is None:
            return False
        with self._lock:
            self.config = new
            self.sup = replace(self.sup, settings=wiring.settings_from(new))
            if self._own_factory:
                # a new port for the new inventory; the old one may serve a running flow
                if self.warmer is not None:
                    self._old_warmers.append(self.warmer)
                self.warmer, self.context_factory = wiring.own_flow_ports(
                    new, self.reader, self.ups_command, self.clocks, self.chores
                )
        self.budget = self._budget()
        log.info("configuration reloaded")
        self.notifier.status("watching the UPS (configuration reloaded)")
        return True

    # --- stopping ---------------------------------------------------------------------------

    def request_stop(self) -> None:
        self.stop_event.set()

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait for the running flow, and for one it started on its way out (an owed shutdown)."""
        return wait_for_worker(lambda: self._worker, self._lock, timeout_s)

    def close(self) -> None:
        self.notifier.stopping()
        cancel_warmups(warmers := [*self._old_warmers, self.warmer])  # at once: never waited for
        with self._lock:
            if self.sup.running is FlowKind.STARTUP:
                self._cancel.set()  # a half-done startup is resumed by the next run
        # A running shutdown is allowed to finish: stopping it halfway helps nobody.
        self.wait_idle(timeout_s=600)
        self.shedder.close()
        if self.server is not None:
            self.server.close()
        close_chores(warmers, self._cache_thread)
        self.metrics.close()
        self.recorder.close()
        self.notices.close()
