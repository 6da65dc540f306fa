"""The clock port (the daemon's and its flows'): wall time for people and files, monotonic
time for every interval.

A wall clock can step (NTP correcting after a cold boot on a host without an RTC battery, an
operator's `date -s`). Debounce windows, the dead time, mains stability and retry delays are
measured on the monotonic clock, so a step changes none of them. Wall time only stamps intents,
run records, log lines and the trace files' `t`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Clock:
    wall: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic


def as_clock(clock: Clock | Callable[[], float]) -> Clock:
    """A Clock from a Clock, or from one callable used for both (tests with a fake time; the
    system's `time.time` alone gets `time.monotonic` beside it)."""
    if isinstance(clock, Clock):
        return clock
    if clock is time.time:
        return Clock()
    return Clock(wall=clock, monotonic=clock)
