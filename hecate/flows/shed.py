"""Load shedding's shell (issue 28, item 3): carry out a shed (its restore:
hecate.flows.shed_restore).

`shed` lists what the selector matches, has the core decide (hecate.core.shed_plan), records
the plan in `state_dir/shed.json` BEFORE any change (a shed that cannot record changes
nothing), then: the owning Flux objects suspended (so they do not scale the workloads back),
the workloads scaled to 0 through the scale subresource, the HPAs targeting them named, the
agents cordoned, drained by eviction (never a delete: the cluster keeps running), stopped and
powered off (the shutdown's playbooks). One object's or one node's problem never stops the
others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import cast

from hecate.adapters.kube.types import FluxKind, KubeNotFoundError, WorkloadKind
from hecate.adapters.statedir.shed_file import SHED_FILE, load_shed, save_shed
from hecate.core.shed import ShedRecord
from hecate.core.shed_plan import plan_shed
from hecate.errors import KubeError, StateError
from hecate.flows.context import FlowContext, Stage, check_cancel, run_playbook
from hecate.flows.drain import evict_drain
from hecate.flows.each_node import for_each_node
from hecate.flows.ledger import split_key

log = logging.getLogger("hecate.shed")

FLUX_KINDS: tuple[FluxKind, ...] = ("Kustomization", "HelmRelease")


@dataclass
class ShedResult:
    """The record as it stands after the call (None: everything restored) and what was seen."""

    record: ShedRecord | None
    notes: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def line(self) -> str:
        return "; ".join([*self.failed, *self.notes]) or "nothing to report"


def plan_from_cluster(ctx: FlowContext, reason: str, notes: list[str]) -> ShedRecord:
    """Read what the decision needs and decide. A listing that fails sheds nothing of it (the
    workloads, the Flux objects of that kind, the agents); it is said in `notes`."""
    shed, kube = ctx.config.power.shed, ctx.kube
    candidates, classes, hpas = [], [], []
    suspended: set[str] = set()
    unlisted: set[str] = set()
    cordoned: frozenset[str] | None = None
    not_ready: frozenset[str] = frozenset()
    try:
        if shed.label_selector:
            candidates = kube.shed_candidates(shed.label_selector)
        if candidates and shed.priority_below is not None:
            classes = kube.priority_classes()
    except KubeError as exc:
        notes.append(f"workloads not shed: {exc}")
        candidates = []
    if candidates:
        try:
            hpas = kube.autoscalers()
        except KubeError as exc:  # naming them is for the operator: never stops a shed
            notes.append(f"HorizontalPodAutoscalers not listed: {exc}")
        for kind in FLUX_KINDS:
            try:
                suspended |= {o.key for o in kube.flux_objects(kind) if o.suspended}
            except KubeError as exc:
                unlisted.add(kind)
                notes.append(f"{kind}s not listed: {exc}")
    if shed.agents:
        try:
            listed = kube.nodes()
            cordoned = frozenset(n.name for n in listed if n.unschedulable)
            ready = {n.name for n in listed if n.ready}
            not_ready = frozenset(a for a in shed.agents if a not in ready)
        except KubeError as exc:
            notes.append(f"Nodes not listed: {exc}")
    plan = plan_shed(
        shed,
        candidates,
        classes,
        hpas,
        frozenset(suspended),
        cordoned if shed.agents else frozenset(),
        now=ctx.clock(),
        reason=reason,
        unlisted_flux=frozenset(unlisted),
        not_ready=not_ready,
    )
    notes.extend(plan.notes)
    return plan.record


def shed(ctx: FlowContext, reason: str, record: ShedRecord | None = None) -> ShedResult:
    """Shed now (`record`: carry on a shed cut short, from its record). StateError, and
    nothing changed, when the record cannot be written first, or when a new shed would
    replace a record on disk (another process's shed, or one unreadable: a new plan would
    find those workloads at 0, record none of them, and never restore them)."""
    notes: list[str] = []
    if record is None:
        found = load_shed(ctx.config.state_dir, move=False)  # StateError: unknown, refused
        if found is not None:
            raise StateError(
                f"{ctx.config.state_dir / SHED_FILE} holds a shed already: restore it first"
            )
        record = plan_from_cluster(ctx, reason, notes)
    save_shed(ctx.config.state_dir, record)  # before any change: a crash leaves a record
    result = ShedResult(record, notes)
    for hpa in record.autoscalers:  # at 0 an HPA does not scale its target; told, not touched
        log.info("shed: HorizontalPodAutoscaler %s keeps its target at 0 while shed", hpa)
    kube = ctx.kube

    def suspend(key: str) -> None:
        kind, namespace, name = split_key(key)
        kube.set_suspend(cast(FluxKind, kind), namespace, name, True)

    each(record.flux_suspended, suspend, "suspend", result)
    check_cancel(ctx)

    def scale_down(label: str) -> None:
        kind, namespace, name = label.split("/", 2)
        try:
            kube.scale(cast(WorkloadKind, kind), namespace, name, 0)
        except KubeNotFoundError:
            result.notes.append(f"{label}: deleted meanwhile")

    each([w.label for w in record.workloads], scale_down, "scale to 0", result)
    if record.agents:
        check_cancel(ctx)
        record = replace(record, agents=tuple(_shed_agents(ctx, record, result)))
    result.record = record.done()
    save_shed(ctx.config.state_dir, result.record)
    log.info("shed (%s): %s", reason, summary(result.record))
    return result


def _shed_agents(ctx: FlowContext, record: ShedRecord, result: ShedResult) -> list[str]:
    """Cordoned (those Hecate cordons), drained by eviction only (hecate.flows.drain.
    evict_drain: PodDisruptionBudgets and grace periods honoured, bounded by
    shutdown.drain_timeout_seconds; never a delete, never grace 0: the cluster keeps running,
    nothing is urgent), then k3s-agent stopped and powered off: the shutdown's playbooks. An
    agent whose pods would not all leave stays on and cordoned (its cordon is lifted by the
    restore): powering it off would kill them without their grace. Returns the agents taken
    down (those not stopped or powered off are named in `result.failed` and kept, the restore
    brings them back); one node's failure never stops the others."""
    agents = list(record.agents)
    each(record.cordoned, lambda n: ctx.kube.set_unschedulable(n, True), "cordon", result)
    stage = Stage("shed_agents")
    bound = ctx.config.shutdown.drain_timeout_seconds
    drained = evict_drain(ctx, stage, agents, bound)
    for node in (n for n in agents if n not in drained):
        why = stage.causes.get(node) or stage.detail or "drain failed"
        result.failed.append(f"agent {node}: left on and cordoned, not drained: {why}")
    check_cancel(ctx)
    if not drained:
        return []
    stage = Stage("shed_agents")
    down = ctx.config.shutdown
    run_playbook(
        ctx,
        stage,
        "stop_agents",
        drained,
        timeout_s=down.stop_timeout_seconds + 60,
        k3s_service_timeout_s=int(down.stop_timeout_seconds),
        k3s_service_use_killall=down.use_killall,
    )
    run_playbook(
        ctx,
        stage,
        "poweroff",
        drained,
        timeout_s=down.poweroff_timeout_seconds,
        node_power_mode=down.poweroff_method,
    )
    bad = {n: s for n, s in stage.nodes.items() if s not in ("ok", "changed")}
    result.failed.extend(f"agent {n}: {s}" for n, s in sorted(bad.items()))
    if stage.detail:
        result.notes.append(stage.detail)
    return drained


def each(
    keys: Sequence[str], action: Callable[[str], None], what: str, result: ShedResult
) -> list[str]:
    """`action(key)` for every key at once; the keys whose call failed (said in `result`)."""
    errors = for_each_node(list(keys), action)
    failed = [k for k, e in errors.items() if e is not None]
    result.failed.extend(f"{what} {k}: {errors[k]}" for k in failed)
    return failed


def summary(record: ShedRecord) -> str:
    parts = [f"{len(record.workloads)} workload(s) at 0"]
    if record.flux_suspended:
        parts.append(f"Flux suspended: {', '.join(record.flux_suspended)}")
    if record.autoscalers:
        parts.append(f"HPAs named: {', '.join(record.autoscalers)}")
    if record.agents:
        parts.append(f"agents off: {', '.join(record.agents)}")
    return "; ".join(parts)
