"""The daemon's background chores, each in its own short-lived thread: keeping the Gitea
bootstrap cache fresh, probing the coordinator (a peer's reachability metric), asking peers for
their UPS (a pending startup), forwarding a trigger, and warning while the UPS was never read."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager

from hecate.config import HecateConfig
from hecate.coordination import CoordinatorClient, CoordinatorUnreachableError
from hecate.errors import HecateError
from hecate.flows.bootstrap_cache import refresh_cache
from hecate.flows.context import FlowContext
from hecate.metrics import Metrics
from hecate.readings import CommError, Poll
from hecate.sdnotify import SystemdNotifier

log = logging.getLogger("hecate.daemon")

ContextFactory = Callable[[threading.Event], AbstractContextManager[FlowContext]]
COORDINATOR_PROBE_S = 30.0  # how often a peer checks that its coordinator answers (metric)


def spawn(name: str, target: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=target, name=f"hecate-{name}", daemon=True)
    thread.start()
    return thread


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
