"""The idle daemon's memory against a real upsd (issue 23 item 12: at most 38 MB, growing less
than 1 MB over 10,000 polls after its warm-up). bench/daemon_memory.py measures the full 10,000
polls (docs/benchmarks.md); this runs a shorter version of the same measurement in CI, so an
import that sneaks a library back into the idle daemon, or a per-poll leak, fails a test."""

from __future__ import annotations

import pytest

from bench.daemon_memory import measure

pytestmark = pytest.mark.integration

IDLE_LIMIT_MB = 38.0
GROWTH_LIMIT_MB_PER_10K = 1.0


def test_the_idle_daemon_stays_small_and_does_not_grow() -> None:
    # an eighth of the benchmark's polls, held to its whole budget: a leak of a kilobyte a
    # poll (a list that keeps every reading) still shows (1.25 MB), allocator noise (a few
    # hundred kB) does not; fewer polls keep CI's total down (each takes ~50 ms under load)
    result = measure(1_250, interval=0.01, warmup=150)
    assert result["idle_rss_mb"] <= IDLE_LIMIT_MB, result
    assert result["mains_growth_mb"] < GROWTH_LIMIT_MB_PER_10K, result
    assert result["battery_growth_mb"] < GROWTH_LIMIT_MB_PER_10K, result
