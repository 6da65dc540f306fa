"""Records UPS polls during an outage as a trace in `hecate replay`'s format, for post-mortems.

One file per outage under `state_dir/traces/` (named after the wall time of its first poll); the
last `keep` files are kept. Each line has `t` (wall seconds since the file's first poll: it can
jump, even below 0, when the wall clock steps) and `mono` (monotonic seconds since the first
poll: never goes back). `hecate replay` times everything on `mono`, as the daemon did.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from hecate.adapters.statedir.private_files import open_private, private_dir
from hecate.core.readings import Poll
from hecate.core.trace import encode_point


class TraceRecorder:
    def __init__(self, directory: Path, *, keep: int = 20, tail_polls: int = 3) -> None:
        self.directory = directory
        self.keep = keep
        self.tail_polls = tail_polls  # polls recorded after the outage ends, to show recovery
        self._start = 0.0
        self._mono_start = 0.0
        self._tail = 0
        self.current: Path | None = None
        self.last: Path | None = None

    def observe(self, t: float, poll: Poll, *, active: bool, mono: float | None = None) -> None:
        """Record one poll taken at wall time `t` and monotonic time `mono` (default: `t`)."""
        m = t if mono is None else mono
        if active:
            self._tail = self.tail_polls
        elif self.current is not None:
            self._tail -= 1
        if self.current is None and active:
            self._open(t, m)
        if self.current is None:
            return
        # Opened per poll: nothing stays open between polls, and a crash loses at most one line.
        fd = open_private(self.current, os.O_WRONLY | os.O_APPEND)  # owner-only, any umask
        with os.fdopen(fd, "a", encoding="utf-8") as handle:
            handle.write(encode_point(t - self._start, poll, m - self._mono_start) + "\n")
        if not active and self._tail <= 0:
            self.close()

    def _open(self, t: float, mono: float) -> None:
        private_dir(self.directory)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(t))
        self.current = self.directory / f"outage-{stamp}.jsonl"
        self._start = t
        self._mono_start = mono
        old = sorted(self.directory.glob("outage-*.jsonl"))[: -self.keep]
        for path in old:
            path.unlink(missing_ok=True)

    def close(self) -> None:
        """End the current trace; the next outage starts a new file."""
        self.last = self.current
        self.current = None
