"""The one runner (hecate/flows/runner.py): stages walked in the plan's order, skips recorded
with the plan's reason, cancellation between stages, the outcome, and time from the context's
clock port only (a fake monotonic clock drives every duration and wait; nothing sleeps)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hecate.adapters.statedir.store import StateStore
from hecate.config.model import HecateConfig, parse_config
from hecate.core.plans import FlowKind, FlowPlan, StageSpec, StageStatus
from hecate.core.run_history import Outcome
from hecate.errors import HecateError
from hecate.flows.context import FlowAbortedError, FlowContext, Stage, wait_until
from hecate.flows.report import FlowReport, load_report
from hecate.flows.runner import MissingStepError, StageRecorder, StepTable, run_flow, walk
from tests.fakes import FakeAnsible, FakeKube


class FakeTime:
    """Wall and monotonic clocks apart; sleeping advances both (and is counted)."""

    def __init__(self) -> None:
        self.wall = 1_700_000_000.0
        self.mono = 50.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.wall += seconds
        self.mono += seconds


def _config(tmp_path: Path) -> HecateConfig:
    return parse_config(
        {
            "state_dir": str(tmp_path / "state"),
            "nodes": {"servers": ["s1"], "agents": ["a1"]},
            "ups": {"target": "pyrphoros@localhost"},
        }
    )


def _ctx(tmp_path: Path, t: FakeTime) -> FlowContext:
    config = _config(tmp_path)
    return FlowContext(
        config,
        FakeAnsible(),
        FakeKube(),
        StateStore(config.state_dir),
        clock=lambda: t.wall,
        monotonic=lambda: t.mono,
        sleep=t.sleep,
    )


PLAN = FlowPlan(
    "shutdown",
    before=(StageSpec("intent", "i"),),
    stages=(
        StageSpec("one", "first"),
        StageSpec("two", "second", skip="nothing to do"),
        StageSpec("three", "third", ("a1",)),
    ),
    after=(StageSpec("record", "r"),),
)


def _run(
    ctx: FlowContext, t: FakeTime, steps: StepTable, run_id: str, mode: str = ""
) -> FlowReport:
    """PLAN through the one runner, as a flow of the kind its run id names."""
    kind: FlowKind = "startup" if run_id.startswith("startup") else "shutdown"
    return run_flow(
        ctx,
        lambda: (PLAN, steps),
        kind=kind,
        run_id=run_id,
        started=t.wall,
        reason="test",
        mode=mode,
    )


def test_walks_in_plan_order_with_skips_and_the_monotonic_clock(tmp_path: Path) -> None:
    t = FakeTime()
    ctx = _ctx(tmp_path, t)
    seen: list[str] = []

    def one(stage: Stage, spec: StageSpec) -> None:
        seen.append(spec.name)
        t.mono += 7.0  # the stage takes 7 s on the monotonic clock...
        t.wall -= 3600.0  # ...while the wall clock is stepped back an hour

    def three(stage: Stage, spec: StageSpec) -> None:
        seen.append(spec.name)
        stage.nodes = dict.fromkeys(spec.nodes, "ok")
        stage.status = "partial"  # a stage's code may set the plain string

    steps: StepTable = {"one": one, "three": three}  # no step for the skipped stage
    recorder = StageRecorder(ctx)
    walk(ctx, PLAN, steps, recorder)
    assert seen == ["one", "three"]
    assert [r.name for r in recorder.results] == ["one", "two", "three"]
    one_r, two_r, three_r = recorder.results
    assert one_r.duration_s == 7.0  # monotonic, not the stepped wall clock
    assert (two_r.status, two_r.detail) == (StageStatus.SKIPPED, "nothing to do")
    assert three_r.status is StageStatus.PARTIAL  # normalised to the enum
    assert three_r.to_json()["status"] == "partial" and three_r.record().outcome == "partial"


def test_a_missing_step_is_refused_before_any_stage_runs(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, FakeTime())
    ran: list[str] = []
    recorder = StageRecorder(ctx)
    with pytest.raises(MissingStepError, match="three"):
        walk(ctx, PLAN, {"one": lambda s, p: ran.append(p.name)}, recorder)
    assert ran == [] and recorder.results == []


def test_cancel_between_stages_aborts_and_records(tmp_path: Path) -> None:
    t = FakeTime()
    ctx = _ctx(tmp_path, t)
    ran: list[str] = []

    def one(stage: Stage, spec: StageSpec) -> None:
        ran.append(spec.name)
        ctx.cancel.set()  # e.g. a new outage during startup

    steps: StepTable = {"one": one, "three": lambda s, p: ran.append(p.name)}
    report = _run(ctx, t, steps, "shutdown-x", mode="cluster-only")
    assert ran == ["one"]
    assert report.outcome is Outcome.ABORTED and "before stage two" in report.message
    assert [s.name for s in report.stages] == ["one"]
    [run] = ctx.store.load_runs()
    assert run.outcome is Outcome.ABORTED and [s.name for s in run.stages] == ["one"]
    kept = load_report(ctx.config.state_dir, "shutdown")
    assert kept is not None and kept["outcome"] == "aborted"


def test_an_error_fails_the_stage_and_stops_the_run(tmp_path: Path) -> None:
    t = FakeTime()
    ctx = _ctx(tmp_path, t)

    def one(stage: Stage, spec: StageSpec) -> None:
        raise HecateError("the API did not become ready")

    report = _run(ctx, t, {"one": one, "three": one}, "startup-x")
    assert report.outcome is Outcome.FAILED
    assert [(s.name, s.status) for s in report.stages] == [("one", StageStatus.FAILED)]
    assert "did not become ready" in report.stages[0].detail


def test_partial_stage_makes_a_partial_outcome_and_skips_do_not(tmp_path: Path) -> None:
    t = FakeTime()
    ctx = _ctx(tmp_path, t)

    def warn(stage: Stage, spec: StageSpec) -> None:
        stage.status = StageStatus.WARNING

    ok = _run(ctx, t, {"one": warn, "three": warn}, "shutdown-a")
    assert ok.outcome is Outcome.SUCCESS  # warnings and skips allowed

    def partial(stage: Stage, spec: StageSpec) -> None:
        stage.status = StageStatus.PARTIAL

    report = _run(ctx, t, {"one": warn, "three": partial}, "shutdown-b")
    assert report.outcome is Outcome.PARTIAL


def test_wait_until_runs_on_the_context_clock(tmp_path: Path) -> None:
    t = FakeTime()
    ctx = _ctx(tmp_path, t)
    start = t.mono
    assert not wait_until(ctx, lambda: False, 10.0, interval_s=0.25)
    assert t.mono - start == pytest.approx(10.0)  # bounded by the fake clock, no real sleep
    assert max(t.slept) <= 0.25
    t.slept.clear()
    calls = iter([False, False, True])
    assert wait_until(ctx, lambda: next(calls), 10.0, interval_s=1.0)
    assert t.slept == [1.0, 1.0]
    ctx.cancel.set()
    with pytest.raises(FlowAbortedError):
        wait_until(ctx, lambda: True, 1.0)
