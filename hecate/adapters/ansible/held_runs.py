"""The runs one port holds ahead (hecate/adapters/ansible/held.py): added when held, claimed by
the run that matches, dropped when a flow ends, waited for when the port closes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from hecate.adapters.ansible.batch import BatchStage
from hecate.adapters.ansible.held import HeldRun
from hecate.adapters.ansible.protocol import PlaybookRequest


class HeldRuns:
    """The runs one port holds ahead (thread-safe): added, claimed by the run that matches,
    dropped when the port closes."""

    def __init__(self) -> None:
        self._runs: list[HeldRun] = []
        self._claimed: list[HeldRun] = []  # their processes may still be exiting
        self._lock = threading.Lock()

    def add(self, run: HeldRun) -> None:
        with self._lock:
            self._runs.append(run)

    def covers(self, stages: Sequence[BatchStage], requests: int) -> bool:
        """Whether a run held now could already be `stages` (holding it again would only start
        a second process)."""
        with self._lock:
            now = time.monotonic()
            return any(run.claimable(stages, requests, now) for run in self._runs)

    def claim(self, stages: Sequence[BatchStage], requests: int) -> HeldRun | None:
        """The first held run that can be `stages`, taken out; the dead and the late are
        dropped on the way (a late one's gate ends its run by itself)."""
        with self._lock:
            now = time.monotonic()
            for run in list(self._runs):
                if run.claimable(stages, requests, now):
                    self._runs.remove(run)
                    self._claimed = [old for old in self._claimed if old.alive]
                    self._claimed.append(run)
                    return run
                if not run.alive or now >= run.started_at + run.hold_s:
                    self._runs.remove(run)
            return None

    def claim_for(
        self,
        requests: Sequence[PlaybookRequest],
        stages_of: Callable[[Sequence[PlaybookRequest]], list[BatchStage]],
    ) -> HeldRun | None:
        """:meth:`claim` for `requests` (made stages by `stages_of`); cheap when nothing of
        that many requests is held."""
        with self._lock:
            if not any(run.requests == len(requests) for run in self._runs):
                return None
        stages = stages_of(requests)
        return self.claim(stages, len(requests)) if stages else None

    def settle(self, wait_s: float) -> None:
        """Wait (that long in all) for the claimed runs' processes to be gone."""
        with self._lock:
            claimed = list(self._claimed)
        deadline = time.monotonic() + wait_s
        for run in claimed:
            run.join(max(0.0, deadline - time.monotonic()))

    def drop_all(self, wait_s: float = 0.0) -> None:
        """Say "no" to every run still held; with `wait_s`, also wait (that long in all) for
        their processes and those of the claimed runs still exiting (the port's close)."""
        with self._lock:
            runs, self._runs = self._runs, []
            claimed = list(self._claimed) if wait_s > 0 else []
            if wait_s > 0:
                self._claimed = []
        for run in runs:
            run.drop()
        deadline = time.monotonic() + wait_s
        for run in runs:
            run.drop(wait_s=max(0.0, deadline - time.monotonic()))
        for run in claimed:
            run.join(max(0.0, deadline - time.monotonic()))
