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
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import Any

from hecate.ansible_port import AnsiblePort
from hecate.battery import BatteryTruth, corrected_threshold
from hecate.budget import Budget, budget_from_config
from hecate.config import HecateConfig
from hecate.coordination import (
    MAX_BODY,
    SEEN_FILE,
    CoordinatorClient,
    CoordinatorHandlers,
    CoordinatorServer,
    CoordinatorUnreachableError,
    TriggerRequest,
    read_token,
)
from hecate.daemon.clock import Clock, as_clock
from hecate.daemon.core import (
    Action,
    CancelStartup,
    ForwardTrigger,
    Running,
    RunShutdown,
    RunStartup,
    actions_for,
)
from hecate.daemon.reload import restart_needed
from hecate.daemon.trace_recorder import TraceRecorder
from hecate.errors import GuardRefusedError, HecateError
from hecate.flows.bootstrap_cache import refresh_cache
from hecate.flows.context import FlowContext
from hecate.flows.report import FlowReport
from hecate.flows.warmup import ConnectionWarmer
from hecate.httpserve import Limits, connection_cap, reserve_file_descriptors
from hecate.intent import IntentState
from hecate.metrics import Metrics, ups_name
from hecate.outages import load_battery_truth
from hecate.policy import (
    PolicyParams,
    PolicyState,
    initial_state,
    keep_startup_pending,
    latch,
    params_from_config,
    step,
)
from hecate.readings import CommError, Poll
from hecate.sdnotify import SystemdNotifier, watchdog_interval_s
from hecate.state import StateStore

log = logging.getLogger("hecate.daemon")

ContextFactory = Callable[[threading.Event], AbstractContextManager[FlowContext]]
STARTUP_RETRY_S = 60.0
SHUTDOWN_RETRY_S = 10.0
MAX_SHUTDOWN_ATTEMPTS = 5
COORDINATOR_PROBE_S = 30.0  # how often a peer checks that its coordinator answers (metric)


def real_context_factory(
    config: HecateConfig, reader: Callable[[], Poll], warmer: ConnectionWarmer | None = None
) -> ContextFactory:
    def factory(cancel: threading.Event) -> AbstractContextManager[FlowContext]:
        from hecate.flows.wiring import open_flow_context  # noqa: PLC0415 - idle RSS (issue 16)

        return open_flow_context(
            config, read_ups=reader, progress=_log_progress, cancel=cancel, warmer=warmer
        )

    return factory


def _log_progress(stage: str, status: str, detail: str) -> None:
    if status in ("ok", "changed") and ": " in detail:  # one node's task: detail for debugging
        log.debug("stage=%s task_status=%s %s", stage, status, detail)
    elif status in ("failed", "unreachable"):
        log.warning("stage=%s status=%s %s", stage, status, detail)
    else:
        log.info("stage=%s status=%s %s", stage, status, detail)


class Daemon:
    def __init__(
        self,
        config: HecateConfig,
        *,
        reader: Callable[[], Poll],
        context_factory: ContextFactory | None = None,
        metrics: Metrics | None = None,
        notifier: SystemdNotifier | None = None,
        clock: Clock | Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.reader = reader
        # One long-lived Ansible port: its ssh masters are opened when an outage begins, so the
        # shutdown's first stage pays no connection set-up (flows/warmup.py).
        self.warmer: ConnectionWarmer | None = None
        self._old_warmers: list[ConnectionWarmer] = []  # replaced on SIGHUP, closed at the end
        if context_factory is None:
            self.warmer = ConnectionWarmer(lambda: AnsiblePort.from_config(config))
        self.context_factory = context_factory or real_context_factory(config, reader, self.warmer)
        self._own_factory = context_factory is None  # rebuilt with the config on SIGHUP
        self._reload_from: Callable[[], HecateConfig] | None = None
        self._reload_requested = threading.Event()
        self.metrics = metrics or Metrics(
            ups=ups_name(config.ups.target), role=config.coordination.role
        )
        self.metrics.watch_drills(config.state_dir)
        self.notifier = notifier or SystemdNotifier()
        clocks = as_clock(clock)
        self.clock = clocks.wall  # intents, run records, file names
        self.mono = clocks.monotonic  # every interval: policy, retries
        self.store = StateStore(config.state_dir)
        self.stop_event = threading.Event()
        self.peer_name = config.coordination.peer_name or socket.gethostname()
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._running: Running = None
        self._cancel = threading.Event()
        self._next_startup_at = 0.0
        self.reports: list[FlowReport] = []
        self._next_cache_refresh = 0.0
        self._owed: str | None = None  # the reason of a shutdown owed once the worker is free
        self._owed_not_before = 0.0
        self._shutdown_attempts = 0
        self._cache_thread: threading.Thread | None = None
        self.budget = self._budget()
        self.battery = self._battery_truth()
        self.state = self._initial_state()
        self.recorder = TraceRecorder(config.state_dir / "traces")
        self.server: CoordinatorServer | None = None
        self.client: CoordinatorClient | None = None
        self.metrics_port: int | None = None
        self._next_probe = 0.0
        self._probe_thread: threading.Thread | None = None
        self._ups_ever_read = False
        self._never_readable_warned: str | None = None

    # --- set-up -----------------------------------------------------------------------------

    def _budget(self) -> Budget:
        try:
            runs = self.store.load_runs()
        except HecateError as exc:
            log.error("run history unreadable, using the fallback budget: %s", exc)
            runs = []
        budget = budget_from_config(self.config, runs)
        self.metrics.observe_budget(budget)
        return budget

    def _initial_state(self) -> PolicyState:
        try:
            intent = self.store.read_intent(self.clock())
        except HecateError as exc:
            # Never exit on a bad state file: keep protecting the cluster on the UPS. An
            # unknown intent keeps a startup pending, and the startup guard refuses it until
            # the operator runs `hecate state reset --intent`.
            log.error("%s", exc)
            return initial_state(startup_pending=True)
        self.metrics.observe_intent(intent.state)
        # A cluster Hecate shut down (or was shutting down) waits for the power-return gate.
        # So does a startup a restart cut short: the next run resumes it.
        down = intent.state in (
            IntentState.SHUTDOWN_COMPLETE,
            IntentState.SHUTTING_DOWN,
            IntentState.STARTUP_IN_PROGRESS,
        )
        return initial_state(startup_pending=down)

    def _battery_truth(self) -> BatteryTruth:
        """Claimed vs delivered runtime from the recorded outages (advisory unless learned)."""
        truth = load_battery_truth(self.config.state_dir)
        self.metrics.observe_battery(truth)
        if self.config.ups.runtime_correction == "learned":
            self.metrics.threshold.set(corrected_threshold(self.budget.threshold_s, truth))
        return truth

    @property
    def params(self) -> PolicyParams:
        threshold = self.budget.threshold_s
        if self.config.ups.runtime_correction == "learned":
            threshold = corrected_threshold(threshold, self.battery)  # only ever earlier
        return params_from_config(self.config, threshold)

    def start_services(self) -> None:
        coordination = self.config.coordination
        # Descriptors first: the HTTP ports together stay well below the limit, so a flood of
        # connections never reaches the NUT socket, the state files or Ansible.
        fd_limit = reserve_file_descriptors()
        limits = Limits(max_connections=connection_cap(fd_limit, Limits().max_connections))
        log.info(
            "file descriptors: %d; at most %d connections per port",
            fd_limit,
            limits.max_connections,
        )
        self.metrics_port = self.metrics.serve(self.config.metrics.listen, limits)
        log.info("metrics on %s (port %s)", self.config.metrics.listen, self.metrics_port)
        token = read_token(coordination.token_file) if coordination.token_file else None
        if token is not None:
            # Every instance serves its intent (peers' startups check it); only the coordinator
            # acts on triggers and startup requests.
            handlers = CoordinatorHandlers(
                on_trigger=self._peer_trigger,
                on_startup_request=self._peer_startup_request,
                intent=self._intent_json,
                on_rejected=lambda reason: self.metrics.rejected.labels(reason).inc(),
            )
            self.server = CoordinatorServer(
                coordination.listen,
                token,
                handlers,
                seen_file=self.config.state_dir / SEEN_FILE,
                limits=replace(limits, max_body_bytes=MAX_BODY),
            )
            self.server.start()
            log.info("coordination endpoint on port %s", self.server.port)
        if coordination.role == "peer":
            if token is None or coordination.coordinator_address is None:
                raise HecateError(
                    "a peer needs coordination.token_file and coordination.coordinator_address"
                )
            self.client = CoordinatorClient(coordination.coordinator_address, token)

    # --- the loop ---------------------------------------------------------------------------

    def run(self, max_polls: int | None = None) -> None:
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

    def poll_once(self) -> list[Action]:
        t = self.clock()
        m = self.mono()
        try:
            poll = self.reader()
        except Exception as exc:
            poll = CommError(f"UPS read failed: {exc}", "error")
        self.metrics.observe_poll(poll)
        self._watch_readable(poll)
        with self._lock:
            self.state, events = step(self.state, poll, m, self.params)
            running = self._running
            active = self._trace_active()
            critical = self.state.critical_count
        recording = self.recorder.current
        try:
            self.recorder.observe(t, poll, active=active, mono=m)
        except OSError as exc:
            log.error("cannot record the outage trace: %s", exc)
        if recording is not None and self.recorder.current is None:
            self.battery = self._battery_truth()  # an outage ended: learn from it
        self.metrics.debounce.set(critical)
        if self.warmer is not None and self.state.on_battery and running is None:
            self.warmer.warm(self.mono())
        for event in events:
            log.info("event=%s t=%.1f reason=%s", event.event, event.t, event.reason)
            if event.event == "trigger_shutdown":
                self.metrics.triggers.labels("ups").inc()
        actions = actions_for(events, self.config.coordination.role, running)
        for action in actions:
            self.execute(action)
        gate_opened = any(e.event == "startup_allowed" for e in events)
        started = any(isinstance(a, RunStartup) for a in actions)
        if gate_opened and not started and self.config.coordination.role == "coordinator":
            # The gate opened while a flow ran: ask again at the next poll.
            with self._lock:
                self.state = keep_startup_pending(self.state)
        self._start_owed()
        self._maybe_probe_coordinator(t)
        if not actions and running is None:
            self._maybe_refresh_cache(m)
        return actions

    def _watch_readable(self, poll: Poll) -> None:
        """A UPS never read since start protects nothing: a WARNING in the journal and in
        systemd's Status= (once per distinct error), until its first good reading."""
        if not isinstance(poll, CommError):
            if not self._ups_ever_read:
                self._ups_ever_read = True
                if self._never_readable_warned is not None:
                    log.info("UPS %s is readable now: watching it", self.config.ups.target)
                    self.notifier.status("watching the UPS")
            return
        if self._ups_ever_read or poll.message == self._never_readable_warned:
            return
        self._never_readable_warned = poll.message
        log.warning(
            "UPS %s has never been readable since start: the cluster is NOT protected: %s "
            "(run `hecate doctor`)",
            self.config.ups.target,
            poll.message,
        )
        self.notifier.status(f"WARNING: UPS never readable, not protected: {poll.message}")

    def _maybe_refresh_cache(self, now: float) -> None:
        """Keep the Gitea bootstrap cache fresh while the cluster is healthy (in the background)."""
        startup = self.config.startup
        s = self.state
        if not startup.gitea_bootstrap_manifests or s.on_battery or s.startup_pending:
            return
        if now < self._next_cache_refresh:
            return
        if self._cache_thread is not None and self._cache_thread.is_alive():
            return
        self._next_cache_refresh = now + startup.bootstrap_cache_refresh_seconds

        def refresh() -> None:
            try:
                with self.context_factory(threading.Event()) as ctx:
                    if not ctx.kube.readyz():
                        log.info("bootstrap cache not refreshed: API not ready")
                        return
                    problems = refresh_cache(ctx.kube, self.config)
            except HecateError as exc:
                problems = [str(exc)]
            for problem in problems:
                log.warning("bootstrap cache: %s", problem)
            if not problems:
                log.info("bootstrap cache refreshed")

        self._cache_thread = threading.Thread(target=refresh, name="hecate-cache", daemon=True)
        self._cache_thread.start()

    def _maybe_probe_coordinator(self, now: float) -> None:
        """A peer asks its coordinator for its intent now and then, in the background, so that
        `hecate_coordinator_reachable` says whether a trigger could be forwarded right now."""
        client = self.client
        if client is None or now < self._next_probe:
            return
        if self._probe_thread is not None and self._probe_thread.is_alive():
            return
        self._next_probe = now + COORDINATOR_PROBE_S

        def probe() -> None:
            try:
                client.intent()
                self.metrics.observe_coordinator(True)
            except CoordinatorUnreachableError:
                self.metrics.observe_coordinator(False)
            except HecateError:
                self.metrics.observe_coordinator(True)  # it answered, with a refusal

        self._probe_thread = threading.Thread(target=probe, name="hecate-probe", daemon=True)
        self._probe_thread.start()

    def _trace_active(self) -> bool:
        s = self.state
        episode = s.outage_start is not None  # an outage episode, mains flickers included
        return episode or s.on_battery or s.latched or s.startup_pending or s.critical_count > 0

    # --- actions ----------------------------------------------------------------------------

    def execute(self, action: Action) -> None:
        log.info("action=%s reason=%s", type(action).__name__, action.reason)
        if isinstance(action, CancelStartup):
            self._cancel_startup()
        elif isinstance(action, RunShutdown):
            with self._lock:
                self.state = latch(self.state)
            self._request_flow("shutdown", action.reason)
        elif isinstance(action, RunStartup):
            if self.mono() < self._next_startup_at:
                with self._lock:
                    self.state = keep_startup_pending(self.state)
                return
            self._request_flow("startup", action.reason)
        else:
            self._forward(action)

    def _cancel_startup(self) -> None:
        """Ask a running startup to stop. Never waits: the poll and HTTP threads must not block
        (watchdog, peers' timeouts); the shutdown owed starts once the worker has exited."""
        with self._lock:
            if self._running == "startup":
                self._cancel.set()

    def _request_flow(self, kind: str, reason: str) -> bool:
        """Start a flow now, or, for a shutdown, owe it until the worker is free."""
        with self._lock:
            if self._worker is not None and self._worker.is_alive():
                if kind == "shutdown" and self._running != "shutdown":
                    self._owed = reason
                    log.info("shutdown owed once the running %s stops", self._running)
                    return True
                log.info("a %s is running; %s not started", self._running, kind)
                return False
            self._start_locked(kind, reason)
        self.notifier.status(f"{kind} running: {reason}")
        return True

    def _start_owed(self) -> None:
        with self._lock:
            if self._owed is None or self.mono() < self._owed_not_before:
                return
            if self._worker is not None and self._worker.is_alive():
                return
            reason, self._owed = self._owed, None
            self._start_locked("shutdown", reason)
        self.notifier.status(f"shutdown running: {reason}")

    def _start_locked(self, kind: str, reason: str) -> None:
        self._cancel = threading.Event()
        self._running = "shutdown" if kind == "shutdown" else "startup"
        self._worker = threading.Thread(
            target=self._flow_thread, args=(kind, reason, self._cancel), name=f"hecate-{kind}"
        )
        self._worker.start()

    def _flow_thread(self, kind: str, reason: str, cancel: threading.Event) -> None:
        from hecate.flows.shutdown import ShutdownOptions, run_shutdown  # noqa: PLC0415 - idle RSS
        from hecate.flows.startup import StartupOptions, run_startup  # noqa: PLC0415 - idle RSS

        try:
            with self.context_factory(cancel) as ctx:
                if kind == "shutdown":
                    options = ShutdownOptions(mode=self.config.shutdown.ups_mode, reason=reason)
                    report = run_shutdown(ctx, options)
                else:
                    report = run_startup(ctx, StartupOptions(reason=reason))
            self._finished(report, reason)
        except GuardRefusedError as exc:
            log.warning("startup refused: %s (retry in %.0fs)", exc, STARTUP_RETRY_S)
            self._retry_startup_later()
        except Exception as exc:
            log.error("%s could not run: %s", kind, exc)
            self.metrics.runs.labels(kind, "failed").inc()
            if kind == "shutdown":
                self._owe_shutdown(reason)
            else:
                self._retry_startup_later()
        finally:
            with self._lock:
                self._running = None
            try:
                self.metrics.observe_intent(self.store.read_intent(self.clock()).state)
            except HecateError as exc:
                log.error("intent unreadable: %s", exc)
            self.notifier.status("watching the UPS")

    def _retry_startup_later(self) -> None:
        with self._lock:
            self._next_startup_at = self.mono() + STARTUP_RETRY_S
            self.state = keep_startup_pending(self.state)

    def _owe_shutdown(self, reason: str) -> None:
        """A shutdown that could not run (lock held by a CLI startup, a failed run) is retried
        at the next polls, a few times: the battery is running down either way."""
        with self._lock:
            self._shutdown_attempts += 1
            if self._shutdown_attempts > MAX_SHUTDOWN_ATTEMPTS:
                log.error("shutdown failed %d times; giving up", MAX_SHUTDOWN_ATTEMPTS)
                return
            self._owed = reason
            self._owed_not_before = self.mono() + SHUTDOWN_RETRY_S
        log.warning("shutdown will be retried in %.0fs", SHUTDOWN_RETRY_S)

    def _finished(self, report: FlowReport, reason: str) -> None:
        self.reports.append(report)
        log.info("%s finished: %s in %.1fs", report.kind, report.outcome.value, report.duration_s)
        self.metrics.runs.labels(report.kind, report.outcome.value).inc()
        self.metrics.last_run.labels(report.kind, "total").set(report.duration_s)
        for stage in report.stages:
            self.metrics.last_run.labels(report.kind, stage.name).set(stage.duration_s)
        if report.kind == "startup" and report.outcome.value in ("failed", "aborted"):
            self._retry_startup_later()
        if report.kind == "shutdown":
            if report.outcome.value == "failed":
                self._owe_shutdown(reason)
            else:
                with self._lock:
                    self._shutdown_attempts = 0
        self.budget = self._budget()
        self.battery = self._battery_truth()

    def _forward(self, action: ForwardTrigger) -> None:
        client = self.client
        if client is None:
            log.error("peer without a coordinator client; trigger dropped")
            return

        def send() -> None:
            try:
                answer = client.send_trigger(self.peer_name, action.reason)
                self.metrics.observe_coordinator(True)
                log.info("coordinator accepted the trigger: %s", answer)
            except CoordinatorUnreachableError as exc:
                self.metrics.observe_coordinator(False)
                if self.config.coordination.fallback_local_shutdown:
                    log.error("%s; running the shutdown locally", exc)
                    self._request_flow("shutdown", f"{action.reason} (coordinator unreachable)")
                else:
                    log.error("%s; fallback_local_shutdown is off, nothing more to do", exc)
            except HecateError as exc:
                self.metrics.observe_coordinator(True)
                log.error("coordinator refused the trigger: %s", exc)

        threading.Thread(target=send, name="hecate-forward", daemon=True).start()

    # --- coordinator handlers (called from the HTTP server's threads) -----------------------

    def _peer_trigger(self, request: TriggerRequest) -> bool:
        if self.config.coordination.role != "coordinator":
            log.warning("trigger from %s ignored: this instance is a peer", request.peer)
            return False
        self.metrics.triggers.labels("peer").inc()
        log.info("trigger from peer %s: %s", request.peer, request.reason)
        with self._lock:
            self.state = latch(self.state)
            running = self._running
        if running == "shutdown":
            return False
        self._cancel_startup()
        return self._request_flow("shutdown", f"peer {request.peer}: {request.reason}")

    def _peer_startup_request(self, peer: str) -> str:
        if self.config.coordination.role != "coordinator":
            return "refused: this instance is a peer"
        with self._lock:
            if self._running is not None:
                return f"busy ({self._running})"
        started = self._request_flow("startup", f"requested by peer {peer}")
        return "started" if started else "busy"

    def _intent_json(self) -> dict[str, Any]:
        try:
            intent = self.store.read_intent(self.clock())
        except HecateError as exc:  # peers treat "unknown" as busy: no startup from them
            return {"state": "unknown", "error": str(exc), "running": self._running}
        return {**intent.to_json(), "running": self._running}

    # --- reloading (SIGHUP) -----------------------------------------------------------------

    def request_reload(self, load: Callable[[], HecateConfig]) -> None:
        """Safe from a signal handler: the poll loop reloads at its next wake-up."""
        self._reload_from = load
        self._reload_requested.set()

    def reload(self) -> bool:
        """Validate the new configuration, then take it; an invalid one (or one that only a
        restart can apply) is refused with a log line and the running one kept."""
        self._reload_requested.clear()
        load = self._reload_from
        if load is None:
            return False
        try:
            new = load()
        except HecateError as exc:
            log.error("reload refused, the running configuration is kept: %s", exc)
            return False
        fixed = restart_needed(self.config, new)
        if fixed:
            log.error(
                "reload refused, the running configuration is kept: %s change only with a "
                "restart (systemctl restart hecate)",
                ", ".join(fixed),
            )
            return False
        with self._lock:
            self.config = new
            if self._own_factory:
                # a new port for the new inventory; the old one may serve a running flow
                if self.warmer is not None:
                    self._old_warmers.append(self.warmer)
                self.warmer = ConnectionWarmer(lambda: AnsiblePort.from_config(new))
                self.context_factory = real_context_factory(new, self.reader, self.warmer)
        self.budget = self._budget()
        log.info("configuration reloaded")
        self.notifier.status("watching the UPS (configuration reloaded)")
        return True

    # --- stopping ---------------------------------------------------------------------------

    def request_stop(self) -> None:
        self.stop_event.set()

    def wait_idle(self, timeout_s: float) -> bool:
        with self._lock:
            worker = self._worker
        if worker is None:
            return True
        worker.join(timeout_s)
        return not worker.is_alive()

    def close(self) -> None:
        self.notifier.stopping()
        self._cancel_startup()  # a half-done startup is resumed by the next run
        # A running shutdown is allowed to finish: stopping it halfway helps nobody.
        self.wait_idle(timeout_s=600)
        if self._cache_thread is not None:
            self._cache_thread.join(30)
        if self.server is not None:
            self.server.close()
        for warmer in [*self._old_warmers, self.warmer]:
            if warmer is None:
                continue
            warmer.join(30)
            port = warmer.opened
            if isinstance(port, AnsiblePort):
                port.close()
        self.metrics.close()
        self.recorder.close()
