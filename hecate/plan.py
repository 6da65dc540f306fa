"""Stage plans for shutdown and startup: what will run, on which nodes, in which order. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hecate.config import HecateConfig

ShutdownMode = Literal["poweroff", "cluster-only"]


@dataclass(frozen=True)
class PlannedStage:
    name: str
    description: str
    nodes: tuple[str, ...] = ()


def shutdown_plan(
    config: HecateConfig, *, mode: ShutdownMode, skip_drain: bool, skip_etcd_snapshot: bool
) -> list[PlannedStage]:
    servers, agents = tuple(config.nodes.servers), tuple(config.nodes.agents)
    managed = set(config.managed_nodes())
    stages = [
        PlannedStage("intent", "record intent shutting_down (refuses a concurrent shutdown)"),
        PlannedStage("flux_suspend", "suspend Flux Kustomizations and HelmReleases"),
        PlannedStage("cordon", "cordon every node", servers + agents),
    ]
    if config.shutdown.drain and not skip_drain:
        stages.append(PlannedStage("drain", "drain agents (normal, then forced)", agents))
    if config.shutdown.etcd_snapshot and not skip_etcd_snapshot and servers:
        stages.append(PlannedStage("etcd_snapshot", "k3s etcd-snapshot save", servers[:1]))
    stages += [
        PlannedStage("stop_agents", "stop k3s-agent on agents in parallel", agents),
        PlannedStage("stop_servers", "stop k3s on servers", servers),
    ]
    if mode == "poweroff":
        stages += [
            PlannedStage(
                "poweroff_agents",
                "power off managed agents",
                tuple(a for a in agents if a in managed),
            ),
            PlannedStage(
                "poweroff_servers",
                "power off managed servers",
                tuple(s for s in servers if s in managed),
            ),
        ]
    stages.append(PlannedStage("record", "record the run; intent shutdown_complete"))
    return stages


# Steps of the plan that are not stages of the run's report (done around the stages).
PLAN_ONLY_STEPS = frozenset({"guards", "intent", "record"})


def startup_plan(config: HecateConfig, *, force_flux_branch: str | None) -> list[PlannedStage]:
    """The stages run_startup walks, in its order (the gates only when configured)."""
    servers, agents = tuple(config.nodes.servers), tuple(config.nodes.agents)
    startup = config.startup
    branch = force_flux_branch or startup.force_flux_branch
    flux = "resume what Hecate suspended, request a reconcile"
    if branch:
        flux = f"set the GitRepository branch to {branch!r}; " + flux
    stages = [
        PlannedStage("guards", "battery, peer, intent and charge guards"),
        PlannedStage("intent", "record intent startup_in_progress"),
    ]
    if startup.time_sync_check:
        on_fail = (
            "start anyway, naming the nodes"
            if startup.time_sync_unsynced == "start_anyway"
            else "stop before k3s starts"
        )
        stages.append(
            PlannedStage(
                "time_sync",
                f"gate: clocks NTP-synchronised and within {startup.max_clock_skew_seconds:g}s "
                f"of this host (wait up to {startup.time_sync_timeout_seconds:.0f}s, then "
                f"{on_fail})",
                servers + agents,
            )
        )
    stages += [
        PlannedStage("start_servers", "start k3s on all servers together (etcd quorum)", servers),
        PlannedStage("wait_api", "wait for the API (/readyz)"),
        PlannedStage("start_agents", "start k3s-agent on agents", agents),
        PlannedStage("nodes_ready", "wait for Nodes Ready; uncordon", servers + agents),
    ]
    if startup.storage_workloads or startup.storage_check_volume_attachments:
        what = [f"{w.kind}/{w.namespace}/{w.name}" for w in startup.storage_workloads]
        if startup.storage_check_volume_attachments:
            what.append("no VolumeAttachment stuck")
        stages.append(
            PlannedStage(
                "storage",
                f"gate: storage Ready before Flux resumes (up to "
                f"{startup.storage_timeout_seconds:.0f}s, then stop): {', '.join(what)}",
            )
        )
    if startup.foundation_workloads:
        names = ", ".join(f"{w.kind}/{w.namespace}/{w.name}" for w in startup.foundation_workloads)
        stages.append(PlannedStage("foundation", f"bring back in order: {names}"))
    stages += [
        PlannedStage("flux_resume", flux),
        PlannedStage(
            "flux_ready",
            "wait for Flux's source Ready; if it stays down: bring Gitea up outside Flux",
        ),
    ]
    if startup.probes:
        labels = ", ".join(p.label for p in startup.probes)
        stages.append(PlannedStage("probes", f"gate: probes from this host pass: {labels}"))
    if startup.soak_seconds > 0:
        stages.append(
            PlannedStage(
                "soak",
                f"gate: nodes Ready, no Flux object failing, probes passing for "
                f"{startup.soak_seconds:.0f}s",
            )
        )
    stages.append(PlannedStage("record", "record the run; intent normal"))
    return stages
