"""Load shedding in the daemon (issue 28, item 3): after each poll, the pure core says which
move is due (hecate.core.shed_plan.shed_move) and a worker thread carries it out through the
flows' shell (hecate.flows.shed), so polling never waits for the API, a drain or a poweroff.

The record is read at start (a restart restores, or carries a shed on), again after every
flow (the startup's shed_restore stage may have restored it), and every BLOCKED_REREAD_S while
it cannot be read (fail closed meanwhile: no new shed replaces it, no restore acts on it; said
once in the log, in `status` and as hecate_shed_record_unreadable; shutdowns go on as ever),
so that a disk that reads again or an operator's by-hand fix is taken without a restart.

A shutdown stops a shed in progress at its next step (the record says what was done; the
startup restores it). Neither a shed nor a restore starts while any flow runs, this daemon's or
another process's (a CLI `hecate shutdown` or `startup`: the flow lock, seen without taking it)
or while the intent is not `normal`; a restore asks again between its phases and stops there.
A move that fails or leaves something is tried again after RETRY_S, doubled at each try that
fails again up to RETRY_MAX_S; what is left is told (notice, warning) once, not at every try.
Only an instance that runs the flows sheds: a peer forwards triggers and leaves the cluster
alone.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from hecate.adapters.metrics.shed_series import ShedCollector
from hecate.adapters.statedir.save import flow_running
from hecate.adapters.statedir.shed_file import load_shed
from hecate.adapters.statedir.store import StateStore
from hecate.config.model import HecateConfig
from hecate.core import notify_events as ne
from hecate.core.intent import IntentState
from hecate.core.policy.values import PolicyState
from hecate.core.readings import Poll, UpsReading
from hecate.core.shed import ShedBlocked, ShedRecord, shed_configured
from hecate.core.shed_plan import Move, shed_move
from hecate.core.supervisor import SupervisorState
from hecate.daemon.chore_watch import ChoreWatch
from hecate.daemon.notices import Notices
from hecate.errors import HecateError, StateError

if TYPE_CHECKING:
    from hecate.adapters.metrics.registry import Metrics
    from hecate.daemon.wiring import ContextFactory
    from hecate.flows.shed import ShedResult

log = logging.getLogger("hecate.shed")

RETRY_S = 120.0  # after a move that failed or left something, before the next try
RETRY_MAX_S = 1920.0  # the longest wait between tries (a node only an operator can power on)
BUSY_WAIT_S = 15.0  # a flow runs (or the intent is not normal): asked again after this
BLOCKED_REREAD_S = 30.0  # an unreadable record is read again this often
Found = ShedRecord | ShedBlocked | None


class DaemonView(Protocol):
    config: HecateConfig
    context_factory: ContextFactory
    sup: SupervisorState
    metrics: Metrics
    chores: ChoreWatch
    notices: Notices
    store: StateStore
    mono: Callable[[], float]
    clock: Callable[[], float]


class Shedder:
    def __init__(self, daemon: DaemonView) -> None:
        self.daemon = daemon
        self.cancel = threading.Event()
        self.thread: threading.Thread | None = None
        self.not_before = 0.0
        self.failures = 0  # moves in a row that failed or left something (the backoff)
        self.said: dict[str, str] = {}  # what was last told, per subject: told once
        self.stale = False  # a flow ran: the record on disk may have changed
        self.reread_at = 0.0  # an unreadable record: when it is read again
        self.record: Found = self._load()
        daemon.metrics.registry.register(ShedCollector(lambda: self.record))

    def _load(self) -> Found:
        try:
            found = load_shed(self.daemon.config.state_dir, now=self.daemon.clock())
        except StateError as exc:  # unreadable (a failing disk): unknown, never "nothing"
            found = ShedBlocked(self.daemon.clock(), "", str(exc))
        if isinstance(found, ShedBlocked):
            if self._once("blocked", found.problem):
                log.error(
                    "the shed record cannot be read (%s): nothing is shed or restored until "
                    "it reads again or is cleared (hecate status says how); shutdowns are not "
                    "affected",
                    found.problem,
                )
        elif self.said.pop("blocked", None) is not None:
            log.info("the shed record reads again: shedding and its restore resume")
        return found

    def _once(self, subject: str, text: str) -> bool:
        """Whether `text` is new for `subject` (and remember it): told once, not every try."""
        if self.said.get(subject) == text:
            return False
        self.said[subject] = text
        return True

    def guard(self) -> str | None:
        """Why neither a shed nor a restore may act now (None: they may): a flow runs, here
        or in another process (its lock, seen without taking it), or the intent is not
        `normal` (or cannot be read)."""
        d = self.daemon
        if d.sup.running is not None:
            return f"a {d.sup.running.value} runs"
        held = flow_running(d.config.state_dir)
        if held:
            return f"another flow runs ({held})"
        try:
            intent = d.store.read_intent(d.clock(), move=False)
        except HecateError as exc:
            return f"the intent cannot be read ({exc})"
        if intent.state is not IntentState.NORMAL:
            return f"the intent is {intent.state.value}"
        return None

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
        if self.stale or (isinstance(self.record, ShedBlocked) and m >= self.reread_at):
            self.stale, self.record = False, self._load()
            self.reread_at = m + BLOCKED_REREAD_S
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
        busy = self.guard()
        if busy:  # a flow's turn: asked again soon, never a failure
            self.not_before = d.mono() + BUSY_WAIT_S
            if self._once("busy", busy):
                log.info("%s waits: %s", move, busy)
            return
        self.said.pop("busy", None)
        try:
            with d.context_factory(self.cancel) as ctx:
                record = self.record if isinstance(self.record, ShedRecord) else None
                if move == "restore" and record is not None:
                    result = restore(ctx, record, guard=self.guard)
                else:
                    result = shed(ctx, why, record if move == "carry_on" else None)
        except FlowAbortedError as exc:  # a flow started: the record says what was done
            self.record = self._load()
            self.not_before = d.mono() + BUSY_WAIT_S
            log.info("%s stopped (%s); the record keeps what was done", move, exc)
            return
        except Exception:
            self._back_off()
            self.record = self._load()  # what is on disk is what was done
            raise
        self.record = result.record
        self._tell(move, why, record, result)
        if result.failed:
            self._back_off()
            if self._once(f"{move} failed", "; ".join(result.failed)):
                log.warning("%s: %s", move, "; ".join(result.failed))
        else:
            self.failures = 0
            self.said.pop(f"{move} failed", None)

    def _back_off(self) -> None:
        """The next try after RETRY_S, doubled for every failed try in a row (capped)."""
        self.failures += 1
        wait = min(RETRY_MAX_S, RETRY_S * 2 ** (self.failures - 1))
        self.not_before = self.daemon.mono() + wait
        log.info("load shedding: next try in %.0fs", wait)

    def _tell(self, move: Move, why: str, before: ShedRecord | None, result: ShedResult) -> None:
        from hecate.flows.shed import summary  # noqa: PLC0415 - idle RSS (issue 16)

        notices, at = self.daemon.notices, self.daemon.clock()
        if move == "restore" and before is not None:
            left = result.line() if result.record is not None else ""
            if self._once("restored", left):  # the same leftover again: told already
                notices.send(ne.load_restored(notices.where, summary(before), left, at))
        elif move == "shed" and result.record is not None:
            self.said.pop("restored", None)  # a new episode: its restore is told
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
