"""Load shedding's shell (issue 28, item 3): carry out a shed, restore it.

`shed` lists what the selector matches, has the core decide (hecate.core.shed_plan), records
the plan in `state_dir/shed.json` BEFORE any change (a shed that cannot record changes
nothing), then: the owning Flux objects suspended (so they do not scale the workloads back),
the workloads scaled to 0 through the scale subresource, the HPAs targeting them named, the
agents cordoned, drained, stopped and powered off (the shutdown's own drain and playbooks).
`restore` undoes exactly what the record names: agents powered on (the startup's power_on),
started, Ready and uncordoned; workloads still at 0 scaled back to their recorded replicas;
Flux resumed where Hecate suspended it. What fails stays recorded and is tried again.
One object's or one node's problem never stops the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import cast

from hecate.adapters.kube.types import FluxKind, KubeNotFoundError, WorkloadKind
from hecate.adapters.statedir.shed_file import SHED_FILE, clear_shed, load_shed, save_shed
from hecate.core.plans import StageSpec, StageStatus
from hecate.core.shed import ShedBlocked, ShedRecord
from hecate.core.shed_plan import plan_restore, plan_shed
from hecate.errors import KubeError, StateError
from hecate.flows.context import FlowContext, Stage, check_cancel, run_playbook, wait_until
from hecate.flows.drain import drain
from hecate.flows.each_node import for_each_node
from hecate.flows.ledger import split_key
from hecate.flows.power_on import power_on_stage

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

    _each(record.flux_suspended, suspend, "suspend", result)
    check_cancel(ctx)

    def scale_down(label: str) -> None:
        kind, namespace, name = label.split("/", 2)
        try:
            kube.scale(cast(WorkloadKind, kind), namespace, name, 0)
        except KubeNotFoundError:
            result.notes.append(f"{label}: deleted meanwhile")

    _each([w.label for w in record.workloads], scale_down, "scale to 0", result)
    if record.agents:
        check_cancel(ctx)
        _shed_agents(ctx, record, result)
    result.record = record.done()
    save_shed(ctx.config.state_dir, result.record)
    log.info("shed (%s): %s", reason, summary(result.record))
    return result


def _shed_agents(ctx: FlowContext, record: ShedRecord, result: ShedResult) -> None:
    """Cordoned (those Hecate cordons), drained, k3s-agent stopped, powered off: the shutdown's
    own steps, one node's failure never stopping the others."""
    agents = list(record.agents)
    _each(record.cordoned, lambda n: ctx.kube.set_unschedulable(n, True), "cordon", result)
    stage = Stage("shed_agents")
    try:
        drain(ctx, stage, agents)
    except KubeError as exc:
        stage.note(f"drain: {exc}")
    check_cancel(ctx)
    down = ctx.config.shutdown
    run_playbook(
        ctx,
        stage,
        "stop_agents",
        agents,
        timeout_s=down.stop_timeout_seconds + 60,
        k3s_service_timeout_s=int(down.stop_timeout_seconds),
        k3s_service_use_killall=down.use_killall,
    )
    run_playbook(
        ctx,
        stage,
        "poweroff",
        agents,
        timeout_s=down.poweroff_timeout_seconds,
        node_power_mode=down.poweroff_method,
    )
    bad = {n: s for n, s in stage.nodes.items() if s not in ("ok", "changed")}
    result.failed.extend(f"agent {n}: {s}" for n, s in sorted(bad.items()))
    if stage.detail:
        result.notes.append(stage.detail)


def restore(ctx: FlowContext, record: ShedRecord) -> ShedResult:
    """Undo what `record` names; the record is rewritten with what is left (removed when
    nothing is). StateError when the disk refuses either."""
    kube = ctx.kube
    current: dict[str, int | None] = {}
    for w in record.workloads:
        try:
            live = kube.workload(cast(WorkloadKind, w.kind), w.namespace, w.name)
            current[w.label] = live.replicas
        except KubeNotFoundError:
            current[w.label] = None
        except KubeError as exc:  # unknown: tried anyway (a failed scale keeps it recorded)
            log.warning("restore: cannot read %s: %s", w.label, exc)
    plan = plan_restore(record, current)
    result = ShedResult(record, list(plan.notes))
    agents_left, uncordon_left = _restore_agents(ctx, plan.agents, plan.uncordon, result)
    by_label = {w.label: w for w in plan.scale}

    def scale_back(label: str) -> None:
        w = by_label[label]
        kube.scale(cast(WorkloadKind, w.kind), w.namespace, w.name, w.replicas)

    scale_failed = _each(list(by_label), scale_back, "scale back", result)

    def resume(key: str) -> None:
        kind, namespace, name = split_key(key)
        try:
            kube.set_suspend(cast(FluxKind, kind), namespace, name, False)
        except KubeNotFoundError:
            result.notes.append(f"{key}: deleted meanwhile")

    resume_failed = _each(plan.resume, resume, "resume", result)
    left = replace(
        record,
        workloads=tuple(w for w in record.workloads if w.label in scale_failed),
        flux_suspended=tuple(resume_failed),
        agents=tuple(agents_left),
        cordoned=tuple(uncordon_left),
        autoscalers=tuple(h for h in record.autoscalers if h.split(" -> ", 1)[-1] in scale_failed),
    )
    if left.workloads or left.flux_suspended or left.agents or left.cordoned:
        save_shed(ctx.config.state_dir, left)
        result.record = left
    else:
        clear_shed(ctx.config.state_dir)
        result.record = None
    log.info("restore: %s", result.line() if result.record else "everything restored")
    return result


def _restore_agents(
    ctx: FlowContext, agents: tuple[str, ...], uncordon: tuple[str, ...], result: ShedResult
) -> tuple[list[str], list[str]]:
    """Powered on (the startup's power_on stage: only those whose SSH does not answer),
    k3s-agent started, Ready, then uncordoned. Returns the agents and cordons still left."""
    if not agents:
        return [], _uncordon(ctx, uncordon, result)
    stage = Stage("shed_restore")  # one name for the progress (status shows the startup's)
    power_on_stage(ctx, stage, StageSpec("shed_restore", "power on the shed agents", agents))
    off = [n for n in agents if stage.nodes.get(n, "on") not in ("on", "powered_on")]
    if stage.status == StageStatus.SKIPPED:
        result.notes.append("no power port here: the agents come back by themselves or by hand")
    up = [n for n in agents if n not in off]
    start = Stage("shed_restore")
    if up:
        run_playbook(
            ctx,
            start,
            "start_agents",
            up,
            timeout_s=ctx.config.startup.api_timeout_seconds + 60,
            k3s_service_timeout_s=int(ctx.config.startup.api_timeout_seconds),
        )

    def ready() -> bool:
        try:
            return set(up) <= {n.name for n in ctx.kube.nodes() if n.ready}
        except KubeError:
            return False

    if up and not wait_until(ctx, ready, ctx.config.startup.nodes_ready_timeout_seconds):
        result.notes.append("not every shed agent is Ready yet (uncordoned anyway)")
    result.failed.extend(f"agent {n}: not powered on ({stage.causes.get(n, '')})" for n in off)
    # an agent that did not come back stays cordoned and recorded: tried again later
    cordons = _uncordon(ctx, tuple(n for n in uncordon if n not in off), result)
    return off, [*cordons, *(n for n in uncordon if n in off)]


def _uncordon(ctx: FlowContext, nodes: tuple[str, ...], result: ShedResult) -> list[str]:
    return _each(nodes, lambda n: ctx.kube.set_unschedulable(n, False), "uncordon", result)


def _each(
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


def shed_restore_stage(ctx: FlowContext, stage: Stage) -> None:
    """The startup's `shed_restore` stage (after Flux is resumed): an outage that ended in a
    shutdown left its shed record; the startup restores it. Never fails the startup: what
    cannot be restored stays recorded (the stage partial) for the daemon to try again."""
    try:
        found = load_shed(ctx.config.state_dir, now=ctx.clock())
    except StateError as exc:
        stage.status = StageStatus.WARNING
        stage.note(f"shed record unreadable, nothing restored: {exc}")
        return
    if found is None:
        stage.status, stage.detail = StageStatus.SKIPPED, "nothing shed"
        return
    if isinstance(found, ShedBlocked):
        stage.status = StageStatus.WARNING
        stage.note(
            f"the shed record was unreadable ({found.problem}): restore by hand from "
            f"{found.kept}, then remove {ctx.config.state_dir / SHED_FILE}"
        )
        return
    try:
        result = restore(ctx, found)
    except StateError as exc:
        stage.status = StageStatus.PARTIAL
        stage.note(f"restored, but the record could not be updated: {exc}")
        return
    stage.note(f"restored: {summary(found)}")
    if result.record is not None:
        stage.status = StageStatus.PARTIAL
        stage.note(f"left: {result.line()}")
    elif result.notes:
        stage.note("; ".join(result.notes))
