"""The sender thread: notices in (never blocking the caller), spooled, sent in order with retries.

The poll loop and the flows call `submit`, which only puts the notices on a bounded queue (a
full queue drops and counts: a poll is never delayed). The thread spools each notice for every
target that wants it, then sends each target's spooled messages oldest first through the Apprise
child (hecate.adapters.notify.child); a target that fails waits (backoff doubling up to
`retry_max_s`) and keeps its messages in order. Messages spooled before a restart are sent by
the next process.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from hecate.adapters.notify import child
from hecate.adapters.notify.spool import Spool, Spooled
from hecate.config.notify import NotifyTarget
from hecate.core.notify_events import Notice
from hecate.errors import StateError

log = logging.getLogger(__name__)

QUEUE_SIZE = 256
BATCH = 20  # messages per child: one Apprise start for a backlog
RETRY_BASE_S = 2.0
CHORES_S = 60.0

Count = Callable[[str, str], None]  # (target, result): sent | failed | dropped


class NotifySender:
    def __init__(
        self,
        state_dir: Path,
        targets: Sequence[NotifyTarget],
        *,
        count: Count = lambda target, result: None,
        retry_max_s: float = 300.0,
        send: Callable[[str, list[Notice]], list[child.Result]] = child.send,
    ) -> None:
        self.targets = {t.name: t for t in targets}
        self.spool = Spool(state_dir)
        self.count = count
        self.retry_max_s = retry_max_s
        self._send = send
        self._queue: queue.Queue[Notice | None] = queue.Queue(QUEUE_SIZE)
        self._stop = threading.Event()
        self._failures: dict[str, int] = {}
        self._due: dict[str, float] = {}  # monotonic time of a failed target's next attempt
        self._thread: threading.Thread | None = None
        # checks that may take a moment (a systemctl call), run on this thread, never a poll's
        self.chores: Callable[[], None] | None = None
        self._chores_at = 0.0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="hecate-notify", daemon=True)
            self._thread.start()

    def submit(self, notices: Sequence[Notice]) -> None:
        """Never blocks: a full queue drops (counted for every target, logged)."""
        for notice in notices:
            try:
                self._queue.put_nowait(notice)
            except queue.Full:
                log.error("notification queue full: %s dropped", notice.event)
                for name in self.targets:
                    self.count(name, "dropped")

    def close(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        if self._thread is not None:
            self._thread.join(timeout_s)

    # --- the thread --------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._take(self._queue.get(timeout=self._wait()))
                while True:  # everything queued meanwhile, spooled before anything is sent
                    self._take(self._queue.get_nowait())
            except queue.Empty:
                pass
            if self._stop.is_set():
                return
            try:
                self._run_chores()
                self.deliver_due()
            except Exception:  # the thread must outlive any surprise (a disk, a child)
                log.exception("notification delivery failed")

    def _run_chores(self) -> None:
        now = time.monotonic()
        if self.chores is not None and now >= self._chores_at:
            self._chores_at = now + CHORES_S
            self.chores()

    def _wait(self) -> float:
        """Until the first retry of a target with spooled messages: only those count (a healthy
        target with nothing pending, or one no longer configured, must not wake the thread 20
        times a second while another backs off)."""
        waiting = self.spool.targets() & self.targets.keys()
        if not waiting:
            return 60.0
        now = time.monotonic()
        return min(60.0, max(0.05, min(self._due.get(t, now) for t in waiting) - now))

    def _take(self, notice: Notice | None) -> None:
        if notice is None:
            return
        wanted = [t.name for t in self.targets.values() if t.wants(notice.event, notice.severity)]
        if not wanted:
            return
        try:
            for target in self.spool.add(notice, wanted):
                log.error("notification spool full: the oldest message for %s dropped", target)
                self.count(target, "dropped")
        except StateError as exc:
            log.error("notification %s not spooled (%s): sending it now only", notice.event, exc)
            for name in wanted:
                self._deliver(name, [], [notice])

    def deliver_due(self) -> None:
        """Send what is spooled for every target whose retry time has come."""
        by_target: dict[str, list[Spooled]] = {}
        for item in self.spool.pending():
            by_target.setdefault(item.target, []).append(item)
        now = time.monotonic()
        for name, items in by_target.items():
            if name not in self.targets:
                continue  # a target no longer configured: its messages wait for it to return
            if self._due.get(name, 0.0) > now:
                continue
            batch = items[:BATCH]
            self._deliver(name, batch, [item.notice for item in batch])

    def _deliver(self, name: str, items: list[Spooled], notices: list[Notice]) -> None:
        results = self._send(self.targets[name].url, notices)
        for index, result in enumerate(results):
            if not result.ok:
                failures = self._failures.get(name, 0) + 1
                self._failures[name] = failures
                delay = min(self.retry_max_s, RETRY_BASE_S * 2 ** (failures - 1))
                self._due[name] = time.monotonic() + delay
                log.warning(
                    "notification to %s failed (%s); retry in %.0f s", name, result.why, delay
                )
                self.count(name, "failed")
                return
            if index < len(items):
                try:
                    self.spool.done(items[index])
                except StateError as exc:
                    log.error("%s", exc)
            self.count(name, "sent")
        self._failures.pop(name, None)
        self._due.pop(name, None)
