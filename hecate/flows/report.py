"""Flow reports and outcomes."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hecate.adapters.statedir.files import atomic_write_json, read_json
from hecate.adapters.statedir.save import save_json
from hecate.core.intent import Intent, IntentState
from hecate.core.node_account import NodeAccount
from hecate.core.run_history import Outcome, RunKind, RunRecord
from hecate.errors import HecateError, StateError

if TYPE_CHECKING:  # only for annotations: status reads reports without the flow machinery
    from hecate.flows.context import FlowContext, StageResult

PROGRESS_FILE = "startup-progress.json"


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
    cluster: NodeAccount | None = None  # a shutdown's nodes: down and unknown
    facts: dict[str, Any] = field(default_factory=dict)

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
            "facts": self.facts,
        } | ({"cluster": self.cluster.to_json()} if self.cluster is not None else {})


def outcome_of(stages: list[StageResult]) -> Outcome:
    """Success when every stage is ok (warnings and skips allowed), partial otherwise."""
    # the plan machinery (hecate.core.plans and the config it plans from) only for a flow:
    # `hecate status` reads reports through this module and plans nothing
    from hecate.core.plans import StageStatus  # noqa: PLC0415

    if any(s.status in (StageStatus.FAILED, StageStatus.PARTIAL) for s in stages):
        return Outcome.PARTIAL
    return Outcome.SUCCESS


# The intent states a run leaves behind while it is under way, and the run's kind.
_UNDER_WAY: dict[IntentState, RunKind] = {
    IntentState.SHUTTING_DOWN: "shutdown",
    IntentState.STARTUP_IN_PROGRESS: "startup",
}


def interrupted_run(previous: Intent | None, known: Iterable[str], now: float) -> RunRecord | None:
    """The run the intent says was under way and that no record covers: a crash or SIGKILL cut
    it short. Whichever flow runs next records it (a shutdown after a cut-short startup, a
    startup after a cut-short shutdown), or it would never be."""
    if previous is None or previous.run_id is None or previous.run_id in set(known):
        return None
    kind = _UNDER_WAY.get(previous.state)
    if kind is None:
        return None
    reason = "found unfinished at the next run"
    return RunRecord(previous.run_id, kind, previous.since, now, Outcome.INTERRUPTED, reason)


def record_interrupted(ctx: FlowContext, previous: Intent | None) -> None:
    """Record the run `previous` (the intent found at the start) left unfinished, if any; it
    is never counted in the budget."""
    run = interrupted_run(previous, (r.run_id for r in ctx.store.load_runs()), ctx.clock())
    if run is not None:
        ctx.store.record_run(run, keep=ctx.config.shutdown.runs_kept)


def now_rfc3339(now: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))


def report_path(state_dir: Path, kind: str) -> Path:
    """`last-startup-report.json` / `last-shutdown-report.json` under state_dir."""
    return state_dir / f"last-{kind}-report.json"


def save_report(state_dir: Path, report: FlowReport) -> None:
    """Keep the run's --json report (whoever ran it: the CLI or the daemon), with its times."""
    data = {
        **report.to_json(),
        "started_at": round(report.started_at, 3),
        "ended_at": round(report.ended_at, 3),
    }
    try:
        # kept until the disk allows when it refuses it (hecate.adapters.statedir.save)
        save_json(report_path(state_dir, report.kind), data)
    except StateError as exc:
        # The run itself is recorded; a report that cannot be kept must not undo it.
        report.message = f"{report.message}; {exc}" if report.message else str(exc)


def load_report(state_dir: Path, kind: str) -> dict[str, Any] | None:
    """The last kept report, or None (missing or unreadable: status says so, never raises)."""
    try:
        data = read_json(report_path(state_dir, kind), move=False)  # a look: nothing moved
    except (OSError, ValueError, HecateError):
        return None
    return data if isinstance(data, dict) else None


def save_progress(
    state_dir: Path,
    run_id: str,
    stage: str,
    since: float | None,
    detail: str,
    *,
    now: float | None = None,
) -> None:
    """Which stage (gate) the startup is in and since when; `since=None` keeps the time
    (`now`, the flow's wall clock, when there is none to keep)."""
    if since is None:
        wall = time.time() if now is None else now
        old = load_progress(state_dir) or {}
        since = float(old.get("since", wall)) if old.get("stage") == stage else wall
    # Informational (for `hecate status`): a write that fails never stops the startup.
    with contextlib.suppress(StateError):
        atomic_write_json(
            state_dir / PROGRESS_FILE,
            {"run_id": run_id, "stage": stage, "since": round(since, 3), "detail": detail},
        )


def load_progress(state_dir: Path, *, move: bool = True) -> dict[str, Any] | None:
    try:
        data = read_json(state_dir / PROGRESS_FILE, move=move)
    except (OSError, ValueError, HecateError):
        return None
    return data if isinstance(data, dict) else None
