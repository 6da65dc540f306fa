"""The staged shutdown: Flux suspended, nodes cordoned (and drained), etcd snapshot, k3s-agent
stopped on agents, k3s on servers, then hardware poweroff. An unreachable node never stops the
others; it makes the run's outcome partial, and a run that stopped no node failed
(hecate.core.node_account)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from hecate.adapters.ansible.protocol import PlaybookRequest
from hecate.adapters.kube.types import FluxKind, FluxObject
from hecate.adapters.statedir.save import flow_lock
from hecate.config.model import HecateConfig
from hecate.core.intent import IntentState
from hecate.core.plan_runs import playbook_batches
from hecate.core.plans import (
    ClusterView,
    FlowPlan,
    ShutdownOptions,
    StageSpec,
    StageStatus,
    shutdown_plan,
)
from hecate.core.run_history import Outcome
from hecate.errors import HecateError, KubeError, StateError
from hecate.flows.context import (
    FlowContext,
    KubeApi,
    PlaybookStep,
    Stage,
    new_run_id,
)
from hecate.flows.drain import drain as _drain
from hecate.flows.each_node import for_each_node
from hecate.flows.etcd_snapshot import snapshot_stage
from hecate.flows.ledger import Ledger, load_ledger_or_new, save_ledger
from hecate.flows.power_confirm import power_confirm_stage
from hecate.flows.report import FlowReport, record_interrupted
from hecate.flows.runner import StageRecorder, StepFn, StepTable, run_flow, unit_requests

__all__ = ["run_shutdown"]

log = logging.getLogger("hecate.flows")


def run_shutdown(ctx: FlowContext, options: ShutdownOptions) -> FlowReport:
    """Carry out a shutdown under the state dir's exclusive lock; always records the run."""
    config = ctx.config
    # Protection before bookkeeping: a state directory that is full, read-only, gone or
    # failing never stops a shutdown. The lock falls back to the runtime directory and this
    # process, the records are kept until the disk allows (hecate.adapters.statedir.save).
    with flow_lock(config.state_dir, "shutdown"):
        started = ctx.clock()
        # An unknown (corrupt or unreadable) intent never keeps a shutdown from running.
        previous = ctx.store.intent_or_none(started, unreadable_is_unknown=True)
        run_id = new_run_id("shutdown", started)
        try:
            record_interrupted(ctx, previous)  # a shutdown or a startup a crash cut short
        except StateError as exc:  # bookkeeping: never before the stages
            log.error("cannot record the interrupted run: %s", exc)
        ctx.store.set_intent(
            IntentState.SHUTTING_DOWN,
            reason=options.reason,
            run_id=run_id,
            now=started,
            keep_if_refused=True,
            nodes=options.nodes,
        )
        recorder = StageRecorder(ctx)
        report = run_flow(
            ctx,
            lambda: _prepare(ctx, options, run_id, recorder),
            kind="shutdown",
            run_id=run_id,
            started=started,
            reason=options.reason,
            mode=options.mode,
            # the nodes this shutdown is to stop: the whole cluster, or a partial one's own
            nodes=config.nodes.all if options.nodes is None else list(options.nodes),
            recorder=recorder,
        )  # the report is kept before a local poweroff can cut it short
        cluster = report.cluster
        down = cluster.down if cluster else None
        unknown = cluster.unknown if cluster else None
        if report.outcome is Outcome.FAILED and cluster is not None and cluster.stopped_none:
            # Not shutdown_complete: the cluster never stopped. The intent says so (status
            # shows it) and the daemon tries the shutdown again while the outage lasts.
            ctx.store.set_intent(
                IntentState.SHUTTING_DOWN,
                reason=f"{options.reason} (failed: {cluster.line()})",
                run_id=run_id,
                now=report.ended_at,
                keep_if_refused=True,
                nodes_down=down,
                nodes_unknown=unknown,
            )
        if report.outcome in (Outcome.SUCCESS, Outcome.PARTIAL):
            ctx.store.set_intent(
                IntentState.SHUTDOWN_COMPLETE,
                reason=f"{options.reason} ({report.outcome.value})",
                run_id=run_id,
                now=report.ended_at,
                keep_if_refused=True,
                nodes=options.nodes,
                nodes_down=down,
                nodes_unknown=unknown,
            )
            partial = options.nodes is not None  # this host keeps power with the cluster
            if options.mode == "poweroff" and config.shutdown.poweroff_local_host and not partial:
                # Last of all, after the run is recorded: this host goes down with it.
                if ctx.poweroff_local is not None:
                    ctx.poweroff_local()
                    report.message = "this host is powering off"
                else:
                    report.message = "poweroff_local_host is set but not available here"
        return report


def api_up(kube: KubeApi) -> bool:
    """Whether the API answers; any failure counts as down (the node stages run regardless)."""
    try:
        return kube.readyz()
    except HecateError:
        return False


def _prepare(
    ctx: FlowContext, options: ShutdownOptions, run_id: str, recorder: StageRecorder
) -> tuple[FlowPlan, StepTable]:
    config = ctx.config
    # resume: keep what an interrupted run recorded; a corrupt ledger (set aside, logged)
    # is replaced by a new one and never delays or skips a stage
    ledger, _ = load_ledger_or_new(config.state_dir)
    ledger.run_id = run_id
    save_ledger(config.state_dir, ledger)
    plan = shutdown_plan(config, options, ClusterView(api_up=api_up(ctx.kube)))
    steps: dict[str, StepFn | PlaybookStep] = {
        # An API problem in these makes the stage partial; it never keeps the node stages
        # (the part that protects the hardware) from running. The nodes are the plan's: the
        # whole cluster, or a partial shutdown's (issue 28).
        "flux_suspend": _api_step(lambda stage, _: _suspend_flux(ctx, stage, ledger)),
        "cordon": _api_step(lambda stage, spec: _cordon(ctx, stage, ledger, spec.nodes)),
        "drain": _api_step(lambda stage, spec: _drain(ctx, stage, list(spec.nodes))),
        "etcd_snapshot": lambda stage, spec: snapshot_stage(ctx, stage, spec.nodes[0], run_id),
        # Data, not code: these four need no decision between them, so the runner runs them
        # as one ansible-playbook (each still judged on its own nodes).
        **_node_steps(config),
        "power_confirm": lambda stage, spec: power_confirm_stage(
            ctx, stage, spec, recorder.results
        ),
        "ups_kill_power": lambda stage, _spec: _ups_kill_power(ctx, stage),
    }
    return plan, steps


def node_batch_ahead(config: HecateConfig, options: ShutdownOptions) -> list[PlaybookRequest]:
    """The requests of the shutdown's node batch (stop, poweroff) as `options` would run it
    now: what the daemon starts ahead on battery (flows/warmup.py), so the one ansible-playbook
    of a shutdown has started up before the decision. The plan's own, never a second guess."""
    plan = shutdown_plan(config, options, ClusterView(api_up=True))
    steps = _node_steps(config)
    batches = dict(playbook_batches(plan.stages))
    for index, spec in enumerate(plan.stages):
        if spec.name in steps and spec.skip is None:
            end = batches.get(index, index + 1)
            return unit_requests(config, plan.stages[index:end], steps)
    return []


def _node_steps(config: HecateConfig) -> dict[str, PlaybookStep]:
    """The shutdown's node stages: what it runs and what the daemon starts ahead."""
    return {
        "stop_agents": _stop(config, "stop_agents"),
        "stop_servers": _stop(config, "stop_servers"),
        "poweroff_agents": _poweroff(config),
        "poweroff_servers": _poweroff(config),
    }


def _api_step(step: Callable[[Stage, StageSpec], None]) -> StepFn:
    def run(stage: Stage, spec: StageSpec) -> None:
        try:
            step(stage, spec)
        except KubeError as exc:
            stage.status = StageStatus.PARTIAL
            stage.note(str(exc))

    return run


def _stop(config: HecateConfig, playbook: str) -> PlaybookStep:
    shutdown = config.shutdown
    return PlaybookStep(
        playbook,
        timeout_s=shutdown.stop_timeout_seconds + 60,
        extravars={
            "k3s_service_timeout_s": int(shutdown.stop_timeout_seconds),
            "k3s_service_use_killall": shutdown.use_killall,
        },
    )


def _poweroff(config: HecateConfig) -> PlaybookStep:
    return PlaybookStep(
        "poweroff",
        # the poweroff itself is sent asynchronously; the margin is for connecting
        timeout_s=config.shutdown.poweroff_timeout_seconds,
        extravars={"node_power_mode": config.shutdown.poweroff_method},
    )


def _ups_kill_power(ctx: FlowContext, stage: Stage) -> None:
    """Ask the UPS to cut its output after its delay and restore it when mains returns, so
    hosts that shut down while mains was already back still come up (the power-return race)."""
    command = ctx.config.shutdown.ups_kill_command
    if ctx.ups_command is None:
        stage.status, stage.detail = StageStatus.WARNING, "no UPS connection to send it through"
        return
    try:
        ctx.ups_command(command)
    except HecateError as exc:
        stage.status = StageStatus.WARNING
        stage.note(f"{command} failed: {exc}")
        if ctx.power is not None:  # the power race: nothing will cycle the nodes' power
            stage.note("nodes that stay off are powered on by the startup's power_on")
        return
    stage.note(f"{command} sent")


def _suspend_flux(ctx: FlowContext, stage: Stage, ledger: Ledger) -> None:
    already: list[str] = []
    to_suspend: dict[str, FluxObject] = {}
    kinds: tuple[FluxKind, ...] = ("Kustomization", "HelmRelease")
    for kind in kinds:
        try:
            objects = ctx.kube.flux_objects(kind)
        except KubeError as exc:
            stage.status = "partial"
            stage.note(f"{kind}s: {exc}")
            continue
        for obj in objects:
            if obj.suspended:
                if obj.key not in ledger.suspended:
                    already.append(obj.key)
                continue
            to_suspend[obj.key] = obj
    # Recorded BEFORE the patches, as cordon does: a crash mid-stage still gets them resumed by
    # the next startup (resuming one whose suspend never landed changes nothing), and objects
    # suspended by someone else never get here. A refused patch stays recorded too: an error
    # (a timeout, say) does not prove the suspend did not land, and a resume too many is
    # harmless where one too few leaves Flux suspended. The patches go out at once (one round
    # trip each; 7 one after another took 0.3 s of a shutdown).
    for key in to_suspend:
        ledger.add_suspended(key)
    if to_suspend:
        save_ledger(ctx.config.state_dir, ledger)

    def suspend(key: str) -> None:
        obj = to_suspend[key]
        ctx.kube.set_suspend(obj.kind, obj.namespace, obj.name, True)

    errors = for_each_node(list(to_suspend), suspend)
    refused = [key for key, error in errors.items() if error is not None]
    for key in refused:
        stage.status = "partial"
        stage.note(f"{key}: {errors[key]}")
    stage.note(
        f"suspended {len(ledger.suspended) - len(refused)}, already suspended {len(already)}"
    )


def _cordon(ctx: FlowContext, stage: Stage, ledger: Ledger, wanted_nodes: tuple[str, ...]) -> None:
    wanted = set(wanted_nodes)
    nodes = [node for node in ctx.kube.nodes() if node.name in wanted]
    # Nodes an operator cordoned are never recorded (startup leaves them cordoned). The others
    # are recorded BEFORE their patches: a crash mid-stage still gets them uncordoned by the
    # next startup (uncordoning one whose patch never landed changes nothing).
    to_cordon = [node.name for node in nodes if not node.unschedulable]
    for name in to_cordon:
        ledger.add_cordoned(name)
    if to_cordon:
        save_ledger(ctx.config.state_dir, ledger)
    errors = for_each_node(to_cordon, lambda name: ctx.kube.set_unschedulable(name, True))
    for node in nodes:
        exc = errors.get(node.name)
        if exc is None:
            stage.nodes[node.name] = "ok"
            continue
        stage.status = "partial"
        stage.nodes[node.name] = "failed"
        stage.note(f"{node.name}: {exc}")
        ledger.cordoned.remove(node.name)
    if any(errors.values()):
        save_ledger(ctx.config.state_dir, ledger)
