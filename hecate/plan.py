"""The dry run: the plan a run will walk (hecate/flow_plans.py builds it, for the dry run and
the run alike), as text lines and as JSON. Pure."""

from __future__ import annotations

from typing import Any

from hecate import flow_plans as plans
from hecate.config import HecateConfig
from hecate.flow_plans import FlowPlan, ShutdownMode, ShutdownOptions, StageSpec, StartupOptions

__all__ = [
    "PLAN_ONLY_STEPS",
    "PlannedStage",
    "ShutdownMode",
    "plan_json",
    "plan_lines",
    "shutdown_plan",
    "startup_plan",
]

PlannedStage = StageSpec

# Steps of the plan that are not stages of the run's report (done around the stages).
PLAN_ONLY_STEPS = frozenset({"guards", "intent", "record"})


def plan_lines(title: str, plan: FlowPlan) -> list[str]:
    """The numbered steps, each with its nodes, and why a stage will be skipped."""
    lines = [title]
    for number, stage in enumerate(plan.steps, start=1):
        nodes = f"  [{', '.join(stage.nodes)}]" if stage.nodes else ""
        skip = f"  (skipped: {stage.skip})" if stage.skip is not None else ""
        lines.append(f"  {number:>2}. {stage.name:<16} {stage.description}{nodes}{skip}")
    return lines


def plan_json(plan: FlowPlan) -> list[dict[str, Any]]:
    """One entry per step; `stage`: it is a stage of the run's report (in the same order)."""
    reported = set(plan.stage_names)
    return [
        {
            "name": s.name,
            "description": s.description,
            "nodes": list(s.nodes),
            "stage": s.name in reported,
            "skip": s.skip,
        }
        for s in plan.steps
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
