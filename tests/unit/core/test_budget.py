"""Shutdown budget: statistic, ignored runs, fallback and threshold."""

from __future__ import annotations

import pytest

from hecate.core.budget import estimate_budget, nearest_rank_percentile
from hecate.core.run_history import Outcome, RunKind, RunRecord


def _run(
    n: int, duration: float, outcome: Outcome = Outcome.SUCCESS, kind: RunKind = "shutdown"
) -> RunRecord:
    return RunRecord(f"r{n}", kind, 1000.0 * n, 1000.0 * n + duration, outcome)


def _budget(
    runs: list[RunRecord], window: int = 10, min_samples: int = 3
) -> tuple[float, float, str, int]:
    b = estimate_budget(
        runs,
        fallback_s=300,
        safety_factor=1.1,
        window=window,
        min_samples=min_samples,
        percentile=95,
    )
    return b.estimate_s, b.threshold_s, b.source, b.samples


def test_fallback_below_min_samples() -> None:
    estimate, threshold, source, samples = _budget([_run(1, 100), _run(2, 120)])
    assert (estimate, source, samples) == (300, "fallback", 2)
    assert threshold == pytest.approx(330)


def test_history_uses_high_percentile_of_successful_shutdowns() -> None:
    runs = [_run(n, d) for n, d in enumerate([100, 110, 120, 180, 130])]
    estimate, threshold, source, samples = _budget(runs)
    assert (estimate, source, samples) == (180, "history", 5)
    assert threshold == pytest.approx(198)


@pytest.mark.parametrize(
    "outcome", [Outcome.FAILED, Outcome.ABORTED, Outcome.PARTIAL, Outcome.INTERRUPTED]
)
def test_unsuccessful_runs_are_ignored(outcome: Outcome) -> None:
    runs = [_run(1, 100), _run(2, 110), _run(3, 120), _run(4, 9000, outcome)]
    assert _budget(runs)[0] == 120


def test_startup_runs_are_ignored() -> None:
    runs = [_run(1, 100), _run(2, 110), _run(3, 120), _run(4, 900, kind="startup")]
    assert _budget(runs)[0] == 120


def test_only_the_window_of_recent_runs_counts() -> None:
    runs = [_run(0, 5000)] + [_run(n, 100 + n) for n in range(1, 11)]
    assert _budget(runs, window=10)[0] == 110  # the ancient slow run fell out
    assert _budget(runs, window=11)[0] == 5000


def test_nearest_rank_percentile() -> None:
    values = [float(v) for v in range(1, 101)]
    assert nearest_rank_percentile(values, 95) == 95
    assert nearest_rank_percentile(values, 100) == 100
    assert nearest_rank_percentile([7.0], 50) == 7


def test_only_runs_in_the_ups_mode_count() -> None:
    def run(n: int, duration: float, mode: str) -> RunRecord:
        return RunRecord(
            f"r{n}", "shutdown", 1000.0 * n, 1000.0 * n + duration, Outcome.SUCCESS, mode=mode
        )

    runs = [
        run(1, 100, "poweroff"),
        run(2, 110, "poweroff"),
        run(3, 120, "poweroff"),
        run(4, 20, "cluster-only"),
        run(5, 900, "cluster-only"),
    ]
    budget = estimate_budget(
        runs, fallback_s=300, safety_factor=1.1, window=10, min_samples=3, mode="poweroff"
    )
    assert (budget.estimate_s, budget.samples) == (120, 3)
