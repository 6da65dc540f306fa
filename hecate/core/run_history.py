"""Run history: one record per startup or shutdown run, the data the shutdown budget learns from."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Literal

from hecate.errors import StateCorruptError

RunKind = Literal["startup", "shutdown"]


class Outcome(StrEnum):
    SUCCESS = "success"
    PARTIAL = "partial"  # finished, but some nodes were unreachable or a step failed softly
    FAILED = "failed"
    ABORTED = "aborted"  # stopped on purpose (e.g. a shutdown trigger during startup)
    INTERRUPTED = "interrupted"  # found unfinished after a crash


@dataclass(frozen=True)
class StageRecord:
    name: str
    duration_s: float
    outcome: str
    detail: str = ""


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    kind: RunKind
    started_at: float
    ended_at: float
    outcome: Outcome
    reason: str = ""
    mode: str = ""
    stages: tuple[StageRecord, ...] = field(default_factory=tuple)
    # A shutdown's nodes (hecate.core.node_account): node -> off | stopped, and node -> why
    # its state is unknown. Empty for a startup and for records older than issue 25.
    nodes_down: Mapping[str, str] = field(default_factory=dict)
    nodes_unknown: Mapping[str, str] = field(default_factory=dict)
    # What the run learned that later runs use, by subject: `node_times` (stage -> node ->
    # when its playbook finished there; the startup starts the last-stopped server first),
    # `etcd_snapshot` (name, node, path, verified), `etcd_quorum` (the verdict).
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return max(0.0, self.ended_at - self.started_at)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["outcome"] = self.outcome.value
        data["stages"] = [asdict(stage) for stage in self.stages]
        data["nodes_down"], data["nodes_unknown"] = dict(self.nodes_down), dict(self.nodes_unknown)
        if not self.nodes_down and not self.nodes_unknown:
            del data["nodes_down"], data["nodes_unknown"]
        if not self.facts:
            del data["facts"]
        return data

    @classmethod
    def from_json(cls, data: object) -> RunRecord:
        if not isinstance(data, dict):
            raise ValueError("a run must be an object")
        kind = data["kind"]
        if kind not in ("startup", "shutdown"):
            raise ValueError(f"unknown run kind {kind!r}")
        return cls(
            run_id=str(data["run_id"]),
            kind=kind,
            started_at=_finite(data["started_at"]),
            ended_at=_finite(data["ended_at"]),
            outcome=Outcome(data["outcome"]),
            reason=str(data.get("reason", "")),
            mode=str(data.get("mode", "")),
            stages=tuple(
                StageRecord(
                    name=str(s["name"]),
                    duration_s=_finite(s["duration_s"]),
                    outcome=str(s["outcome"]),
                    detail=str(s.get("detail", "")),
                )
                for s in data.get("stages", [])
            ),
            nodes_down=_names(data.get("nodes_down", {})),
            nodes_unknown=_names(data.get("nodes_unknown", {})),
            facts=_facts(data.get("facts", {})),
        )


def _names(value: object) -> dict[str, str]:
    """A node -> text map from a run record."""
    if not isinstance(value, dict):
        raise ValueError(f"expected an object of node names, got {value!r}")
    return {str(k): str(v) for k, v in value.items()}


def _facts(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("facts must be an object")
    return {str(k): v for k, v in value.items()}


def _finite(value: object) -> float:
    """A finite number from a run record (a bool, a string or NaN is a corrupt record)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number, got {number}")
    return number


def parse_runs(data: object, source: str = "runs.json") -> list[RunRecord]:
    """Decode the runs file's content; StateCorruptError when its shape is wrong."""
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list):
        raise StateCorruptError(f"{source}: expected an object with a 'runs' list")
    try:
        return [RunRecord.from_json(item) for item in data["runs"]]
    except (KeyError, ValueError, TypeError) as exc:
        raise StateCorruptError(f"{source}: invalid run record ({exc})") from None


def encode_runs(runs: list[RunRecord]) -> dict[str, Any]:
    return {"version": 1, "runs": [run.to_json() for run in runs]}


def append_bounded(runs: list[RunRecord], run: RunRecord, keep: int) -> list[RunRecord]:
    """The history with `run` added (replacing a record with the same id), last `keep` kept."""
    others = [r for r in runs if r.run_id != run.run_id]
    return [*others, run][-keep:]
