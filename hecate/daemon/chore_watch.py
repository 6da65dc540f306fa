"""The daemon's background chores and their failures.

A chore (the ssh warm-up, the bootstrap cache refresh, the coordinator probe, asking the peers,
forwarding a trigger) runs in its own thread, and none of them may end that thread with an
uncaught exception; the outage trace, written from the poll loop, may not end the loop either.
The daemon's job is the UPS: a chore that breaks (a full or read-only state disk, a bug) must
neither print a traceback nor go unnoticed. Every failure is counted
(`hecate_background_failures_total{chore}`); the first of a run of failures is logged at error
level, the repetitions only at debug level (a warm-up repeats every 90 s of an outage, a trace
is written at every poll), and the chore's next success says it works again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from hecate.adapters.metrics.registry import Metrics
from hecate.errors import HecateError

log = logging.getLogger("hecate.daemon")


def describe(exc: BaseException) -> str:
    """One line for the log: our errors speak for themselves; others name their type."""
    if isinstance(exc, HecateError):
        return str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return f"{type(exc).__name__}: {exc}"


class ChoreWatch:
    """Counts every failure of a background chore and logs each run of failures once."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._failing: dict[str, str] = {}
        self._lock = threading.Lock()

    def outcome(self, chore: str, exc: BaseException | None) -> None:
        """What one run of `chore` came to: None when it worked."""
        if exc is None:
            with self._lock:
                was = self._failing.pop(chore, None)
            if was is not None:
                log.info("background chore %s works again", chore)
            return
        self.metrics.background_failures.labels(chore).inc()
        message = describe(exc)
        with self._lock:
            first = chore not in self._failing
            self._failing[chore] = message
        if first:
            log.error(
                "background chore %s failed: %s (logged once until it works again; "
                "each failure counted in hecate_background_failures_total)",
                chore,
                message,
            )
        else:
            log.debug("background chore %s failed again: %s", chore, message)

    def failing(self) -> dict[str, str]:
        """The chores whose last run failed, with why."""
        with self._lock:
            return dict(self._failing)

    def attempt(self, chore: str, target: Callable[[], None]) -> bool:
        """Run `target` here and now as `chore`; False (counted, logged once) if it failed."""
        try:
            target()
        except Exception as exc:  # the calling loop (the UPS poll) must go on
            self.outcome(chore, exc)
            return False
        self.outcome(chore, None)
        return True

    def guarded(self, chore: str, target: Callable[[], None]) -> Callable[[], None]:
        """`target` for a thread: any exception is this chore's failure, never the thread's."""

        def run() -> None:
            self.attempt(chore, target)  # the thread must not die: count, log once, carry on

        return run
