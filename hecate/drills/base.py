"""Drills: break the cluster on purpose, recover with Hecate's own flows, verify, score.

A drill is four steps: preconditions (read-only), the break, the recovery, the verification.
Every run is scored (pass/fail, time to recover, manual steps needed) and kept in the drill
history, `state_dir/drills.json`, which the daemon's metrics expose.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from hecate.adapters.statedir.drill_history import DRILLS_FILE, load_history
from hecate.adapters.statedir.files import atomic_write_json, write_lock
from hecate.config.model import HecateConfig
from hecate.core.readings import Poll
from hecate.errors import HecateError, KubeError, StateCorruptError, StateError
from hecate.flows.context import FlowContext, KubeApi
from hecate.flows.report import FlowReport

HISTORY_KEPT = 200


class DrillFailedError(StateError):
    """A drill's break or recovery could not be carried out."""


@dataclass
class DrillEnv:
    """What a drill works with: the config, the API, and a way to open flow contexts."""

    config: HecateConfig
    kube: KubeApi
    context_factory: Callable[[], AbstractContextManager[FlowContext]]
    read_ups: Callable[[], Poll] | None = None
    log: Callable[[str], None] = print
    sleep: Callable[[float], None] = time.sleep
    # the clock port's monotonic side: every drill wait is bounded on it
    monotonic: Callable[[], float] = time.monotonic


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class DrillReport:
    drill: str
    executed: bool
    passed: bool
    started_at: float
    time_to_recover_s: float | None
    manual_steps: int
    checks: list[Check] = field(default_factory=list)
    fallbacks: list[str] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["checks"] = [asdict(c) for c in self.checks]
        return data


class Drill(Protocol):
    name: str
    summary: str

    def preconditions(self, env: DrillEnv) -> list[str]:
        """Problems that stop the drill from running (empty: ready)."""
        ...

    def plan(self, env: DrillEnv) -> list[str]: ...

    def apply_break(self, env: DrillEnv) -> None: ...

    def recover(self, env: DrillEnv) -> list[FlowReport]: ...

    def verify(self, env: DrillEnv, reports: list[FlowReport]) -> list[Check]: ...


def run_drill(
    drill: Drill, env: DrillEnv, *, execute: bool, clock: Callable[[], float] = time.time
) -> DrillReport:
    """Dry run (preconditions and plan) unless `execute`; then break, recover, verify, score."""
    started = clock()
    problems = drill.preconditions(env)
    checks = [Check(f"precondition: {p}", False) for p in problems]
    if problems or not execute:
        for step in drill.plan(env):
            env.log(f"plan: {step}")
        return DrillReport(
            drill.name,
            False,
            False,
            started,
            None,
            0,
            checks,
            message="preconditions not met" if problems else "dry run: add --execute",
        )
    env.log(f"break: {drill.summary}")
    broken_at = clock()
    try:
        drill.apply_break(env)
        env.log("recover: running Hecate's flows")
        reports = drill.recover(env)
        recovered_at = clock()
        env.log("verify")
        checks = drill.verify(env, reports)
    except HecateError as exc:
        # The cluster may be left broken: the report must say so, and that a person is needed.
        return DrillReport(
            drill.name,
            True,
            False,
            started,
            None,
            1,
            [Check("drill ran to the end", False, str(exc))],
            message=f"drill stopped: {exc}; check the cluster by hand",
        )
    passed = all(c.ok for c in checks)
    return DrillReport(
        drill=drill.name,
        executed=True,
        passed=passed,
        started_at=started,
        time_to_recover_s=round(recovered_at - broken_at, 3),
        # Hecate recovered on its own when every check passed; otherwise a person must step in.
        manual_steps=0 if passed else sum(1 for c in checks if not c.ok),
        checks=checks,
        fallbacks=[f for r in reports for f in r.fallbacks],
        runs=[
            {"kind": r.kind, "outcome": r.outcome.value, "duration_s": round(r.duration_s, 3)}
            for r in reports
        ],
    )


def record(state_dir: Path, report: DrillReport) -> None:
    """Append a drill report; a corrupt history is set aside and a new one started."""
    with write_lock(state_dir):
        try:
            previous = load_history(state_dir)
        except StateCorruptError:
            previous = []
        history = [*previous, report.to_json()][-HISTORY_KEPT:]
        atomic_write_json(state_dir / DRILLS_FILE, {"version": 1, "drills": history})


def wait_for(
    check: Callable[[], bool],
    timeout_s: float,
    what: str,
    sleep: Callable[[float], None] = time.sleep,
    interval_s: float = 0.5,
    *,
    monotonic: Callable[[], float] = time.monotonic,
) -> None:
    deadline = monotonic() + timeout_s
    while not check():
        if monotonic() > deadline:
            raise DrillFailedError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        sleep(interval_s)


def cluster_checks(env: DrillEnv) -> list[Check]:
    """The API answers and every configured node is Ready."""
    try:
        nodes = env.kube.nodes()
    except KubeError as exc:
        return [Check("API answers", False, str(exc))]
    wanted = set(env.config.nodes.all)
    ready = {n.name for n in nodes if n.ready}
    return [
        Check("API answers", env.kube.readyz()),
        Check("every node Ready", wanted <= ready, f"not Ready: {sorted(wanted - ready)}"),
    ]
