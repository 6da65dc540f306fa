"""The daemon's background chores, each in its own short-lived thread: keeping the Gitea
bootstrap cache fresh, probing the coordinator (a peer's reachability metric), asking peers for
their UPS (a pending startup), forwarding a trigger, and warning while the UPS was never read;
and the small helpers the daemon's shell uses to record and answer."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from hecate.adapters.metrics.registry import Metrics
from hecate.adapters.peers.http import (
    CoordinatorClient,
    CoordinatorUnreachableError,
    peers_from_config,
)
from hecate.adapters.statedir.store import StateStore
from hecate.adapters.systemd.notify import SystemdNotifier
from hecate.config.model import HecateConfig
from hecate.core.peers import PeerIntent
from hecate.core.readings import CommError, Poll
from hecate.daemon.chore_watch import ChoreWatch, describe
from hecate.daemon.wiring import ContextFactory
from hecate.errors import HecateError
from hecate.flows.report import FlowReport
from hecate.flows.warmup import ConnectionWarmer

if TYPE_CHECKING:
    pass

log = logging.getLogger("hecate.daemon")


COORDINATOR_PROBE_S = 30.0  # how often a peer checks that its coordinator answers (metric)


def spawn(name: str, target: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=target, name=f"hecate-{name}", daemon=True)
    thread.start()
    return thread


def cancel_warmups(warmers: Sequence[ConnectionWarmer | None]) -> None:
    """Cancel every warm-up at once (the port kills its ansible-playbook); start no other."""
    for warmer in warmers:
        if warmer is not None:
            warmer.stop(0.0)


def close_chores(
    warmers: Sequence[ConnectionWarmer | None],
    cache: threading.Thread | None,
    timeout_s: float = 1.5,
) -> None:
    """Wait a moment, never more, for the cancelled warm-ups and a cache refresh, then close
    the ports. Both run in daemon threads: one still building its port (a jump-host preflight)
    or reading the API is left behind (it starts nothing once stopped; the cache files are
    written atomically), so a daemon told to stop exits within 2 s when no flow runs."""
    deadline = time.monotonic() + timeout_s
    cancel_warmups(warmers)
    for warmer in warmers:
        if warmer is None:
            continue
        if not warmer.stop(max(0.0, deadline - time.monotonic())):
            log.warning("an ssh warm-up did not stop in time; not waiting for it")
        port = warmer.opened
        close = getattr(port, "close", None)
        if callable(close):
            close()
    if cache is not None:
        cache.join(max(0.0, deadline - time.monotonic()))


class CacheRefresher:
    """Keep the Gitea bootstrap cache fresh while the cluster is healthy (in the background)."""

    def __init__(self, chores: ChoreWatch) -> None:
        self.chores = chores
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
            with factory(threading.Event()) as ctx:
                if not ctx.kube.readyz():
                    log.info("bootstrap cache not refreshed: API not ready")
                    return
                from hecate.flows.bootstrap_cache import refresh_cache  # noqa: PLC0415

                problems = refresh_cache(ctx.kube, config)
            if problems:  # a failure of the chore: logged once while it lasts, counted
                raise HecateError(f"bootstrap cache: {'; '.join(problems)}")
            log.info("bootstrap cache refreshed")

        self.thread = spawn("cache", self.chores.guarded("cache", refresh))


class CoordinatorProbe:
    """A peer asks its coordinator for its intent now and then, in the background, so that
    `hecate_coordinator_reachable` says whether a trigger could be forwarded right now."""

    def __init__(self, metrics: Metrics, chores: ChoreWatch) -> None:
        self.metrics = metrics
        self.chores = chores
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

        self.thread = spawn("probe", self.chores.guarded("probe", probe))


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
    except Exception as exc:  # never lose a trigger to a bug: the supervisor retries or falls back
        metrics.background_failures.labels("forward").inc()
        log.error("cannot forward the trigger: %s", describe(exc))
        return False
    return True


def ask_peers(config: HecateConfig) -> list[PeerIntent]:
    """The intents (and UPS reports) of coordination.peer_hosts that answered."""
    coordination = config.coordination
    try:
        return peers_from_config(coordination.peer_hosts, coordination.token_file).intents()
    except HecateError as exc:
        log.error("cannot ask the peers for their UPS: %s", exc)
        return []


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
