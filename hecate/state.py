"""The state directory: intent.json and runs.json, read and written through statefiles."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from hecate.errors import StateError
from hecate.intent import Intent, IntentState, initial_intent, transition
from hecate.runs import RunRecord, append_bounded, encode_runs, parse_runs
from hecate.statefiles import atomic_write_json, read_json, set_aside

INTENT_FILE = "intent.json"
RUNS_FILE = "runs.json"
WRITE_LOCK = ".write.lock"


class StateStore:
    def __init__(self, state_dir: Path, *, host: str | None = None) -> None:
        self.state_dir = state_dir
        self.host = host or socket.gethostname()

    @property
    def intent_path(self) -> Path:
        return self.state_dir / INTENT_FILE

    @property
    def runs_path(self) -> Path:
        return self.state_dir / RUNS_FILE

    @contextlib.contextmanager
    def _write_lock(self, timeout_s: float = 10.0) -> Iterator[None]:
        """A short lock around read-modify-write of one file (flows hold the long lock)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.state_dir / WRITE_LOCK, os.O_RDWR | os.O_CREAT, 0o640)
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise StateError(
                            f"{self.state_dir}: state files stayed locked for {timeout_s:.0f}s"
                        ) from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def read_intent(self, now: float | None = None) -> Intent:
        """The recorded intent; `normal` when none was ever written."""
        data = read_json(self.intent_path)
        if data is None:
            return initial_intent(now if now is not None else time.time(), self.host)
        try:
            return Intent.from_json(data, str(self.intent_path))
        except StateError:
            kept = set_aside(self.intent_path)
            raise StateError(
                f"{self.intent_path} has an invalid shape; it was moved to {kept}. "
                "Check the cluster by hand, then run `hecate status` again"
            ) from None

    def set_intent(
        self, new: IntentState, *, reason: str, run_id: str | None, now: float | None = None
    ) -> Intent:
        """Move the intent along the transition table and persist it atomically."""
        stamp = now if now is not None else time.time()
        with self._write_lock():
            current = self.read_intent(stamp)
            nxt = transition(current, new, now=stamp, reason=reason, host=self.host, run_id=run_id)
            atomic_write_json(self.intent_path, nxt.to_json())
            return nxt

    def load_runs(self) -> list[RunRecord]:
        data = read_json(self.runs_path)
        if data is None:
            return []
        try:
            return parse_runs(data, str(self.runs_path))
        except StateError as exc:
            kept = set_aside(self.runs_path)
            raise StateError(f"{exc}; the file was moved to {kept} for inspection") from None

    def record_run(self, run: RunRecord, keep: int) -> None:
        with self._write_lock():
            runs = self.load_runs()
            atomic_write_json(self.runs_path, encode_runs(append_bounded(runs, run, keep)))
