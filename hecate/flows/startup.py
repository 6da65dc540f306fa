"""The staged startup: nodes powered on (power_on), servers together, API, agents, Nodes Ready,
uncordon, Flux resumed, and the Flux/Gitea deadlock fallback
(Gitea brought up outside Flux when Flux's own source is down)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import yaml

from hecate.adapters.kube.types import WorkloadKind
from hecate.adapters.statedir.awaiting import load_awaiting, save_awaiting
from hecate.adapters.statedir.save import flow_lock
from hecate.config.model import HecateConfig
from hecate.core.etcd import stopped_at
from hecate.core.intent import IntentState
from hecate.core.plans import (
    ClusterView,
    FlowPlan,
    StageStatus,
    StartupOptions,
    embedded_etcd,
    startup_plan,
)
from hecate.core.run_history import Outcome
from hecate.errors import (
    HecateError,
    IntentCorruptError,
    IntentLockedError,
    KubeError,
    StartupStateError,
    StateError,
    TransitionError,
)
from hecate.flows.bootstrap_cache import cached_or_configured
from hecate.flows.context import (
    FlowContext,
    KubeApi,
    PlaybookStep,
    Stage,
    check_cancel,
    new_run_id,
    wait_until,
)
from hecate.flows.each_node import for_each_node
from hecate.flows.etcd import EtcdCarry, etcd_quorum_gate, start_servers_step
from hecate.flows.flux_resume import request_reconcile, resume_flux
from hecate.flows.guard_facts import guard_startup
from hecate.flows.ledger import Ledger, load_ledger_or_new, save_ledger
from hecate.flows.power_on import power_on_stage
from hecate.flows.report import FlowReport, record_interrupted, save_progress
from hecate.flows.runner import ForeseenStep, StageRecorder, StepFn, StepTable, run_flow
from hecate.flows.shed_restore import shed_restore_stage
from hecate.flows.startup_gates import (
    clock_request,
    probes_gate,
    soak_gate,
    storage_gate,
    time_sync_gate,
)

__all__ = ["run_startup", "source_ready"]


def run_startup(ctx: FlowContext, options: StartupOptions) -> FlowReport:
    config = ctx.config
    with _startup_lock(config.state_dir):
        guard_startup(ctx, options.overrides)  # the one guard set (hecate/flows/guard_facts.py)
        if not ctx.kube.available:
            # A shutdown can go on without the API; a startup cannot: say so before touching
            # anything instead of waiting out api_timeout_seconds.
            raise KubeError(
                f"startup needs the Kubernetes API and no client could be made "
                f"({ctx.kube.reason}); fix `kubeconfig` in the config and run it again"
            )
        started = ctx.clock()
        run_id = new_run_id("startup", started)
        try:
            previous = ctx.store.read_intent(started)
            record_interrupted(ctx, previous)  # a startup or a shutdown a crash cut short
            ctx.store.set_intent(
                IntentState.STARTUP_IN_PROGRESS,
                reason=options.reason,
                run_id=run_id,
                now=started,
                nodes=options.nodes,
            )
        except StateError as exc:
            if isinstance(exc, IntentCorruptError | TransitionError | IntentLockedError):
                raise  # their own message: not a disk to repair
            raise StartupStateError(f"startup refused: {_state_problem(exc)}") from None
        ctx = _with_progress_file(ctx, run_id)
        recorder = StageRecorder(ctx)
        report = run_flow(
            ctx,
            lambda: _prepare(ctx, options, recorder),
            kind="startup",
            run_id=run_id,
            started=started,
            reason=options.reason,
            mode="",
            recorder=recorder,
        )
        if report.outcome in (Outcome.SUCCESS, Outcome.PARTIAL):
            ctx.store.set_intent(
                IntentState.NORMAL,
                reason=f"startup {report.outcome.value}",
                run_id=run_id,
                now=report.ended_at,
                keep_if_refused=True,  # the cluster is up: the record follows when it can
            )
            # The cluster is up: no peer's outage is waited for any more (whoever started it:
            # the daemon, the CLI, the boot unit), or the next outage would wait for it too.
            try:
                if load_awaiting(config.state_dir, move=False) != frozenset():
                    save_awaiting(config.state_dir, frozenset())
            except HecateError as exc:
                ctx.progress("startup", "warning", f"could not clear startup-awaits.json: {exc}")
        # FAILED or ABORTED: the intent stays startup_in_progress so `status` shows where it
        # stopped; a shutdown may take over, and a new startup resumes.
        return report


@contextlib.contextmanager
def _startup_lock(state_dir: Path) -> Iterator[None]:
    """The flow lock; a startup is never urgent, so without a lock file it is refused."""
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(flow_lock(state_dir, "startup", required=True))
        except IntentLockedError:
            raise
        except StateError as exc:
            raise StartupStateError(f"startup refused: {_state_problem(exc)}") from None
        yield


def _state_problem(exc: StateError) -> str:
    return (
        f"{exc}; a startup needs its intent on disk: make the state directory readable and "
        "writable (space, mount, the disk) and run it again"
    )


def _with_progress_file(ctx: FlowContext, run_id: str) -> FlowContext:
    """The same context, whose progress also records the running stage (and since when) in
    state_dir/startup-progress.json for `hecate status`."""
    inner = ctx.progress
    current = {"stage": ""}

    def progress(stage: str, status: str, detail: str) -> None:
        inner(stage, status, detail)
        if status == "running" and stage != current["stage"]:
            current["stage"] = stage
            save_progress(ctx.config.state_dir, run_id, stage, ctx.clock(), "")
        elif status == "waiting" and stage == current["stage"]:
            save_progress(ctx.config.state_dir, run_id, stage, None, detail, now=ctx.clock())

    return dataclasses.replace(ctx, progress=progress)


def _prepare(
    ctx: FlowContext, options: StartupOptions, recorder: StageRecorder
) -> tuple[FlowPlan, StepTable]:
    ledger, _ = load_ledger_or_new(ctx.config.state_dir)  # corrupt: set aside, logged
    # start_servers -> etcd_quorum: the servers whose etcd data was gone before k3s started,
    # and the first quorum reading when start_servers' ansible-playbook took it
    carry = EtcdCarry()
    steps: dict[str, StepFn | PlaybookStep] = {
        "power_on": lambda stage, spec: power_on_stage(ctx, stage, spec),
        "time_sync": ForeseenStep(
            lambda stage, _spec: time_sync_gate(ctx, stage),
            lambda _spec: [clock_request(ctx, ctx.config.nodes.all)],  # its first read
        ),
        "start_servers": (
            start_servers_step(ctx, carry, _start(ctx, "start_servers"))
            if embedded_etcd(ctx.config)
            else _start(ctx, "start_servers")
        ),
        "etcd_quorum": lambda stage, _spec: etcd_quorum_gate(ctx, stage, carry),
        "wait_api": lambda _stage, _spec: _wait_api(ctx),
        "start_agents": _start(ctx, "start_agents"),
        "nodes_ready": lambda stage, spec: _wait_nodes_ready(ctx, stage, ledger, spec.nodes),
        "storage": lambda stage, _spec: storage_gate(ctx, stage),
        "foundation": lambda stage, _spec: _restore_foundation(ctx, stage),
        "flux_resume": lambda stage, _spec: resume_flux(ctx, stage, ledger, options),
        "flux_ready": lambda stage, _spec: _flux_ready_or_fallback(ctx, stage, recorder),
        "shed_restore": lambda stage, _spec: shed_restore_stage(ctx, stage),
        "probes": lambda stage, _spec: probes_gate(ctx, stage),
        "soak": lambda stage, _spec: soak_gate(ctx, stage),
    }
    try:
        stops = stopped_at(ctx.store.load_runs(move=False))
    except HecateError:
        stops = {}  # an unreadable history only loses the start order
    return startup_plan(ctx.config, options, ClusterView(stopped_at=stops)), steps


def _start(ctx: FlowContext, playbook: str) -> PlaybookStep:
    # start_servers: all servers at once, since etcd needs a quorum and one-at-a-time starts
    # wait on each other.
    startup = ctx.config.startup
    return PlaybookStep(
        playbook,
        timeout_s=startup.api_timeout_seconds + 60,
        extravars={"k3s_service_timeout_s": int(startup.api_timeout_seconds)},
    )


def _wait_api(ctx: FlowContext) -> None:
    timeout = ctx.config.startup.api_timeout_seconds
    if not wait_until(ctx, ctx.kube.readyz, timeout):
        servers = len(ctx.config.nodes.servers)
        quorum = (
            f" (with {servers} servers embedded etcd needs {servers // 2 + 1} of them running: "
            "see which servers the start_servers stage could not start)"
            if servers >= 3
            else ""
        )
        raise KubeError(f"the API did not become ready within {timeout:.0f}s{quorum}")


def _wait_nodes_ready(
    ctx: FlowContext, stage: Stage, ledger: Ledger, wanted_nodes: tuple[str, ...]
) -> None:
    wanted = set(wanted_nodes)  # the plan's: every node, or a partial startup's (issue 28)

    def all_ready() -> bool:
        try:
            ready = {n.name for n in ctx.kube.nodes() if n.ready}
        except KubeError:
            return False
        return wanted <= ready

    wait_until(ctx, all_ready, ctx.config.startup.nodes_ready_timeout_seconds)
    nodes = {n.name: n for n in ctx.kube.nodes()}
    for name in sorted(wanted):
        info = nodes.get(name)
        stage.nodes[name] = "ok" if info is not None and info.ready else "not_ready"
    stragglers = [n for n, s in stage.nodes.items() if s != "ok"]
    if stragglers:
        stage.status = StageStatus.PARTIAL
        stage.note(f"not Ready: {', '.join(stragglers)}")
    # Uncordon only what Hecate cordoned; nodes an operator cordoned stay cordoned. All at
    # once; one that fails stays in the ledger (the next startup tries it again) and fails
    # the stage, as before, after the others are done.
    recorded = list(ledger.cordoned)
    present = [name for name in recorded if name in nodes]
    errors = for_each_node(present, lambda name: ctx.kube.set_unschedulable(name, False))
    failed = {name: exc for name, exc in errors.items() if exc is not None}
    ledger.cordoned = [name for name in recorded if name in failed]
    if recorded:
        save_ledger(ctx.config.state_dir, ledger)
    if failed:
        name, exc = next(iter(failed.items()))
        raise KubeError(f"cannot uncordon {', '.join(failed)} ({name}: {exc})")


def _restore_foundation(ctx: FlowContext, stage: Stage) -> None:
    """Bring each foundation workload back, in order: scale up from 0, wait until it is ready."""
    for item in ctx.config.startup.foundation_workloads:
        check_cancel(ctx)
        label = f"{item.kind}/{item.namespace}/{item.name}"

        def ready(
            kind: WorkloadKind = item.kind, ns: str = item.namespace, name: str = item.name
        ) -> bool:
            try:
                return ctx.kube.workload(kind, ns, name).ready_replicas >= 1
            except KubeError:
                return False

        try:
            current = ctx.kube.workload(item.kind, item.namespace, item.name)
            if current.replicas == 0:
                ctx.kube.scale(item.kind, item.namespace, item.name, item.replicas)
                stage.note(f"{label} scaled to {item.replicas}")
        except KubeError as exc:
            stage.status = StageStatus.PARTIAL
            stage.nodes[label] = "failed"
            stage.note(f"{label}: {exc}")
            continue
        if wait_until(ctx, ready, item.timeout_seconds, interval_s=0.5):
            stage.nodes[label] = "ok"
        else:
            stage.status = StageStatus.PARTIAL
            stage.nodes[label] = "not_ready"
            stage.note(f"{label} not ready after {item.timeout_seconds:.0f}s")


def source_ready(kube: KubeApi, config: HecateConfig) -> bool:
    """Whether Flux's own GitRepository is Ready (False when the API cannot tell)."""
    startup = config.startup
    try:
        return kube.flux_object(
            "GitRepository", startup.flux_namespace, startup.flux_git_repository
        ).ready
    except KubeError:
        return False


def _source_ready(ctx: FlowContext) -> bool:
    return source_ready(ctx.kube, ctx.config)


def _flux_ready_or_fallback(ctx: FlowContext, stage: Stage, recorder: StageRecorder) -> None:
    startup = ctx.config.startup
    # A short first wait: a healthy source turns Ready within seconds of the reconcile request.
    first_wait = min(30.0, startup.flux_ready_timeout_seconds)
    if wait_until(ctx, lambda: _source_ready(ctx), first_wait):
        stage.note("Flux source Ready")
        return
    stage.note("Flux source not Ready: bringing Gitea up outside Flux")
    recorder.fallbacks.append("gitea_scale")
    kind_text, _, name = startup.gitea_workload.partition("/")
    kind = cast(WorkloadKind, kind_text)

    def gitea_ready() -> bool:
        try:
            return ctx.kube.workload(kind, startup.gitea_namespace, name).ready_replicas >= 1
        except KubeError:
            return False

    try:
        ctx.kube.scale(kind, startup.gitea_namespace, name, startup.gitea_replicas)
    except KubeError as exc:
        stage.note(f"scaling Gitea failed: {exc}")
    if not wait_until(ctx, gitea_ready, startup.flux_ready_timeout_seconds / 2):
        applied = _apply_bootstrap(ctx, stage)
        if applied:
            recorder.fallbacks.append("gitea_bootstrap_manifests")
        if not wait_until(ctx, gitea_ready, startup.flux_ready_timeout_seconds / 2):
            stage.status = StageStatus.FAILED
            stage.note("Gitea did not become Ready; Flux stays blocked (see README: cold start)")
            return
    request_reconcile(ctx)
    if wait_until(ctx, lambda: _source_ready(ctx), startup.flux_ready_timeout_seconds):
        stage.note("Gitea Ready, Flux source Ready after the fallback")
    else:
        stage.status = StageStatus.FAILED
        stage.note("Gitea is up but the Flux source is still not Ready")


def _apply_bootstrap(ctx: FlowContext, stage: Stage) -> int:
    """Apply the configured bootstrap manifests in order, from the cache under state_dir."""
    applied = 0
    for path in ctx.config.startup.gitea_bootstrap_manifests:
        source = cached_or_configured(ctx.config, path)
        try:
            documents = [d for d in yaml.safe_load_all(source.read_text()) if d]
        except (OSError, yaml.YAMLError) as exc:
            stage.note(f"{source}: {exc}")
            continue
        for doc in documents:
            try:
                stage.note(f"applied {ctx.kube.apply(doc)}")
                applied += 1
            except KubeError as exc:
                stage.note(f"apply failed: {exc}")
    return applied
