"""The shutdown budget: how long a shutdown takes, learned from past successful runs.

Statistic: the nearest-rank percentile (default p95) of the durations of the last
`history_window` successful shutdown runs. With the handful of samples a cluster collects this is
close to the maximum, which is what a budget must cover: a shutdown that takes longer than the
battery lasts is the failure we exist to prevent. Failed, partial and aborted runs are ignored
(their durations say nothing about a full shutdown), and so are shutdowns in another mode than
`shutdown.ups_mode`; below `min_samples` successes the configured
`default_budget_seconds` is used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from hecate.core.run_history import Outcome, RunRecord

if TYPE_CHECKING:
    from hecate.config.view import ConfigLike


@dataclass(frozen=True)
class Budget:
    estimate_s: float
    threshold_s: float
    source: Literal["history", "fallback"]
    samples: int


def nearest_rank_percentile(values: Sequence[float], percentile: float) -> float:
    ordered = sorted(values)
    rank = max(1, math.ceil(percentile / 100.0 * len(ordered)))
    return ordered[rank - 1]


def estimate_budget(
    runs: Sequence[RunRecord],
    *,
    fallback_s: float,
    safety_factor: float,
    window: int,
    min_samples: int,
    percentile: float = 95.0,
    mode: str | None = None,
) -> Budget:
    """`mode`: only shutdowns run in that mode count (a UPS trigger's `shutdown.ups_mode`): a
    cluster-only maintenance shutdown says little about a poweroff one."""
    durations = [
        run.duration_s
        for run in runs
        if run.kind == "shutdown"
        and run.outcome is Outcome.SUCCESS
        and (mode is None or not run.mode or run.mode == mode)
    ][-window:]
    if len(durations) < min_samples:
        return Budget(fallback_s, fallback_s * safety_factor, "fallback", len(durations))
    estimate = nearest_rank_percentile(durations, percentile)
    return Budget(estimate, estimate * safety_factor, "history", len(durations))


def budget_from_config(config: ConfigLike, runs: Sequence[RunRecord]) -> Budget:
    """The budget with the config's settings: what the daemon, status and replay all use."""
    shutdown = config.shutdown
    return estimate_budget(
        runs,
        fallback_s=config.default_budget_seconds,
        safety_factor=config.runtime_safety_factor,
        window=shutdown.history_window,
        min_samples=shutdown.min_samples,
        percentile=shutdown.budget_percentile,
        mode=shutdown.ups_mode,
    )
