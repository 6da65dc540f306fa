"""The daemon's wiring: what it builds from its configuration (the flows' context factory on
its own Ansible port, the policy's state, budget and battery truth, the coordination server).
Run at start and again on SIGHUP."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import TYPE_CHECKING

from hecate.adapters.http_server import Limits
from hecate.adapters.metrics.registry import Metrics
from hecate.adapters.peers.http import (
    MAX_BODY,
    SEEN_FILE,
    CoordinatorClient,
    CoordinatorHandlers,
    CoordinatorServer,
    read_token,
)
from hecate.adapters.statedir.awaiting import awaiting_at_start
from hecate.adapters.statedir.outages import load_battery_truth
from hecate.adapters.statedir.store import StateStore
from hecate.config.model import HecateConfig
from hecate.core.battery import BatteryTruth, corrected_threshold
from hecate.core.budget import Budget, budget_from_config
from hecate.core.clock import Clock
from hecate.core.feeds import FeedSettings
from hecate.core.intent import IntentState
from hecate.core.policy.values import PolicyState, initial_state
from hecate.core.readings import Poll
from hecate.core.supervisor import Settings, SupervisorState
from hecate.daemon.chore_watch import ChoreWatch
from hecate.errors import HecateError
from hecate.flows.warmup import ConnectionWarmer

if TYPE_CHECKING:
    from hecate.adapters.ansible.protocol import Ansible, PlaybookRequest
    from hecate.flows.context import FlowContext

log = logging.getLogger("hecate.daemon")


ContextFactory = Callable[[threading.Event], AbstractContextManager["FlowContext"]]


def real_context_factory(
    config: HecateConfig,
    reader: Callable[[], Poll],
    warmer: ConnectionWarmer | None = None,
    ups_command: Callable[[str], None] | None = None,
    clock: Clock | None = None,
) -> ContextFactory:
    def factory(cancel: threading.Event) -> AbstractContextManager[FlowContext]:
        from hecate.flows.open_context import open_flow_context  # noqa: PLC0415 - idle RSS (issue 16)

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


def initial_supervisor(
    config: HecateConfig, store: StateStore, now: float, metrics: Metrics
) -> SupervisorState:
    """The supervisor a daemon starts with: the policy as the intent says, the peers a startup
    waits for, and a partial shutdown in force (issue 28: its nodes, from the intent; its lost
    feeds, those of the peers awaited), so that the feed's return starts those nodes only."""
    settings = settings_from(config)
    awaiting = awaiting_at_start(config.state_dir, config.coordination.peer_hosts)
    state = SupervisorState(initial_policy(store, now, metrics), settings, awaiting=awaiting)
    if settings.feeds is None:
        return state
    try:
        intent = store.read_intent(now)
    except HecateError:
        return state  # initial_policy logged it; a whole startup is the safe side
    if intent.nodes is None or intent.state is IntentState.NORMAL:
        return state
    lost = {settings.feeds.feed_of(name) for name in awaiting} - {None}
    return replace(state, scope=intent.nodes, lost_feeds=frozenset(f for f in lost if f))


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
    feeds = None
    if config.power.feeds:  # issue 28: a trigger's feed decides what is shut down
        own = coordination.peer_name or socket.gethostname()
        feeds = FeedSettings(config, own)
    return Settings(coordination.role, coordination.fallback_local_shutdown, feeds)


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


def _ansible_port(config: HecateConfig) -> Ansible:
    """The daemon's long-lived Ansible port, made on first use: the idle daemon never loads the
    Ansible chain (ansible_runner, the batch planner: about 1 MB of its idle RSS)."""
    from hecate.adapters.ansible.port import AnsiblePort  # noqa: PLC0415

    return AnsiblePort.from_config(config)


def daemon_warmer(config: HecateConfig, chores: ChoreWatch) -> ConnectionWarmer:
    """The daemon's warmer: its port built on first use, its failures a chore's."""
    return ConnectionWarmer(
        lambda: _ansible_port(config),
        on_outcome=lambda exc: chores.outcome("warmup", exc),
        ahead=lambda: _shutdown_ahead(config),
    )


def _shutdown_ahead(config: HecateConfig) -> list[PlaybookRequest]:
    """The node batch of the shutdown this daemon would run (its UPS mode, every node): held
    on battery, so the decision finds its ansible-playbook started."""
    from hecate.core.plans import ShutdownOptions  # noqa: PLC0415 - idle RSS
    from hecate.flows.shutdown import node_batch_ahead  # noqa: PLC0415

    options = ShutdownOptions(mode=config.shutdown.ups_mode, reason="held ahead")
    return node_batch_ahead(config, options)


def own_flow_ports(
    config: HecateConfig,
    reader: Callable[[], Poll],
    ups_command: Callable[[str], None] | None,
    clocks: Clock,
    chores: ChoreWatch,
) -> tuple[ConnectionWarmer, ContextFactory]:
    """The daemon's own Ansible port (its ssh masters warmed when an outage begins) and the
    context factory its flows run on; made again with the config on SIGHUP."""
    warmer = daemon_warmer(config, chores)
    return warmer, real_context_factory(config, reader, warmer, ups_command, clocks)
