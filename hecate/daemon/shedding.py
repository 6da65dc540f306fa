"""Load shedding in the daemon (issue 28, item 3): after each poll, the pure core says which
move is due (hecate.core.shed_plan.shed_move) and a worker thread carries it out through the
flows' shell (hecate.flows.shed), so polling never waits for the API, a drain or a poweroff.

The record is read at start (a restart restores, or carries a shed on) and again after every
flow (the startup's shed_restore stage may have restored it). A shutdown stops a shed in
progress at its next step (the record says what was done; the startup restores it). Only an
instance that runs the flows sheds: a peer forwards triggers and leaves the cluster alone.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from hecate.adapters.metrics.shed_series import ShedCollector
from hecate.adapters.statedir.shed_file import load_shed
from hecate.config.model import HecateConfig
from hecate.core import notify_events as ne
from hecate.core.policy.values import PolicyState
from hecate.core.readings import Poll, UpsReading
from hecate.core.shed import ShedBlocked, ShedRecord, shed_configured
from hecate.core.shed_plan import Move, shed_move
from hecate.core.supervisor import SupervisorState
from hecate.daemon.chore_watch import ChoreWatch
from hecate.daemon.notices import Notices
from hecate.errors import StateError

if TYPE_CHECKING:
    from hecate.adapters.metrics.registry import Metrics
    from hecate.daemon.wiring import ContextFactory
    from hecate.flows.shed import ShedResult

log = logging.getLogger("hecate.shed")

RETRY_S = 120.0  # after a move that failed or left something, before the next try
Found = ShedRecord | ShedBlocked | None


class DaemonView(Protocol):
    config: HecateConfig
    context_factory: ContextFactory
    sup: SupervisorState
    metrics: Metrics
    chores: ChoreWatch
    notices: Notices
    mono: Callable[[], float]
    clock: Callable[[], float]


class Shedder:
    def __init__(self, daemon: DaemonView) -> None:
        self.daemon = daemon
        self.cancel = threading.Event()
        self.thread: threading.Thread | None = None
        self.not_before = 0.0
        self.stale = False  # a flow ran: the record on disk may have changed
        self.record: Found = self._load()
        daemon.metrics.registry.register(ShedCollector(lambda: self.record))

    def _load(self) -> Found:
        try:
            return load_shed(self.daemon.config.state_dir, now=self.daemon.clock())
        except StateError as exc:  # unreadable (a failing disk): unknown, never "nothing"
            log.error("the shed record cannot be read: %s; nothing shed or restored", exc)
            return ShedBlocked(self.daemon.clock(), "", str(exc))

    def observe(self, poll: Poll, m: float) -> None:
        """After each poll: start the move that is due, if any (never waits)."""
        d = self.daemon
        sup = d.sup
        if sup.running is not None:
            self.stale = True
            if self.busy:
                self.cancel.set()  # a flow takes precedence; the record says what was done
            return
        if self.busy or m < self.not_before or d.config.coordination.role == "peer":
            return
        if self.stale:
            self.stale, self.record = False, self._load()
        if self.record is None and not shed_configured(d.config.power.shed):
            return
        move = shed_move(
            d.config.power.shed,
            self.record,
            on_battery_s=_on_battery_s(sup.policy, m),
            runtime_s=poll.runtime_s if isinstance(poll, UpsReading) else None,
            mains_stable=sup.ups_back,
            startup_pending=sup.policy.startup_pending,
            flow_running=False,
            partial_in_force=sup.scope is not None,
        )
        if move is None:
            return
        self.cancel = threading.Event()
        log.info("action=%s reason=%s", move[0], move[1])
        self.thread = threading.Thread(
            target=d.chores.guarded("shed", lambda: self._run(*move)),
            name="hecate-shed",
            daemon=True,
        )
        self.thread.start()

    @property
    def busy(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def _run(self, move: Move, why: str) -> None:
        from hecate.flows.context import FlowAbortedError  # noqa: PLC0415 - idle RSS (issue 16)
        from hecate.flows.shed import shed  # noqa: PLC0415
        from hecate.flows.shed_restore import restore  # noqa: PLC0415

        d = self.daemon
        try:
            with d.context_factory(self.cancel) as ctx:
                record = self.record if isinstance(self.record, ShedRecord) else None
                if move == "restore" and record is not None:
                    result = restore(ctx, record)
                else:
                    result = shed(ctx, why, record if move == "carry_on" else None)
        except FlowAbortedError:  # a flow started: the record says what was done
            self.record = self._load()
            log.info("%s stopped for a flow; the record keeps what was done", move)
            return
        except Exception:
            self.not_before = d.mono() + RETRY_S
            self.record = self._load()  # what is on disk is what was done
            raise
        self.record = result.record
        self._tell(move, why, record, result)
        if result.failed:
            self.not_before = d.mono() + RETRY_S
            log.warning("%s: %s", move, "; ".join(result.failed))

    def _tell(self, move: Move, why: str, before: ShedRecord | None, result: ShedResult) -> None:
        from hecate.flows.shed import summary  # noqa: PLC0415 - idle RSS (issue 16)

        notices, at = self.daemon.notices, self.daemon.clock()
        if move == "restore" and before is not None:
            left = result.line() if result.record is not None else ""
            notices.send(ne.load_restored(notices.where, summary(before), left, at))
        elif move == "shed" and result.record is not None:
            notices.send(ne.load_shed(notices.where, summary(result.record), why, at))

    def close(self, timeout_s: float = 30.0) -> None:
        self.cancel.set()
        if self.thread is not None:
            self.thread.join(timeout_s)


def _on_battery_s(policy: PolicyState, m: float) -> float | None:
    """How long this outage has been on battery (None: on mains); a flicker back to mains
    inside the episode does not restart it."""
    if not policy.on_battery:
        return None
    start = policy.outage_start if policy.outage_start is not None else policy.battery_since
    return None if start is None else max(0.0, m - start)
