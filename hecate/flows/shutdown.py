"""The staged shutdown: Flux suspended, nodes cordoned (and drained), etcd snapshot, k3s-agent
stopped on agents, k3s on servers, then hardware poweroff. An unreachable node never stops the
others; it makes the run's outcome partial."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hecate.errors import HecateError, KubeError
from hecate.flows.context import (
    FlowAbortedError,
    FlowContext,
    Stage,
    StageRecorder,
    new_run_id,
    privilege_vars,
    run_playbook,
)
from hecate.flows.drain import drain as _drain
from hecate.flows.ledger import Ledger, load_ledger_or_new, save_ledger
from hecate.flows.report import FlowReport, outcome_of, record_interrupted, save_report
from hecate.intent import IntentState
from hecate.kube import FluxKind
from hecate.plan import ShutdownMode
from hecate.runs import Outcome, RunRecord
from hecate.statefiles import exclusive_lock


@dataclass(frozen=True)
class ShutdownOptions:
    mode: ShutdownMode = "poweroff"
    reason: str = "manual"
    skip_drain: bool = False
    skip_etcd_snapshot: bool = False


def run_shutdown(ctx: FlowContext, options: ShutdownOptions) -> FlowReport:
    """Carry out a shutdown under the state dir's exclusive lock; always records the run."""
    config = ctx.config
    with exclusive_lock(config.state_dir, "shutdown"):
        started = ctx.clock()
        # An unknown (corrupt) intent never keeps a shutdown from running: it is always safe.
        previous = ctx.store.intent_or_none(started)
        run_id = new_run_id("shutdown", started)
        if previous and previous.state is IntentState.SHUTTING_DOWN and previous.run_id:
            record_interrupted(ctx, previous.run_id, previous.since, "shutdown")
        ctx.store.set_intent(
            IntentState.SHUTTING_DOWN, reason=options.reason, run_id=run_id, now=started
        )
        recorder = StageRecorder(ctx)
        message = ""
        try:
            _stages(ctx, recorder, options, run_id)
            outcome = outcome_of(recorder.results)
        except FlowAbortedError as exc:
            outcome, message = Outcome.ABORTED, str(exc)
        except HecateError as exc:
            outcome, message = Outcome.FAILED, str(exc)
        ended = ctx.clock()
        report = FlowReport(
            "shutdown", run_id, outcome, started, ended, recorder.results, message=message
        )
        ctx.store.record_run(
            RunRecord(
                run_id,
                "shutdown",
                started,
                ended,
                outcome,
                options.reason,
                options.mode,
                tuple(s.record() for s in recorder.results),
            ),
            keep=config.shutdown.runs_kept,
        )
        save_report(config.state_dir, report)  # before a local poweroff can cut it short
        if outcome in (Outcome.SUCCESS, Outcome.PARTIAL):
            ctx.store.set_intent(
                IntentState.SHUTDOWN_COMPLETE,
                reason=f"{options.reason} ({outcome.value})",
                run_id=run_id,
                now=ended,
            )
            if options.mode == "poweroff" and config.shutdown.poweroff_local_host:
                # Last of all, after the run is recorded: this host goes down with it.
                if ctx.poweroff_local is not None:
                    ctx.poweroff_local()
                    report.message = "this host is powering off"
                else:
                    report.message = "poweroff_local_host is set but not available here"
        return report


def _stages(
    ctx: FlowContext, recorder: StageRecorder, options: ShutdownOptions, run_id: str
) -> None:
    config = ctx.config
    # resume: keep what an interrupted run recorded; a corrupt ledger (set aside, logged)
    # is replaced by a new one and never delays or skips a stage
    ledger, _ = load_ledger_or_new(config.state_dir)
    ledger.run_id = run_id
    try:
        api_up = ctx.kube.readyz()
    except KubeError:
        api_up = False
    _api_stages(ctx, recorder, options, ledger, api_up=api_up)
    _node_stages(ctx, recorder, options, run_id)
    save_ledger(config.state_dir, ledger)


def _api_stages(
    ctx: FlowContext,
    recorder: StageRecorder,
    options: ShutdownOptions,
    ledger: Ledger,
    *,
    api_up: bool,
) -> None:
    """Flux, cordon and drain. An API problem here makes a stage partial; it never keeps the
    node stages (the part that protects the hardware) from running."""
    config = ctx.config
    agents = config.nodes.agents
    steps: list[tuple[str, Callable[[Stage], None]]] = [
        ("flux_suspend", lambda stage: _suspend_flux(ctx, stage, ledger)),
        ("cordon", lambda stage: _cordon(ctx, stage, ledger)),
    ]
    if config.shutdown.drain and not options.skip_drain and agents:
        steps.append(("drain", lambda stage: _drain(ctx, stage, agents)))
    for name, step in steps:
        with recorder.stage(name) as stage:
            if not api_up:
                stage.status, stage.detail = "skipped", "API unreachable"
                continue
            try:
                step(stage)
            except KubeError as exc:
                stage.status = "partial"
                stage.note(str(exc))


def _node_stages(
    ctx: FlowContext, recorder: StageRecorder, options: ShutdownOptions, run_id: str
) -> None:
    config = ctx.config
    servers, agents = config.nodes.servers, config.nodes.agents
    if config.shutdown.etcd_snapshot and not options.skip_etcd_snapshot and servers:
        with recorder.stage("etcd_snapshot") as stage:
            extravars = {
                "etcd_snapshot_name": f"hecate-{run_id}",
                "etcd_snapshot_timeout_s": int(config.shutdown.etcd_snapshot_timeout_seconds),
                "etcd_snapshot_required": False,
                **privilege_vars(config),
            }
            result = run_playbook(
                ctx,
                stage,
                "etcd_snapshot",
                servers[:1],
                timeout_s=config.shutdown.etcd_snapshot_timeout_seconds + 60,
                **extravars,
            )
            if stage.status != "ok" or not result.ok:
                # A failed snapshot is reported but never blocks a power-triggered shutdown.
                stage.status = "warning"
                stage.note("snapshot failed; shutdown continues")

    stop_timeout = config.shutdown.stop_timeout_seconds + 60
    stop_vars = {
        "k3s_service_timeout_s": int(config.shutdown.stop_timeout_seconds),
        "k3s_service_use_killall": config.shutdown.use_killall,
        **privilege_vars(config),
    }
    with recorder.stage("stop_agents") as stage:
        if agents:
            run_playbook(ctx, stage, "stop_agents", agents, timeout_s=stop_timeout, **stop_vars)
        else:
            stage.status = "skipped"
    with recorder.stage("stop_servers") as stage:
        if servers:
            run_playbook(ctx, stage, "stop_servers", servers, timeout_s=stop_timeout, **stop_vars)
        else:
            stage.status = "skipped"

    if options.mode == "poweroff":
        managed = set(config.managed_nodes())
        power_vars = {"node_power_mode": config.shutdown.poweroff_method, **privilege_vars(config)}
        for name, group in (("poweroff_agents", agents), ("poweroff_servers", servers)):
            targets = [n for n in group if n in managed]
            with recorder.stage(name) as stage:
                if targets:
                    run_playbook(ctx, stage, "poweroff", targets, timeout_s=120, **power_vars)
                else:
                    stage.status, stage.detail = "skipped", "no managed nodes"
        if config.shutdown.ups_kill_power:
            with recorder.stage("ups_kill_power") as stage:
                _ups_kill_power(ctx, stage)


def _ups_kill_power(ctx: FlowContext, stage: Stage) -> None:
    """Ask the UPS to cut its output after its delay and restore it when mains returns, so
    hosts that shut down while mains was already back still come up (the power-return race)."""
    command = ctx.config.shutdown.ups_kill_command
    if ctx.ups_command is None:
        stage.status, stage.detail = "warning", "no UPS connection to send it through"
        return
    try:
        ctx.ups_command(command)
    except HecateError as exc:
        stage.status = "warning"
        stage.note(f"{command} failed: {exc}")
        return
    stage.note(f"{command} sent")


def _suspend_flux(ctx: FlowContext, stage: Stage, ledger: Ledger) -> None:
    already: list[str] = []
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
            try:
                ctx.kube.set_suspend(obj.kind, obj.namespace, obj.name, True)
            except KubeError as exc:
                stage.status = "partial"
                stage.note(f"{obj.key}: {exc}")
                continue
            ledger.add_suspended(obj.key)
            save_ledger(ctx.config.state_dir, ledger)
    stage.note(f"suspended {len(ledger.suspended)}, already suspended {len(already)}")


def _cordon(ctx: FlowContext, stage: Stage, ledger: Ledger) -> None:
    wanted = set(ctx.config.nodes.all)
    for node in ctx.kube.nodes():
        if node.name not in wanted:
            continue
        if not node.unschedulable:
            try:
                ctx.kube.set_unschedulable(node.name, True)
            except KubeError as exc:
                stage.status = "partial"
                stage.nodes[node.name] = "failed"
                stage.note(f"{node.name}: {exc}")
                continue
            ledger.add_cordoned(node.name)
            save_ledger(ctx.config.state_dir, ledger)
        stage.nodes[node.name] = "ok"
