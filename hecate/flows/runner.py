"""The one runner of both flows: it walks a plan's stages in order (hecate/flow_plans.py, the
list the dry run prints), records each stage, honours cancellation between stages, and turns
what happened into the run's outcome, its record in runs.json and its kept `--json` report.

What each stage does is a step function the flow hands over by stage name; the runner never
decides which stages exist: the plan does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from hecate.errors import HecateError
from hecate.flow_plans import FlowKind, FlowPlan, StageSpec, StageStatus
from hecate.flows.context import FlowAbortedError, FlowContext, Stage, StageResult
from hecate.flows.report import FlowReport, outcome_of, save_report
from hecate.runs import Outcome, RunRecord

StepFn = Callable[[Stage, StageSpec], object]  # what a step returns is not used
StepTable = Mapping[str, StepFn]
# Called inside the run's error handling: what the flow reads before its first stage (the
# ledger, whether the API answers), returning the plan to walk and the steps for its stages.
Prepare = Callable[[], tuple[FlowPlan, StepTable]]


class MissingStepError(HecateError):
    """A plan names a stage its flow has no step for (a programming error: caught by the
    plan = run test, and refused before any stage runs)."""


class StageRecorder:
    """Times and records stages on the context's monotonic clock; reports progress."""

    def __init__(self, ctx: FlowContext) -> None:
        self.ctx = ctx
        self.results: list[StageResult] = []
        self.fallbacks: list[str] = []

    @contextmanager
    def stage(self, name: str) -> Iterator[Stage]:
        if self.ctx.cancel.is_set():
            raise FlowAbortedError(f"stopped before stage {name}")
        current = Stage(name)
        self.ctx.progress(name, "running", "")
        started = self.ctx.monotonic()
        try:
            yield current
        except HecateError as exc:
            current.status = StageStatus.FAILED
            current.note(str(exc))
            raise
        finally:
            result = StageResult(
                name,
                StageStatus(current.status),
                self.ctx.monotonic() - started,
                current.detail,
                current.nodes,
            )
            self.results.append(result)
            self.ctx.progress(name, result.status.value, result.detail)


def walk(ctx: FlowContext, plan: FlowPlan, steps: StepTable, recorder: StageRecorder) -> None:
    """Run the plan's stages in order; a stage the plan marked `skip` is recorded skipped."""
    missing = [s.name for s in plan.stages if s.skip is None and s.name not in steps]
    if missing:
        raise MissingStepError(f"{plan.kind}: no step for stage(s) {', '.join(missing)}")
    for spec in plan.stages:
        with recorder.stage(spec.name) as stage:
            if spec.skip is not None:
                stage.status, stage.detail = StageStatus.SKIPPED, spec.skip
                continue
            steps[spec.name](stage, spec)


def run_flow(
    ctx: FlowContext,
    prepare: Prepare,
    *,
    kind: FlowKind,
    run_id: str,
    started: float,
    reason: str,
    mode: str,
    recorder: StageRecorder | None = None,
) -> FlowReport:
    """Walk the plan `prepare` returns, then record the run and keep its report. A cancelled
    run is `aborted`, one a HecateError stopped is `failed` (the stages after it never ran);
    otherwise the stages decide (outcome_of)."""
    recorder = recorder or StageRecorder(ctx)
    message = ""
    try:
        plan, steps = prepare()
        walk(ctx, plan, steps, recorder)
        outcome = outcome_of(recorder.results)
    except FlowAbortedError as exc:
        outcome, message = Outcome.ABORTED, str(exc)
    except HecateError as exc:
        outcome, message = Outcome.FAILED, str(exc)
    ended = ctx.clock()
    ctx.store.record_run(
        RunRecord(
            run_id,
            kind,
            started,
            ended,
            outcome,
            reason,
            mode,
            tuple(s.record() for s in recorder.results),
        ),
        keep=ctx.config.shutdown.runs_kept,
    )
    report = FlowReport(
        kind,
        run_id,
        outcome,
        started,
        ended,
        recorder.results,
        fallbacks=recorder.fallbacks,
        message=message,
    )
    save_report(ctx.config.state_dir, report)
    return report
