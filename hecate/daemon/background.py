"""The daemon's wiring and background chores, each in its own short-lived thread: keeping the Gitea
bootstrap cache fresh, probing the coordinator (a peer's reachability metric), asking peers for
their UPS (a pending startup), forwarding a trigger, and warning while the UPS was never read."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import Any

from hecate.adapters.ansible.port import AnsiblePort
from hecate.adapters.http_server import Limits
from hecate.adapters.metrics.registry import Metrics
from hecate.adapters.peers.http import (
    MAX_BODY,
    SEEN_FILE,
    CoordinatorClient,
    CoordinatorHandlers,
    CoordinatorServer,
    CoordinatorUnreachableError,
    peers_from_config,
    read_token,
)
from hecate.adapters.statedir.outages import load_battery_truth
from hecate.adapters.statedir.store import StateStore
from hecate.adapters.systemd.notify import SystemdNotifier
from hecate.config.model import HecateConfig
from hecate.core.battery import BatteryTruth, corrected_threshold
from hecate.core.budget import Budget, budget_from_config
from hecate.core.clock import Clock
from hecate.core.intent import IntentState
from hecate.core.peers import PeerIntent
from hecate.core.policy.values import PolicyState, initial_state
from hecate.core.readings import CommError, Poll
from hecate.core.supervisor import Settings
from hecate.errors import HecateError
from hecate.flows.bootstrap_cache import refresh_cache
from hecate.flows.context import FlowContext
from hecate.flows.report import FlowReport
from hecate.flows.warmup import ConnectionWarmer

log = logging.getLogger("hecate.daemon")

ContextFactory = Callable[[threading.Event], AbstractContextManager[FlowContext]]
COORDINATOR_PROBE_S = 30.0  # how often a peer checks that its coordinator answers (metric)


def spawn(name: str, target: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=target, name=f"hecate-{name}", daemon=True)
    thread.start()
    return thread


def real_context_factory(
    config: HecateConfig,
    reader: Callable[[], Poll],
    warmer: ConnectionWarmer | None = None,
    ups_command: Callable[[str], None] | None = None,
    clock: Clock | None = None,
) -> ContextFactory:
    def factory(cancel: threading.Event) -> AbstractContextManager[FlowContext]:
        from hecate.flows.wiring import open_flow_context  # noqa: PLC0415 - idle RSS (issue 16)

        return open_flow_context(
            config,
            read_ups=reader,
            ups_command=ups_command,
            clock=clock,
            progress=log_progress,
            cancel=cancel,
            warmer=warmer,  # warmed on battery, before the decision (Daemon._poll)
        )

    return factory


def log_progress(stage: str, status: str, detail: str) -> None:
    if status in ("ok", "changed") and ": " in detail:  # one node's task: detail for debugging
        log.debug("stage=%s task_status=%s %s", stage, status, detail)
    elif status in ("failed", "unreachable"):
        log.warning("stage=%s status=%s %s", stage, status, detail)
    else:
        log.info("stage=%s status=%s %s", stage, status, detail)


def initial_policy(store: StateStore, now: float, metrics: Metrics) -> PolicyState:
    """The policy state a daemon starts in: a cluster Hecate shut down (or was shutting down)
    waits for the power-return gate, and so does a startup a restart cut short (the next run
    resumes it)."""
    try:
        intent = store.read_intent(now)
    except HecateError as exc:
        # Never exit on a bad state file: keep protecting the cluster on the UPS. An unknown
        # intent keeps a startup pending, and the startup guard refuses it until the operator
        # runs `hecate state reset --intent`.
        log.error("%s", exc)
        return initial_state(startup_pending=True)
    metrics.observe_intent(intent.state)
    down = intent.state in (
        IntentState.SHUTDOWN_COMPLETE,
        IntentState.SHUTTING_DOWN,
        IntentState.STARTUP_IN_PROGRESS,
    )
    return initial_state(startup_pending=down)


def settings_from(config: HecateConfig) -> Settings:
    coordination = config.coordination
    return Settings(coordination.role, coordination.fallback_local_shutdown)


def load_budget(config: HecateConfig, store: StateStore, metrics: Metrics) -> Budget:
    try:
        runs = store.load_runs()
    except HecateError as exc:
        log.error("run history unreadable, using the fallback budget: %s", exc)
        runs = []
    budget = budget_from_config(config, runs)
    metrics.observe_budget(budget)
    return budget


def learn_battery(config: HecateConfig, budget: Budget, metrics: Metrics) -> BatteryTruth:
    """Claimed vs delivered runtime from the recorded outages (advisory unless learned)."""
    truth = load_battery_truth(config.state_dir)
    metrics.observe_battery(truth)
    if config.ups.runtime_correction == "learned":
        metrics.threshold.set(corrected_threshold(budget.threshold_s, truth))
    return truth


def close_warmers(warmers: list[ConnectionWarmer | None]) -> None:
    for warmer in warmers:
        if warmer is None:
            continue
        warmer.join(30)
        port = warmer.opened
        if isinstance(port, AnsiblePort):
            port.close()


class CacheRefresher:
    """Keep the Gitea bootstrap cache fresh while the cluster is healthy (in the background)."""

    def __init__(self) -> None:
        self.thread: threading.Thread | None = None
        self.next_at = 0.0

    def maybe(self, config: HecateConfig, factory: ContextFactory, now: float) -> None:
        startup = config.startup
        if not startup.gitea_bootstrap_manifests or now < self.next_at:
            return
        if self.thread is not None and self.thread.is_alive():
            return
        self.next_at = now + startup.bootstrap_cache_refresh_seconds

        def refresh() -> None:
            try:
                with factory(threading.Event()) as ctx:
                    if not ctx.kube.readyz():
                        log.info("bootstrap cache not refreshed: API not ready")
                        return
                    problems = refresh_cache(ctx.kube, config)
            except HecateError as exc:
                problems = [str(exc)]
            for problem in problems:
                log.warning("bootstrap cache: %s", problem)
            if not problems:
                log.info("bootstrap cache refreshed")

        self.thread = spawn("cache", refresh)


class CoordinatorProbe:
    """A peer asks its coordinator for its intent now and then, in the background, so that
    `hecate_coordinator_reachable` says whether a trigger could be forwarded right now."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.thread: threading.Thread | None = None
        self.next_at = 0.0

    def maybe(self, client: CoordinatorClient | None, now: float) -> None:
        if client is None or now < self.next_at:
            return
        if self.thread is not None and self.thread.is_alive():
            return
        self.next_at = now + COORDINATOR_PROBE_S

        def probe() -> None:
            try:
                client.intent()
                self.metrics.observe_coordinator(True)
            except CoordinatorUnreachableError:
                self.metrics.observe_coordinator(False)
            except HecateError:
                self.metrics.observe_coordinator(True)  # it answered, with a refusal

        self.thread = spawn("probe", probe)


class ReadableWatch:
    """A UPS never read since start protects nothing: a WARNING in the journal and in
    systemd's Status= (once per distinct error), until its first good reading."""

    def __init__(self, target: str, notifier: SystemdNotifier) -> None:
        self.target = target
        self.notifier = notifier
        self.ever_read = False
        self.warned: str | None = None

    def observe(self, poll: Poll) -> None:
        if not isinstance(poll, CommError):
            if not self.ever_read:
                self.ever_read = True
                if self.warned is not None:
                    log.info("UPS %s is readable now: watching it", self.target)
                    self.notifier.status("watching the UPS")
            return
        if self.ever_read or poll.message == self.warned:
            return
        self.warned = poll.message
        log.warning(
            "UPS %s has never been readable since start: the cluster is NOT protected: %s "
            "(run `hecate doctor`)",
            self.target,
            poll.message,
        )
        self.notifier.status(f"WARNING: UPS never readable, not protected: {poll.message}")


def serve_coordination(
    config: HecateConfig, limits: Limits, handlers: CoordinatorHandlers
) -> tuple[CoordinatorServer | None, CoordinatorClient | None]:
    """The signed endpoint (when a token is configured) and, on a peer, its coordinator client."""
    coordination = config.coordination
    token = read_token(coordination.token_file) if coordination.token_file else None
    server = None
    if token is not None:
        server = CoordinatorServer(
            coordination.listen,
            token,
            handlers,
            seen_file=config.state_dir / SEEN_FILE,
            limits=replace(limits, max_body_bytes=MAX_BODY),
        )
        server.start()
        log.info("coordination endpoint on port %s", server.port)
    if coordination.role != "peer":
        return server, None
    if token is None or coordination.coordinator_address is None:
        raise HecateError(
            "a peer needs coordination.token_file and coordination.coordinator_address"
        )
    return server, CoordinatorClient(coordination.coordinator_address, token)


def forward_trigger(
    client: CoordinatorClient | None, peer_name: str, reason: str, metrics: Metrics
) -> bool:
    """Send a peer's trigger to its coordinator; False when the coordinator is unreachable."""
    if client is None:
        log.error("peer without a coordinator client; trigger dropped")
        return True
    try:
        answer = client.send_trigger(peer_name, reason)
        metrics.observe_coordinator(True)
        log.info("coordinator accepted the trigger: %s", answer)
    except CoordinatorUnreachableError as exc:
        metrics.observe_coordinator(False)
        log.error("%s", exc)
        return False
    except HecateError as exc:
        metrics.observe_coordinator(True)
        log.error("coordinator refused the trigger: %s", exc)
    return True


def ask_peers(config: HecateConfig) -> list[PeerIntent]:
    """The intents (and UPS reports) of coordination.peer_hosts that answered."""
    coordination = config.coordination
    try:
        return peers_from_config(coordination.peer_hosts, coordination.token_file).intents()
    except HecateError as exc:
        log.error("cannot ask the peers for their UPS: %s", exc)
        return []


def own_flow_ports(
    config: HecateConfig,
    reader: Callable[[], Poll],
    ups_command: Callable[[str], None] | None,
    clocks: Clock,
) -> tuple[ConnectionWarmer, ContextFactory]:
    """The daemon's own Ansible port (its ssh masters warmed when an outage begins) and the
    context factory its flows run on; made again with the config on SIGHUP."""
    warmer = ConnectionWarmer(lambda: AnsiblePort.from_config(config))
    return warmer, real_context_factory(config, reader, warmer, ups_command, clocks)


def record_report(metrics: Metrics, report: FlowReport) -> None:
    """A finished flow's outcome and durations, as metrics."""
    metrics.runs.labels(report.kind, report.outcome.value).inc()
    metrics.last_run.labels(report.kind, "total").set(report.duration_s)
    for stage in report.stages:
        metrics.last_run.labels(report.kind, stage.name).set(stage.duration_s)


def intent_answer(store: StateStore, now: float, extra: dict[str, Any]) -> dict[str, Any]:
    """What GET /v1/intent answers: the intent and `extra`; "unknown" (which peers treat as
    busy: no startup from them) when it cannot be read."""
    try:
        intent = store.read_intent(now)
    except HecateError as exc:
        return {"state": "unknown", "error": str(exc), **extra}
    return {**intent.to_json(), **extra}


def wait_for_worker(
    current: Callable[[], threading.Thread | None], lock: threading.Lock, timeout_s: float
) -> bool:
    """Wait for the running flow, and for one it started on its way out (an owed shutdown)."""
    deadline = time.monotonic() + timeout_s
    while True:
        with lock:
            worker = current()
        if worker is None:
            return True
        worker.join(max(0.0, deadline - time.monotonic()))
        with lock:
            same = worker is current()
        if worker.is_alive() or same:
            return not worker.is_alive()
