"""Flow reports and outcomes."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from hecate.flows.context import FlowContext, StageResult
from hecate.runs import Outcome, RunRecord


@dataclass
class FlowReport:
    kind: str
    run_id: str
    outcome: Outcome
    started_at: float
    ended_at: float
    stages: list[StageResult]
    fallbacks: list[str] = field(default_factory=list)
    message: str = ""

    @property
    def duration_s(self) -> float:
        return self.ended_at - self.started_at

    def to_json(self) -> dict[str, Any]:
        nodes: dict[str, dict[str, str]] = {}
        for stage in self.stages:
            for node, status in stage.nodes.items():
                nodes.setdefault(node, {})[stage.name] = status
        return {
            "kind": self.kind,
            "run_id": self.run_id,
            "outcome": self.outcome.value,
            "duration_s": round(self.duration_s, 3),
            "stages": [s.to_json() for s in self.stages],
            "nodes": nodes,
            "fallbacks": self.fallbacks,
            "message": self.message,
        }


def outcome_of(stages: list[StageResult]) -> Outcome:
    """Success when every stage is ok (warnings and skips allowed), partial otherwise."""
    if any(s.status in ("failed", "partial") for s in stages):
        return Outcome.PARTIAL
    return Outcome.SUCCESS


def record_interrupted(ctx: FlowContext, run_id: str, since: float, kind: str) -> None:
    """A run that a crash cut short is recorded as interrupted (never counted in the budget)."""
    known = {r.run_id for r in ctx.store.load_runs()}
    if run_id not in known:
        ctx.store.record_run(
            RunRecord(
                run_id,
                "shutdown" if kind == "shutdown" else "startup",
                since,
                ctx.clock(),
                Outcome.INTERRUPTED,
                "found unfinished at the next run",
            ),
            keep=ctx.config.shutdown.runs_kept,
        )


def now_rfc3339(now: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
