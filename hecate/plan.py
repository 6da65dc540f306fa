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


def startup_plan(config: HecateConfig, *, force_flux_branch: str | None) -> list[PlannedStage]:
    servers, agents = tuple(config.nodes.servers), tuple(config.nodes.agents)
    branch = force_flux_branch or config.startup.force_flux_branch
    flux = "resume what Hecate suspended, request a reconcile"
    if branch:
        flux = f"set the GitRepository branch to {branch!r}; " + flux
    return [
        PlannedStage("guards", "battery, peer, intent and charge guards"),
        PlannedStage("intent", "record intent startup_in_progress"),
        PlannedStage("start_servers", "start k3s on all servers together (etcd quorum)", servers),
        PlannedStage("wait_api", "wait for the API (/readyz)"),
        PlannedStage("start_agents", "start k3s-agent on agents", agents),
        PlannedStage("nodes_ready", "wait for Nodes Ready; uncordon", servers + agents),
        PlannedStage("flux_resume", flux),
        PlannedStage("gitea_fallback", "if Flux's source stays down: bring Gitea up outside Flux"),
        PlannedStage("record", "record the run; intent normal"),
    ]
