"""The one runner of both flows: it walks a plan's stages in order (hecate/core/plans.py, the
list the dry run prints), records each stage, honours cancellation between stages, and turns
what happened into the run's outcome, its record in runs.json and its kept `--json` report.

What each stage does is a step function the flow hands over by stage name; the runner never
decides which stages exist: the plan does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from hecate.adapters.ansible.protocol import PlaybookRequest
from hecate.adapters.statedir import unsaved
from hecate.config.model import HecateConfig
from hecate.core.node_account import NodeAccount, StageNodes, account_nodes, shutdown_outcome
from hecate.core.plan_runs import playbook_batches
from hecate.core.plans import FlowKind, FlowPlan, StageSpec, StageStatus
from hecate.core.run_history import Outcome, RunRecord
from hecate.errors import HecateError
from hecate.flows.context import (
    BatchEntry,
    FlowAbortedError,
    FlowContext,
    PlaybookStep,
    Stage,
    StageResult,
    apply_batch_result,
    batch_requests,
    run_playbook,
    run_playbook_batch,
)
from hecate.flows.report import FlowReport, outcome_of, save_report

log = logging.getLogger(__name__)

StepFn = Callable[[Stage, StageSpec], object]  # what a step returns is not used


@dataclass(frozen=True)
class ForeseenStep:
    """A step function whose first playbook run is known before its stage starts: `requests`
    returns the very requests it will make first, so the runner can start that run ahead."""

    run: StepFn
    requests: Callable[[StageSpec], Sequence[PlaybookRequest]]

    def __call__(self, stage: Stage, spec: StageSpec) -> object:
        return self.run(stage, spec)


# A PlaybookStep is data, not code: the runner runs it (and its PlaybookStep neighbours in one
# ansible-playbook); any other step is a function of the stage and its spec.
StepTable = Mapping[str, StepFn | PlaybookStep]
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
                current.causes,
                current.facts,
                current.node_times,
            )
            self.results.append(result)
            self.ctx.progress(name, result.status.value, result.detail)

    def check_cancel(self, name: str) -> None:
        if self.ctx.cancel.is_set():
            raise FlowAbortedError(f"stopped before stage {name}")

    def record(self, stage: Stage, duration_s: float) -> None:
        """A stage that ran inside a batch: recorded with its share of the batch's time."""
        result = StageResult(
            stage.name,
            StageStatus(stage.status),
            duration_s,
            stage.detail,
            stage.nodes,
            stage.causes,
            stage.facts,
            stage.node_times,
        )
        self.results.append(result)
        self.ctx.progress(stage.name, result.status.value, result.detail)


def _walk_batch(
    ctx: FlowContext, specs: tuple[StageSpec, ...], steps: StepTable, recorder: StageRecorder
) -> None:
    """Several PlaybookStep stages (and skipped ones between them) in one ansible-playbook;
    then each recorded in the plan's order, as if it had run alone. A cancelled stage is
    recorded failed and stops the walk there, as between stages; the ones before it stand."""
    recorder.check_cancel(specs[0].name)
    stages = [Stage(spec.name) for spec in specs]
    entries: dict[int, BatchEntry] = {}
    for stage, spec in zip(stages, specs, strict=True):
        step = steps.get(spec.name)
        if spec.skip is not None or not isinstance(step, PlaybookStep):
            stage.status, stage.detail = StageStatus.SKIPPED, spec.skip or ""
            continue
        entries[id(stage)] = BatchEntry(stage, list(spec.nodes), step)
    announced: set[str] = set()

    def announce(name: str) -> None:
        if name not in announced:
            announced.add(name)
            ctx.progress(name, "running", "")

    batch = list(entries.values())
    announce(batch[0].stage.name)
    started = ctx.monotonic()
    try:
        results = run_playbook_batch(ctx, batch, announce)
    except HecateError as exc:
        batch[0].stage.status = StageStatus.FAILED
        batch[0].stage.note(str(exc))
        recorder.record(batch[0].stage, ctx.monotonic() - started)
        raise
    # Each stage gets its own plays' span; the process start-up (before the first play) goes
    # to the first, so the stages' durations add up to the batch's time.
    wall = ctx.monotonic() - started
    result_of = {id(e.stage): r for e, r in zip(batch, results, strict=True)}
    spans = {key: (r.duration_s if r is not None else 0.0) for key, r in result_of.items()}
    spans[id(batch[0].stage)] += max(0.0, wall - sum(spans.values()))
    aborted: FlowAbortedError | None = None
    for stage in stages:
        entry = entries.get(id(stage))
        result = result_of.get(id(stage)) if entry is not None else None
        if aborted is not None and (result is None or result.canceled):
            continue  # never ran: the walk stops here, as between stages
        announce(stage.name)  # a stage with no event of its own (skipped, nothing to run)
        if entry is not None:
            try:
                apply_batch_result(ctx, entry, result)
            except FlowAbortedError as exc:
                # the first cancelled stage is failed; later stages that did finish (a host
                # run again after the others went on) are still recorded, then the walk stops
                stage.status = StageStatus.FAILED
                stage.note(str(exc))
                aborted = exc
        recorder.record(stage, spans.get(id(stage), 0.0))
    if aborted is not None:
        raise aborted


def _step_playbook(step: StepFn | PlaybookStep) -> str | None:
    return step.playbook if isinstance(step, PlaybookStep) else None


def _run_step(ctx: FlowContext, step: StepFn | PlaybookStep, stage: Stage, spec: StageSpec) -> None:
    if isinstance(step, PlaybookStep):
        run_playbook(
            ctx,
            stage,
            step.playbook,
            list(spec.nodes),
            timeout_s=step.timeout_s,
            **step.extravars,
        )
        return
    step(stage, spec)


def walk(ctx: FlowContext, plan: FlowPlan, steps: StepTable, recorder: StageRecorder) -> None:
    """Run the plan's stages in order; a stage the plan marked `skip` is recorded skipped.
    The plan's playbook batches (hecate.core.plan_runs.playbook_batches: playbook stages in
    a row) run as one ansible-playbook each; every stage is still recorded and judged on its
    own."""
    missing = [s.name for s in plan.stages if s.skip is None and s.name not in steps]
    if missing:
        raise MissingStepError(f"{plan.kind}: no step for stage(s) {', '.join(missing)}")
    # The plan says which stages are one playbook run; their steps must be exactly that.
    disagree = [
        s.name
        for s in plan.stages
        if s.name in steps and s.playbook != _step_playbook(steps[s.name])
    ]
    if disagree:
        raise MissingStepError(f"{plan.kind}: plan and steps disagree on {', '.join(disagree)}")
    batches = dict(playbook_batches(plan.stages))
    units: list[tuple[int, int]] = []  # each stage alone, or a batch of them: [start, end)
    index = 0
    while index < len(plan.stages):
        end = batches.get(index, index + 1)
        units.append((index, end))
        index = end
    held: set[int] = set()
    try:
        for number, (start, end) in enumerate(units):
            _hold_next(ctx, plan.stages, steps, units[number + 1 :], held)
            if start in batches:
                _walk_batch(ctx, plan.stages[start:end], steps, recorder)
                continue
            spec = plan.stages[start]
            with recorder.stage(spec.name) as stage:
                if spec.skip is not None:
                    stage.status, stage.detail = StageStatus.SKIPPED, spec.skip
                    continue
                _run_step(ctx, steps[spec.name], stage, spec)
    finally:
        ctx.ansible.drop_held()  # what was started ahead and not needed ends untouched


def _hold_next(
    ctx: FlowContext,
    stages: Sequence[StageSpec],
    steps: StepTable,
    later: Sequence[tuple[int, int]],
    held: set[int],
) -> None:
    """Start the next playbook run ahead (`Ansible.hold`), while this stage runs: its
    ansible-playbook starts up meanwhile and waits at its gate; the run itself still waits for
    the flow to ask for it, with the hosts Python decided then (hecate/adapters/ansible/held.py).
    The next run is that of the first later stage (or batch) whose requests are known now."""
    for start, end in later:
        requests = unit_requests(ctx.config, stages[start:end], steps)
        if not requests:
            continue
        if start not in held:
            held.add(start)
            try:
                ctx.ansible.hold(requests)
            except HecateError as exc:  # a hint: the stage then starts its own run, as before
                log.warning("could not start %s's run ahead: %s", stages[start].name, exc)
        return


def unit_requests(
    config: HecateConfig, specs: Sequence[StageSpec], steps: StepTable
) -> list[PlaybookRequest]:
    """The requests a stage, or a batch of them, will make first (none when unknown)."""
    entries = []
    for spec in specs:
        step = steps.get(spec.name)
        if spec.skip is not None or step is None:
            continue
        if isinstance(step, ForeseenStep):
            return list(step.requests(spec)) if len(specs) == 1 else []
        if isinstance(step, PlaybookStep):
            entries.append(BatchEntry(Stage(spec.name), list(spec.nodes), step))
    return batch_requests(config, entries)[1] if entries else []


def run_facts(results: list[StageResult]) -> dict[str, Any]:
    """The run's facts: each stage's own, and the nodes' finishing times of stages that
    recorded them."""
    facts: dict[str, Any] = {}
    for result in results:
        facts.update(result.facts)
        if result.node_times:
            facts.setdefault("node_times", {})[result.name] = dict(result.node_times)
    return facts


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
    nodes: Sequence[str] | None = None,
) -> FlowReport:
    """Walk the plan `prepare` returns, then record the run and keep its report. A cancelled
    run is `aborted`, one a HecateError stopped is `failed` (the stages after it never ran);
    otherwise the stages decide (outcome_of). With `nodes` (a shutdown), which of them are
    known down and which unknown is recorded too, and a run that stopped none of them failed
    (hecate.core.node_account)."""
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
    cluster: NodeAccount | None = None
    if nodes is not None:
        cluster = account_nodes(
            nodes, (StageNodes(r.name, r.nodes, r.causes) for r in recorder.results)
        )
        outcome = shutdown_outcome(outcome, cluster)
    ended = ctx.clock()
    facts = run_facts(recorder.results)
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
            nodes_down=dict(cluster.down) if cluster else {},
            nodes_unknown=dict(cluster.unknown) if cluster else {},
            facts=facts,
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
        cluster=cluster,
        facts=facts,
    )
    save_report(ctx.config.state_dir, report)
    kept = sorted(path.name for path in unsaved.pending(ctx.config.state_dir))
    if (
        kept
    ):  # every stage ran; the record follows when the disk allows (hecate.adapters.statedir.save)
        note = f"not saved yet, the state disk refused them: {', '.join(kept)}"
        report.message = f"{report.message}; {note}" if report.message else note
    return report
