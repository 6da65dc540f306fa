"""Load shedding's restore (issue 28, item 3): undo exactly what a shed record names.

Agents: those Hecate can power on (power.nodes: wol, ipmi, redfish) are powered on as the
startup's power_on stage does; one with method none whose SSH is silent is not tried (Hecate
cannot switch it on: said once, kept recorded, started when an operator has powered it on).
Then k3s-agent is started, and ONLY an agent whose start succeeded and whose Node is Ready is
uncordoned and struck from the record: one that did not start or turn Ready stays cordoned and
recorded, to be tried again (never uncordoned as if it were back). Workloads still at 0 are
scaled back to their recorded replicas; Flux is resumed where Hecate suspended it. One node's
or one object's problem, and an adapter error (a playbook that cannot run), never stops the
others: what is left stays recorded.

`guard` (the daemon's): asked before each phase; a reason stops the restore there
(FlowAbortedError; the record on disk still names everything left, and putting back what is
already back changes nothing). The startup's `shed_restore` stage runs inside the startup's
own flow lock and passes none.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import cast

from hecate.adapters.kube.types import FluxKind, KubeNotFoundError, WorkloadKind
from hecate.adapters.statedir.shed_file import SHED_FILE, clear_shed, load_shed, save_shed
from hecate.core.plans import StageSpec, StageStatus
from hecate.core.shed import ShedBlocked, ShedRecord
from hecate.core.shed_plan import plan_restore
from hecate.errors import HecateError, KubeError, StateError
from hecate.flows.context import (
    FlowAbortedError,
    FlowContext,
    Stage,
    check_cancel,
    run_playbook,
    wait_until,
)
from hecate.flows.ledger import split_key
from hecate.flows.power_on import answers_all, power_on_stage
from hecate.flows.shed import ShedResult, each, summary

log = logging.getLogger("hecate.shed")

Guard = Callable[[], str | None]  # why the restore must not act now (None: it may)
BY_HAND = (
    "no power method (power.nodes): power it on by hand; it is started and uncordoned once "
    "its SSH answers"
)


def restore(ctx: FlowContext, record: ShedRecord, guard: Guard | None = None) -> ShedResult:
    """Undo what `record` names; the record is rewritten with what is left (removed when
    nothing is). StateError when the disk refuses either; FlowAbortedError when `guard`
    (or the context's cancel) stops it between phases."""
    _check(ctx, guard)
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
    _check(ctx, guard)
    by_label = {w.label: w for w in plan.scale}

    def scale_back(label: str) -> None:
        w = by_label[label]
        kube.scale(cast(WorkloadKind, w.kind), w.namespace, w.name, w.replicas)

    scale_failed = each(list(by_label), scale_back, "scale back", result)

    def resume(key: str) -> None:
        kind, namespace, name = split_key(key)
        try:
            kube.set_suspend(cast(FluxKind, kind), namespace, name, False)
        except KubeNotFoundError:
            result.notes.append(f"{key}: deleted meanwhile")

    resume_failed = each(plan.resume, resume, "resume", result)
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


def _check(ctx: FlowContext, guard: Guard | None) -> None:
    check_cancel(ctx)
    why = guard() if guard is not None else None
    if why:
        raise FlowAbortedError(f"restore stopped: {why}")


def _restore_agents(
    ctx: FlowContext, agents: tuple[str, ...], uncordon: tuple[str, ...], result: ShedResult
) -> tuple[list[str], list[str]]:
    """Powered on, k3s-agent started, Ready, then uncordoned, per node. Returns the agents
    and the cordons still left (an agent not back keeps both)."""
    left: dict[str, str] = {}  # agent -> why it is not back
    for node in _by_hand(ctx, agents):
        left[node] = BY_HAND
    tried = [n for n in agents if n not in left]
    up = _power_on(ctx, tried, left) if tried else []
    started = _start(ctx, up, left) if up else []

    def ready_now() -> set[str]:
        try:
            return {n.name for n in ctx.kube.nodes() if n.ready}
        except KubeError:
            return set()

    if started:
        timeout = ctx.config.startup.nodes_ready_timeout_seconds
        wait_until(ctx, lambda: set(started) <= ready_now(), timeout)
        ready = ready_now()
        for node in (n for n in started if n not in ready):
            left[node] = f"started, not Ready within {timeout:.0f}s: left cordoned"
    result.failed.extend(f"agent {n}: {why}" for n, why in left.items())
    # only what is back is uncordoned: an agent still off or not Ready keeps its cordon
    lifted = each(tuple(n for n in uncordon if n not in left), _uncordon(ctx), "uncordon", result)
    return [n for n in agents if n in left], [*lifted, *(n for n in uncordon if n in left)]


def _by_hand(ctx: FlowContext, agents: tuple[str, ...]) -> list[str]:
    """The agents Hecate cannot power on (method none, or no power port here) whose SSH does
    not answer: not tried (no power-on sent, no start that can only time out)."""
    if ctx.node_answers is None:
        return []  # nothing to look with: the start says it
    switchless = [n for n in agents if ctx.power is None or ctx.config.power.method_of(n) == "none"]
    seen = answers_all(switchless, ctx.node_answers)
    return [n for n in switchless if not seen[n][0]]


def _power_on(ctx: FlowContext, agents: list[str], left: dict[str, str]) -> list[str]:
    """The agents that answer (already on, or powered on); the others into `left`."""
    stage = Stage("shed_restore")  # one name for the progress (status shows the startup's)
    try:
        power_on_stage(
            ctx, stage, StageSpec("shed_restore", "power on the shed agents", tuple(agents))
        )
    except FlowAbortedError:
        raise
    except HecateError as exc:  # the power port itself failed: none of them is known on
        left.update(dict.fromkeys(agents, f"not powered on: {exc}"))
        return []
    if stage.status == StageStatus.SKIPPED:
        return agents  # no power port: they come back by themselves or by hand
    for node in agents:
        if stage.nodes.get(node) not in ("on", "powered_on"):
            left[node] = f"not powered on ({stage.causes.get(node, stage.nodes.get(node, '?'))})"
    return [n for n in agents if n not in left]


def _start(ctx: FlowContext, agents: list[str], left: dict[str, str]) -> list[str]:
    """The agents whose k3s-agent started; the others into `left`, with why."""
    stage = Stage("shed_restore")
    startup = ctx.config.startup
    try:
        run_playbook(
            ctx,
            stage,
            "start_agents",
            agents,
            timeout_s=startup.api_timeout_seconds + 60,
            k3s_service_timeout_s=int(startup.api_timeout_seconds),
        )
    except FlowAbortedError:
        raise
    except HecateError as exc:  # the playbook could not run: none of them is known started
        left.update(dict.fromkeys(agents, f"k3s-agent not started: {exc}"))
        return []
    for node in agents:
        status = stage.nodes.get(node, "not run")
        if status != "ok":
            cause = stage.causes.get(node)
            left[node] = f"k3s-agent not started ({status}{': ' + cause if cause else ''})"
    return [n for n in agents if n not in left]


def _uncordon(ctx: FlowContext) -> Callable[[str], None]:
    return lambda node: ctx.kube.set_unschedulable(node, False)


def shed_restore_stage(ctx: FlowContext, stage: Stage) -> None:
    """The startup's `shed_restore` stage (after Flux is resumed): an outage that ended in a
    shutdown left its shed record; the startup restores it. Never fails the startup: the
    cluster is up, and this is bookkeeping. What cannot be restored, and an error that stops
    the restore (a playbook that cannot run, the API), leave the stage partial or failed with
    the reason and the record kept for the daemon to try again; the later stages still run."""
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
    except FlowAbortedError:
        raise  # the startup was stopped: its own outcome says so
    except StateError as exc:
        stage.status = StageStatus.PARTIAL
        stage.note(f"restored, but the record could not be updated: {exc}")
        return
    except Exception as exc:  # bookkeeping: any error leaves the started cluster up
        if not isinstance(exc, HecateError):
            log.exception("shed_restore")
        stage.status = StageStatus.FAILED
        stage.note(f"not restored ({exc}); kept in {SHED_FILE}, tried again by the daemon")
        return
    stage.note(f"restored: {summary(found)}")
    if result.record is not None:
        stage.status = StageStatus.PARTIAL
        stage.note(f"left (kept in {SHED_FILE}, tried again by the daemon): {result.line()}")
    elif result.notes:
        stage.note("; ".join(result.notes))
