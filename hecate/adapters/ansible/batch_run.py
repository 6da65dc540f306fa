"""Running a batch: several stages as the plays of one ``ansible-playbook`` (the port's
``run_batch``), one result per stage.

The port only runs and judges: the combined playbook and inventory, and each stage's share of
the events, come from hecate/adapters/ansible/batch.py; when to stop a run (a stage over its own
bound) and what runs again after it come from the pure planner, hecate/core/batch_planner.py.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from hecate.adapters.ansible.assets import (
    BATCHABLE_FILES,
    PlaybookError,
    batch_group,
    resolve_playbook,
)
from hecate.adapters.ansible.batch import (
    RC_FAILED_HOSTS,
    BatchCollector,
    BatchStage,
    StageOutcome,
    batch_inventory,
    batch_limit,
    batch_playbook_text,
    clear_play_stage,
    merge_outcomes,
    not_reached,
    play_start_stage,
    stage_outcomes,
)
from hecate.adapters.ansible.events import EventCallback, TaskEvent, TaskTiming
from hecate.adapters.ansible.held import ClaimTarget, HeldRun
from hecate.adapters.ansible.inventory import group_hosts
from hecate.adapters.ansible.protocol import PlaybookRequest, PlaybookResult, RunnerDone
from hecate.adapters.ansible.rundir import stdout_tail
from hecate.core.batch_planner import (
    BatchStep,
    RunClock,
    max_attempts,
    next_attempt,
    run_bound_s,
    stage_over_bound,
)
from hecate.errors import AnsibleRunError

log = logging.getLogger("hecate.adapters.ansible.port")  # one logger for the port's runs

Collect = Callable[[dict[str, Any], TaskEvent, TaskTiming | None], None]


class BatchPort(Protocol):
    """What a batch needs from the port (hecate/adapters/ansible/port.py)."""

    inventory: dict[str, Any]
    default_timeout_s: float

    def run(
        self,
        request: PlaybookRequest,
        *,
        on_event: EventCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> PlaybookResult: ...

    def playbook_path(self, name: str) -> Path: ...

    def claim_held(self, stages: Sequence[BatchStage], requests: int) -> HeldRun | None: ...

    def extravars(self, request: PlaybookRequest) -> dict[str, Any]: ...

    def checked_limit(self, name: str, request: PlaybookRequest) -> tuple[str, ...] | None: ...

    def run_runner(
        self,
        name: str,
        path: Path | None,
        *,
        inventory: Mapping[str, Any],
        extravars: Mapping[str, Any],
        limit: tuple[str, ...] | None,
        timeout_s: float,
        request: PlaybookRequest | None,
        collect: Collect,
        on_event: EventCallback | None,
        stop: Callable[[], bool] | None,
        batch: str | None = None,
        on_play: Callable[[dict[str, Any]], None] | None = None,
    ) -> RunnerDone: ...


def run_batch(
    port: BatchPort,
    requests: Sequence[PlaybookRequest],
    *,
    on_event: EventCallback | None = None,
    cancel: threading.Event | None = None,
    held: HeldRun | None = None,
) -> list[PlaybookResult]:
    """One result per request, as ``port.run`` would return it. A run the port started ahead
    for exactly these stages (`held`, or one ``claim_held`` finds) is released for them instead
    of starting a new one (hecate/adapters/ansible/held.py). Hosts that ansible dropped after
    a failure in an earlier play get the later stages in one more run, so a node's failure never
    keeps it (or the others) from a later stage. Every request is checked before anything runs;
    ``check``, ``tags`` and ``skip_tags`` are not batched (those requests are refused: run them
    alone)."""
    stages, results = batch_stages(port, requests)
    if cancel is not None and cancel.is_set():
        stages, canceled = [], stages
        for stage in canceled:
            results[stage.index] = PlaybookResult(
                stage.playbook, "canceled", 254, {}, 0.0, [], None, stage.hosts, "canceled"
            )
    if held is not None and not stages:
        held.drop()  # cancelled before it ran: it ends without touching a node
        held = None
    if held is None and stages:
        held = port.claim_held(stages, len(requests))
    if held is None and len(stages) == 1:  # nothing to share: the plain run, events tagged
        only = stages[0]

        def tagged(event: TaskEvent) -> None:
            if on_event is not None:
                on_event(dataclasses.replace(event, stage=only.index))

        results[only.index] = port.run(requests[only.index], on_event=tagged, cancel=cancel)
        stages = []
    outcomes, artifacts = _run_stages(port, stages, on_event=on_event, cancel=cancel, held=held)
    for stage in stages:
        outcome = outcomes[stage.index]
        results[stage.index] = PlaybookResult(
            playbook=stage.playbook,
            status=outcome.status,
            rc=outcome.rc,
            hosts=outcome.hosts,
            duration_s=outcome.duration_s,
            tasks=outcome.tasks,
            artifacts_dir=artifacts,
            limit=stage.hosts,
            detail=outcome.detail,
        )
        log.info("ansible: %s", results[stage.index].summary())
    return [results[index] for index in range(len(requests))]


def batch_stages(
    port: BatchPort, requests: Sequence[PlaybookRequest]
) -> tuple[list[BatchStage], dict[int, PlaybookResult]]:
    """The requests as batch stages (checked), and the results of those with an empty limit
    (skipped: nothing to run)."""
    names = [Path(r.playbook).stem for r in requests]
    stages: list[BatchStage] = []
    results: dict[int, PlaybookResult] = {}
    for index, (name, request) in enumerate(zip(names, requests, strict=True)):
        if request.check or request.tags or request.skip_tags:
            raise PlaybookError(f"{name}: check mode and tags are not batched; run it alone")
        # Only the shipped playbooks that intersect their hosts with their stage's group: a
        # playbook by path could run its plays on the other stages' hosts.
        file = resolve_playbook(request.playbook).file
        if Path(request.playbook).is_absolute() or file not in BATCHABLE_FILES:
            raise PlaybookError(f"{name}: its playbook does not take a stage group")
        path = port.playbook_path(request.playbook)
        extravars = port.extravars(request)
        limit = port.checked_limit(name, request)
        if limit is None:
            raise PlaybookError(f"{name}: a batched stage needs its hosts (a limit)")
        if not limit:
            results[index] = PlaybookResult(
                name, "skipped", 0, {}, 0.0, [], None, limit, "empty limit"
            )
            continue
        timeout_s = request.timeout_s or port.default_timeout_s
        # the hosts its plays run on: the limit within its playbook's group (Python's lists)
        group = group_hosts(port.inventory, batch_group(file, extravars))
        targets = tuple(host for host in limit if host in group)
        stages.append(BatchStage(index, name, path, extravars, limit, timeout_s, targets))
    return stages, results


def held_stages(port: BatchPort, requests: Sequence[PlaybookRequest]) -> list[BatchStage]:
    """:func:`batch_stages`, or none when the requests cannot be one batch (nothing to hold)."""
    try:
        return batch_stages(port, requests)[0]
    except PlaybookError:
        return []


def _run_stages(
    port: BatchPort,
    stages: Sequence[BatchStage],
    *,
    on_event: EventCallback | None,
    cancel: threading.Event | None,
    held: HeldRun | None = None,
) -> tuple[dict[int, StageOutcome], Path | None]:
    """Run the batch, then again as the planner says (each attempt retires its first stage); a
    later attempt that cannot run fails what it would have run, and keeps what ran."""
    by_index = {stage.index: stage for stage in stages}
    outcomes: dict[int, StageOutcome] = {}
    unreached: dict[int, tuple[tuple[str, ...], str]] = {}
    artifacts: Path | None = None
    todo = [stage.step for stage in stages]
    for attempt in range(max_attempts(todo)):
        if not todo:
            break
        running = [dataclasses.replace(by_index[s.index], targets=s.hosts) for s in todo]
        if attempt:  # a run again: only the hosts left, in its limit and its group
            running = [dataclasses.replace(s, hosts=s.targets or s.hosts) for s in running]
        collected = BatchCollector()
        try:
            first = held if attempt == 0 else None
            done, over_bound, run_end = _run_once(
                port, running, collected, on_event, cancel, held=first
            )
        except AnsibleRunError as exc:
            if attempt == 0:
                raise
            for step in todo:
                unreached[step.index] = (step.hosts, str(exc))
            todo = []
            break
        artifacts = done.artifacts
        ran = stage_outcomes(
            running,
            collected,
            done.status,
            done.rc,
            timeout_s=sum(step.timeout_s for step in todo),
            budget_hit=over_bound,
            run_end=run_end,
        )
        for outcome in ran:
            earlier = outcomes.get(outcome.index)
            outcomes[outcome.index] = (
                outcome if earlier is None else merge_outcomes(earlier, outcome)
            )
        reached = {index: set(hosts) for index, hosts in collected.counts.items()}
        ended = done.status in ("timeout", "canceled") and over_bound is None
        nxt = next_attempt(todo, reached, over_bound=over_bound, ended=ended)
        if nxt.unreached:
            why = stdout_tail(done.artifacts / "stdout") if done.status == "failed" else ""
            unreached[todo[0].index] = (nxt.unreached, why)
        todo = list(nxt.again)
        if todo:
            log.info(
                "ansible: batch again for hosts the run left out: %s",
                "; ".join(f"{by_index[s.index].playbook} {','.join(s.hosts)}" for s in todo),
            )
    for step in todo:  # only if the bound was reached
        unreached[step.index] = (step.hosts, "too many attempts")
    final: dict[int, StageOutcome] = {}
    for stage in stages:
        outcome = outcomes.get(stage.index) or StageOutcome(
            stage.index, "failed", RC_FAILED_HOSTS, {}, [], 0.0
        )
        hosts, why = unreached.get(stage.index, ((), ""))
        final[stage.index] = not_reached(outcome, hosts, why)
    return final, artifacts


class BatchWatch:
    """One batch run as the port's clock sees it: fed the run's play starts, asked by the
    runner whether to stop (the user cancelled, or the planner says the current stage is over
    its own bound: :func:`~hecate.core.batch_planner.stage_over_bound`)."""

    def __init__(
        self,
        steps: Sequence[BatchStep],
        collected: BatchCollector,
        cancel: threading.Event | None,
        label: str,
    ) -> None:
        self.steps = list(steps)
        self.collected = collected
        self.cancel = cancel
        self.label = label
        self.launched = time.monotonic()
        self.over_bound: int | None = None  # the first stage found over its bound

    def on_play(self, event: dict[str, Any]) -> None:
        # A stage not given to this watch is not this run's: a held run's stage left out of
        # its claim still starts its plays, with no hosts (its bound is unknown here).
        mine = {step.index for step in self.steps}
        started = play_start_stage(event)
        if started is not None:
            if started[0] in mine:
                self.collected.play_started(started[0], time.monotonic())
            return
        ended = clear_play_stage(event)
        if ended is not None and ended in mine:
            self.collected.stage_ended(ended, time.monotonic())

    def should_stop(self) -> bool:
        if self.cancel is not None and self.cancel.is_set():
            return True
        got = self.collected
        clock = RunClock(self.launched, got.current, got.started_at, got.ended_at)
        over = stage_over_bound(self.steps, clock, time.monotonic())
        if over is not None and self.over_bound is None:
            self.over_bound = over
            bound = next(step.timeout_s for step in self.steps if step.index == over)
            log.warning(
                "ansible: stage %d of batch %s over its %gs bound: stopped", over, self.label, bound
            )
        return over is not None

    @property
    def user_canceled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()


def _run_once(
    port: BatchPort,
    stages: Sequence[BatchStage],
    collected: BatchCollector,
    on_event: EventCallback | None,
    cancel: threading.Event | None,
    *,
    held: HeldRun | None = None,
) -> tuple[RunnerDone, int | None, float]:
    """One ansible-playbook for `stages` (the one `held` ahead, when it can still be used).
    Returns how it ended; when the port stopped it
    because its current stage was over that stage's own bound, which stage that was; and
    when it ended (monotonic)."""
    label = "+".join(stage.playbook for stage in stages)
    steps = [BatchStep(s.index, s.hosts, s.timeout_s) for s in stages]
    watch = BatchWatch(steps, collected, cancel, label)

    def collect(event: dict[str, Any], mapped: TaskEvent, timing: TaskTiming | None) -> None:
        if mapped.stage is not None:
            collected.add(mapped.stage, mapped, timing)

    if held is not None:
        target = ClaimTarget(collected, on_event, watch.on_play, watch.should_stop)
        wait_s = run_bound_s(steps) + held.hold_s + 60.0
        done_held = held.go(stages, target, wait_s=wait_s)
        if done_held is not None:
            over = watch.over_bound if not watch.user_canceled else None
            return done_held, over, time.monotonic()
        log.info("ansible: the run held for %s could not be used: a new run", label)
        watch = BatchWatch(steps, collected, cancel, label)
    inventory = batch_inventory(port.inventory, stages)
    limit = batch_limit(stages)
    timeout_s = run_bound_s(steps)  # never before the stages' own bounds (they add up to it)
    log.info("ansible: batch %s limit=%s timeout=%ss", label, ",".join(limit), timeout_s)
    done = port.run_runner(
        "batch",
        None,
        inventory=inventory,
        extravars={},
        limit=limit,
        timeout_s=timeout_s,
        request=None,
        collect=collect,
        on_event=on_event,
        stop=watch.should_stop,
        batch=batch_playbook_text(stages),
        on_play=watch.on_play,
    )
    over = watch.over_bound if not watch.user_canceled else None
    return done, over, time.monotonic()
