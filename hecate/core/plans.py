"""What a shutdown or a startup will do, as data: the one list of stages the dry run prints and
the run walks (hecate/flows/runner.py). Pure: built from the config, the options and what is
known of the cluster; no I/O, no clock, no adapter.

A stage the plan already knows cannot do anything (no agents to stop, no managed node to power
off, the API down for the API stages) stays in the plan, marked `skip` with the reason: the run
records it as `skipped` with that reason, so the dry run and the report name the same stages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from hecate.config.model import HecateConfig
from hecate.core.etcd import start_order
from hecate.core.startup_refusals import StartupOverrides

ShutdownMode = Literal["poweroff", "cluster-only"]
FlowKind = Literal["shutdown", "startup"]


class StageStatus(StrEnum):
    """A stage's outcome; the values are the strings of the `--json` report and runs.json."""

    OK = "ok"
    PARTIAL = "partial"
    FAILED = "failed"
    SKIPPED = "skipped"
    WARNING = "warning"


@dataclass(frozen=True)
class ShutdownOptions:
    mode: ShutdownMode = "poweroff"
    reason: str = "manual"
    skip_drain: bool = False
    skip_etcd_snapshot: bool = False
    # A partial shutdown (issue 28, hecate.core.feeds): only these nodes lose power and are
    # stopped; the others keep the cluster running. None: the whole cluster.
    nodes: tuple[str, ...] | None = None


@dataclass(frozen=True)
class StartupOptions:
    force_flux_branch: str | None = None
    overrides: StartupOverrides = field(default_factory=StartupOverrides)
    reason: str = "manual"
    # The nodes a partial shutdown stopped, started again once their feed is back (issue 28);
    # the rest of the cluster kept running. None: the whole cluster.
    nodes: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ClusterView:
    """What is known of the cluster when the plan is made. `api_up=None`: not asked (the dry
    run); False: the API did not answer, so the stages that need it are skipped."""

    api_up: bool | None = None
    # when each server's k3s stopped (the last shutdown's record): the last stopped starts first
    stopped_at: Mapping[str, float] = field(default_factory=dict)


UNKNOWN_CLUSTER = ClusterView()


@dataclass(frozen=True)
class StageSpec:
    """One step of a plan. `skip`: the run records the stage `skipped` with this detail
    instead of running it (None: it runs). `playbook`: the stage is that one playbook run on
    its nodes and nothing else, so it may share one ansible-playbook with its neighbours of the
    same kind (:func:`hecate.core.plan_runs.playbook_batches`)."""

    name: str
    description: str
    nodes: tuple[str, ...] = ()
    skip: str | None = None
    playbook: str | None = None
    # the next stage whose first read runs in this stage's ansible-playbook, after its own
    # plays (hecate.core.plan_runs): no decision separates them; that stage judges the read
    reads_ahead: str | None = None


@dataclass(frozen=True)
class FlowPlan:
    """`stages` are what the run walks and reports, in order; `before` and `after` are the
    steps around them (guards, intent, the run's record) that the dry run also shows."""

    kind: FlowKind
    before: tuple[StageSpec, ...]
    stages: tuple[StageSpec, ...]
    after: tuple[StageSpec, ...]

    @property
    def steps(self) -> tuple[StageSpec, ...]:
        return self.before + self.stages + self.after

    @property
    def stage_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.stages)


API_DOWN = "API unreachable"
BMC_METHODS = frozenset({"ipmi", "redfish"})


def embedded_etcd(config: HecateConfig) -> bool:
    """Whether the etcd stages belong in the plans: embedded etcd, or auto (decided at run
    time from the servers)."""
    return config.cluster.datastore in ("auto", "etcd")


def shutdown_plan(
    config: HecateConfig, options: ShutdownOptions, cluster: ClusterView = UNKNOWN_CLUSTER
) -> FlowPlan:
    partial = options.nodes is not None
    only = set(config.nodes.all if options.nodes is None else options.nodes)
    servers = tuple(n for n in config.nodes.servers if n in only)
    agents = tuple(n for n in config.nodes.agents if n in only)
    managed = set(config.managed_nodes())
    api_skip = API_DOWN if cluster.api_up is False else None
    # A partial shutdown leaves the cluster running: Flux keeps reconciling, the workloads of
    # every stopped node (servers too) move to the nodes that keep power.
    flux_skip = "partial shutdown: the cluster keeps running" if partial else api_skip
    stages = [
        StageSpec("flux_suspend", "suspend Flux Kustomizations and HelmReleases", skip=flux_skip),
        StageSpec(
            "cordon",
            "cordon the nodes that lose power" if partial else "cordon every node",
            servers + agents,
            skip=api_skip if servers + agents else "no nodes",
        ),
    ]
    drained = servers + agents if partial else agents
    if config.shutdown.drain and not options.skip_drain and drained:
        what = "nodes that lose power" if partial else "agents"
        stages.append(
            StageSpec("drain", f"drain {what} (evict, delete, force-delete)", drained, api_skip)
        )
    if (
        config.shutdown.etcd_snapshot
        and not options.skip_etcd_snapshot
        and servers
        and embedded_etcd(config)
    ):
        kept = config.shutdown.etcd_snapshots_kept
        stages.append(
            StageSpec(
                "etcd_snapshot",
                f"k3s etcd-snapshot save, verified, recorded; Hecate's newest {kept} kept "
                "(never blocks)",
                servers[:1],
            )
        )
    stages += [
        StageSpec(
            "stop_agents",
            "stop k3s-agent on agents in parallel",
            agents,
            skip=None if agents else "no agents",
            playbook="stop_agents",
        ),
        StageSpec(
            "stop_servers",
            "stop k3s on servers",
            servers,
            skip=None if servers else "no servers",
            playbook="stop_servers",
        ),
    ]
    if options.mode == "poweroff":
        how = " (marker file only)" if config.shutdown.poweroff_method == "marker" else ""
        for name, group in (("poweroff_agents", agents), ("poweroff_servers", servers)):
            targets = tuple(n for n in group if n in managed)
            stages.append(
                StageSpec(
                    name,
                    f"power off managed {name.removeprefix('poweroff_')}{how}",
                    targets,
                    skip=None if targets else "no managed nodes",
                    playbook="poweroff",
                )
            )
        confirm = power_confirm_stage(config, servers + agents, managed)
        if confirm is not None:
            stages.append(confirm)
        if config.shutdown.ups_kill_power and not partial:
            stages.append(
                StageSpec(
                    "ups_kill_power",
                    f"NUT instant command {config.shutdown.ups_kill_command} (the UPS cuts its "
                    "output after its delay, restores it when mains returns)",
                )
            )
    record = "record the run; intent shutdown_complete"
    if options.mode == "poweroff" and config.shutdown.poweroff_local_host and not partial:
        record += "; then power off this host"
    intent = "record intent shutting_down (refuses a concurrent shutdown)"
    if partial:
        intent = f"record intent shutting_down, partial: {', '.join(servers + agents) or 'none'}"
    return FlowPlan(
        "shutdown",
        before=(StageSpec("intent", intent),),
        stages=tuple(stages),
        after=(StageSpec("record", record),),
    )


def power_on_order(config: HecateConfig) -> tuple[str, ...]:
    """Servers first, the last one the shutdown stops first (it holds the newest etcd data;
    the shutdown goes through them in the config's order), then the agents."""
    return (*reversed(config.nodes.servers), *config.nodes.agents)


def power_on_stage(config: HecateConfig, only: set[str] | None = None) -> StageSpec:
    """Startup's first stage (issue 25): which nodes SSH does not reach is only known when it
    runs, so it is never skipped by the plan; each node's method is said here. `only`: a
    partial startup's nodes (power feeds), powered on before k3s starts on them."""
    order = tuple(n for n in power_on_order(config) if only is None or n in only)
    by_method: dict[str, list[str]] = {}
    for node in order:
        by_method.setdefault(config.power.method_of(node), []).append(node)
    how = "; ".join(
        f"{'none (its BIOS)' if method == 'none' else method}: {', '.join(nodes)}"
        for method, nodes in by_method.items()
    )
    timeout = config.startup.power_on_timeout_seconds
    return StageSpec(
        "power_on",
        f"power on the nodes whose SSH does not answer, servers first ({how}); wait up to "
        f"{timeout:.0f}s each for SSH",
        order,
    )


def power_confirm_stage(
    config: HecateConfig, nodes: tuple[str, ...], managed: set[str]
) -> StageSpec | None:
    """After the poweroff: the managed nodes with a BMC (ipmi, redfish) confirmed off from it
    (hecate/flows/power_confirm.py); not in the plan when no managed node has one."""
    bmc = tuple(n for n in nodes if n in managed and config.power.method_of(n) in BMC_METHODS)
    if not bmc:
        return None
    shutdown = config.shutdown
    then = "power off hard" if shutdown.bmc_hard_off else "report it (bmc_hard_off is off)"
    return StageSpec(
        "power_confirm",
        f"confirm from the BMC each node is off; still on after "
        f"{shutdown.poweroff_timeout_seconds:.0f}s: {then}; a node SSH did not reach: soft, "
        "then hard off through its BMC",
        bmc,
        skip="poweroff_method marker: the nodes stay on"
        if shutdown.poweroff_method == "marker"
        else None,
    )


def startup_plan(
    config: HecateConfig, options: StartupOptions, cluster: ClusterView = UNKNOWN_CLUSTER
) -> FlowPlan:
    """The startup's stages; the gates (time_sync, storage, probes, soak) only when configured."""
    # a startup needs the API for every stage after start_servers: nothing to skip by it
    partial = options.nodes is not None
    only = set(config.nodes.all if options.nodes is None else options.nodes)
    servers = tuple(n for n in start_order(config.nodes.servers, cluster.stopped_at) if n in only)
    agents = tuple(n for n in config.nodes.agents if n in only)
    startup = config.startup
    branch = options.force_flux_branch or startup.force_flux_branch
    flux = "resume what Hecate suspended, request a reconcile"
    if branch:
        flux = f"set the GitRepository branch to {branch!r}; " + flux
    no_agents = None if agents else "no agents"
    stages: list[StageSpec] = [power_on_stage(config, only if partial else None)]
    if startup.time_sync_check:
        on_fail = (
            "start anyway, naming the nodes"
            if startup.time_sync_unsynced == "start_anyway"
            else "stop before k3s starts"
        )
        stages.append(
            StageSpec(
                "time_sync",
                f"gate: clocks NTP-synchronised and within {startup.max_clock_skew_seconds:g}s "
                f"of this host (wait up to {startup.time_sync_timeout_seconds:.0f}s, then "
                f"{on_fail})",
                servers + agents,
            )
        )
    first = (
        f", {servers[0]} first (its k3s stopped last)"
        if len(servers) > 1 and servers[0] in cluster.stopped_at
        else ""
    )
    stages.append(
        StageSpec(
            "start_servers",
            f"start k3s on all servers together{first}"
            + (" (their etcd data read first, in the same run)" if embedded_etcd(config) else ""),
            servers,
            skip="no servers" if partial and not servers else None,
            # with etcd the stage reads the servers before starting them: not a bare playbook
            playbook=None if embedded_etcd(config) else "start_servers",
            reads_ahead="etcd_quorum" if embedded_etcd(config) and servers else None,
        )
    )
    if embedded_etcd(config) and servers:
        auto = " (datastore auto: skipped when the servers have no etcd)"
        stages.append(
            StageSpec(
                "etcd_quorum",
                f"wait up to {startup.etcd_quorum_timeout_seconds:.0f}s for etcd quorum as the "
                "servers report it (member list, health); else stop, naming each member's "
                "state" + (auto if config.cluster.datastore == "auto" else ""),
                servers,
            )
        )
    stages += [
        StageSpec("wait_api", "wait for the API (/readyz)"),
        StageSpec("start_agents", "start k3s-agent on agents", agents, no_agents, "start_agents"),
        StageSpec("nodes_ready", "wait for Nodes Ready; uncordon", servers + agents),
    ]
    if partial:  # Flux, storage and the foundation never stopped: the cluster kept running
        return _startup_flow_plan(stages, servers + agents)
    if startup.storage_workloads or startup.storage_check_volume_attachments:
        what = [f"{w.kind}/{w.namespace}/{w.name}" for w in startup.storage_workloads]
        if startup.storage_check_volume_attachments:
            what.append("no VolumeAttachment stuck")
        stages.append(
            StageSpec(
                "storage",
                f"gate: storage Ready before Flux resumes (up to "
                f"{startup.storage_timeout_seconds:.0f}s, then stop): {', '.join(what)}",
            )
        )
    if startup.foundation_workloads:
        names = ", ".join(f"{w.kind}/{w.namespace}/{w.name}" for w in startup.foundation_workloads)
        stages.append(StageSpec("foundation", f"bring back in order: {names}"))
    stages += [
        StageSpec("flux_resume", flux),
        StageSpec(
            "flux_ready",
            "wait for Flux's source Ready; if it stays down: bring Gitea up outside Flux",
        ),
    ]
    if config.power.shed.label_selector or config.power.shed.agents:  # issue 28: after Flux
        stages.append(StageSpec("shed_restore", "restore what load shedding changed, if any"))
    if startup.probes:
        labels = ", ".join(p.label for p in startup.probes)
        stages.append(StageSpec("probes", f"gate: probes from this host pass: {labels}"))
    if startup.soak_seconds > 0:
        stages.append(
            StageSpec(
                "soak",
                f"gate: nodes Ready, no Flux object failing, probes passing for "
                f"{startup.soak_seconds:.0f}s",
            )
        )
    return _startup_flow_plan(stages, None)


def _startup_flow_plan(stages: list[StageSpec], partial: tuple[str, ...] | None) -> FlowPlan:
    intent = "record intent startup_in_progress"
    if partial is not None:
        intent += f", partial: {', '.join(partial)}"
    return FlowPlan(
        "startup",
        before=(
            StageSpec(
                "guards",
                "one guard set, inside the lock: peer role, intent, UPS readable, battery, "
                "charge, peers busy, triggering peer's UPS back",
            ),
            StageSpec("intent", intent),
        ),
        stages=tuple(stages),
        after=(StageSpec("record", "record the run; intent normal"),),
    )
