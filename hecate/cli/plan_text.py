"""The dry run: the plan a run will walk (hecate/core/plans.py builds it, for the dry run and
the run alike), as text lines and as JSON. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hecate.config.model import HecateConfig
from hecate.core import plans
from hecate.core.plan_marks import StageMark
from hecate.core.plan_runs import playbook_batches, reads_ahead
from hecate.core.plans import FlowPlan, ShutdownMode, ShutdownOptions, StageSpec, StartupOptions

__all__ = [
    "PLAN_ONLY_STEPS",
    "PlannedStage",
    "plan_json",
    "plan_lines",
    "shutdown_plan",
    "startup_plan",
]

PlannedStage = StageSpec

# Steps of the plan that are not stages of the run's report (done around the stages).
PLAN_ONLY_STEPS = frozenset({"guards", "intent", "record"})


def _batch_of_step(plan: FlowPlan) -> dict[int, int]:
    """Step index (in plan.steps) -> the number of the ansible-playbook batch it belongs to."""
    offset = len(plan.before)
    return {
        offset + index: number
        for number, (start, end) in enumerate(playbook_batches(plan.stages))
        for index in range(start, end)
    }


def plan_lines(
    title: str, plan: FlowPlan, marks: Mapping[str, StageMark] | None = None
) -> list[str]:
    """The numbered steps, each with its nodes, and why a stage will be skipped; after each
    run of stages that share one ansible-playbook, a line saying so (a host that a failure
    kept out of a later stage gets it in one more run); under a step whose ansible-playbook
    also takes the next stage's first read, a line saying so. `marks` (the dry run's probes,
    hecate/core/plan_marks.py): a line under a step that would be skipped, warn or fail, and why."""
    lines = [title]
    marks = marks or {}
    batch_of = _batch_of_step(plan)
    carried = reads_ahead(plan.stages)
    for number, stage in enumerate(plan.steps, start=1):
        nodes = f"  [{', '.join(stage.nodes)}]" if stage.nodes else ""
        skip = f"  (skipped: {stage.skip})" if stage.skip is not None else ""
        lines.append(f"  {number:>2}. {stage.name:<16} {stage.description}{nodes}{skip}")
        if stage.name in marks:
            lines.append(f"      ! {marks[stage.name].text}")
        if stage.name in carried:
            lines.append(
                f"      (its ansible-playbook also takes step {number + 1}'s first read: "
                f"{carried[stage.name]} judges it)"
            )
        batch = batch_of.get(number - 1)
        if batch is not None and batch_of.get(number) != batch:
            first = min(i for i, b in batch_of.items() if b == batch) + 1
            lines.append(f"      (steps {first}-{number} share one ansible-playbook)")
    return lines


def plan_json(plan: FlowPlan, marks: Mapping[str, StageMark] | None = None) -> list[dict[str, Any]]:
    """One entry per step; `stage`: it is a stage of the run's report (in the same order);
    `batch`: the steps with the same number run as one ansible-playbook (null: alone);
    `reads_ahead`: the next stage whose first read this step's ansible-playbook takes (null:
    none); `mark`: what the dry run's probes say of it, {kind, reason} (null: nothing, or no
    probes)."""
    reported = set(plan.stage_names)
    batch_of = _batch_of_step(plan)
    carried = reads_ahead(plan.stages)
    marks = marks or {}
    return [
        {
            "name": s.name,
            "description": s.description,
            "nodes": list(s.nodes),
            "stage": s.name in reported,
            "skip": s.skip,
            "batch": batch_of.get(index),
            "reads_ahead": carried.get(s.name),
            "mark": (
                {"kind": marks[s.name].kind.value, "reason": marks[s.name].reason}
                if s.name in marks
                else None
            ),
        }
        for index, s in enumerate(plan.steps)
    ]


def shutdown_plan(
    config: HecateConfig, *, mode: ShutdownMode, skip_drain: bool, skip_etcd_snapshot: bool
) -> list[PlannedStage]:
    """Every step of the shutdown's plan, in order (the stages and the steps around them)."""
    options = ShutdownOptions(
        mode=mode, skip_drain=skip_drain, skip_etcd_snapshot=skip_etcd_snapshot
    )
    return list(plans.shutdown_plan(config, options).steps)


def startup_plan(config: HecateConfig, *, force_flux_branch: str | None) -> list[PlannedStage]:
    """Every step of the startup's plan, in order (the gates only when configured)."""
    options = StartupOptions(force_flux_branch=force_flux_branch)
    return list(plans.startup_plan(config, options).steps)
