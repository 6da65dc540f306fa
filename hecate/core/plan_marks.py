"""What a dry run's probes mean for each step of the plan. Pure: the plan, the config and what
the probes saw (hecate/cli/plan_probes.py looks) in, one mark per step that would be skipped, end
with a warning or fail out, each with why.

The marks are annotations: the plan printed stays the plan the run walks (hecate/core/plans.py
builds it without them). Each mark says what the run would do on the cluster as probed, stage
by stage, as the flows decide it:

- shutdown: the API stages (flux_suspend, cordon, drain) are skipped when the API does not
  answer; a node stage fails on each node SSH cannot reach; a failed etcd snapshot and an
  `ups_kill_power` without the UPS end as warnings (neither blocks a shutdown);
- startup: without a Kubernetes client nothing starts; a node stage fails on each node SSH
  cannot reach (time_sync: stops the startup, or a warning with `start_anyway`); with the API
  down and no server reachable, every stage after start_servers that needs the API fails; a
  time_sync that fails stops the startup: every later stage is "not reached".

A probe that could not tell (`Reach.ok is None`: nodes behind a jump host or a ProxyJump, a
placeholder address, a probe that raised or ran out of time) marks nothing: a dry run warns only
on what it saw. A jump host that does not answer makes each SSH stage warn (the run falls back
to direct SSH, which the probes did not try).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from hecate.config.model import HecateConfig
from hecate.core.plans import FlowPlan, StageSpec


class MarkKind(StrEnum):
    """How a step would end; the values are the `--json` strings."""

    SKIP = "would_skip"
    WARN = "would_warn"
    FAIL = "would_fail"


MARK_WORDS = {MarkKind.SKIP: "would be skipped", MarkKind.WARN: "would warn",
              MarkKind.FAIL: "would fail"}  # fmt: skip


@dataclass(frozen=True)
class StageMark:
    kind: MarkKind
    reason: str

    @property
    def text(self) -> str:
        return f"{MARK_WORDS[self.kind]}: {self.reason}"


@dataclass(frozen=True)
class Reach:
    """One probe's answer. `ok`: True reached, False not reached, None could not tell (why in
    `detail`; `why_untold` in a few words, for a summary: "placeholders", ...)."""

    ok: bool | None
    detail: str
    why_untold: str = ""


ApiState = Literal["up", "down", "no_client", "unknown"]


@dataclass(frozen=True)
class ApiProbe:
    """`up`: /readyz answered 200; `down`: it did not (detail: what was seen); `no_client`: the
    kubeconfig gave no client (the flows' UnavailableKube); `unknown`: the probe could not
    tell (it raised or ran out of time): no mark."""

    state: ApiState
    detail: str


@dataclass(frozen=True)
class Probes:
    """What the dry run saw. `nodes`: each node's SSH reach as this host dials it (directly;
    None-ok, not dialled, behind a jump host or proxy);
    `jump`: the jump host's (None: none configured); `left_out`: nodes the inventory leaves out,
    with why (hecate.adapters.ansible.inventory.node_problems); `ups`: None when not probed."""

    api: ApiProbe
    nodes: Mapping[str, Reach] = field(default_factory=dict)
    jump: Reach | None = None
    left_out: Mapping[str, str] = field(default_factory=dict)
    ups: Reach | None = None


# The stages that run a playbook on their nodes over SSH (cordon and nodes_ready name nodes but
# go through the API).
SSH_STAGES = frozenset(
    {
        "etcd_snapshot",
        "stop_agents",
        "stop_servers",
        "poweroff_agents",
        "poweroff_servers",
        "time_sync",
        "start_servers",
        "etcd_quorum",
        "start_agents",
    }
)
SHUTDOWN_API_STAGES = frozenset({"flux_suspend", "cordon", "drain"})
# A startup's stages that need the API once k3s is started.
STARTUP_API_STAGES = frozenset(
    {
        "wait_api",
        "nodes_ready",
        "storage",
        "foundation",
        "flux_resume",
        "flux_ready",
        "shed_restore",
        "soak",
    }
)


def ssh_problems(probes: Probes, nodes: tuple[str, ...]) -> dict[str, str]:
    """The nodes among `nodes` the run's SSH would not reach, with why. Through a jump host
    that answers, the nodes are reached from it, so what this host sees of them tells nothing;
    when it does not answer, the inventory falls back to direct SSH
    (hecate.adapters.ansible.inventory)."""
    found: dict[str, str] = {}
    jump_down = probes.jump is not None and probes.jump.ok is False
    for node in nodes:
        if node in probes.left_out:
            found[node] = f"left out of the inventory: {probes.left_out[node]}"
            continue
        if probes.jump is not None and not jump_down:
            continue
        reach = probes.nodes.get(node)
        if reach is not None and reach.ok is False:
            found[node] = reach.detail
    if found and jump_down and probes.jump is not None:
        found = {n: f"{why} (jump host: {probes.jump.detail})" for n, why in found.items()}
    return found


def _nodes_text(problems: Mapping[str, str]) -> str:
    return "; ".join(f"{node}: {why}" for node, why in problems.items())


def _ssh_mark(config: HecateConfig, spec: StageSpec, problems: dict[str, str]) -> StageMark:
    text = _nodes_text(problems)
    if spec.name == "etcd_snapshot":
        return StageMark(MarkKind.WARN, f"{text} (a failed snapshot never blocks the shutdown)")
    if spec.name == "time_sync":
        if config.startup.time_sync_unsynced == "start_anyway":
            return StageMark(MarkKind.WARN, f"{text} (time_sync_unsynced: start_anyway)")
        return StageMark(MarkKind.FAIL, f"{text}; k3s would not be started")
    return StageMark(MarkKind.FAIL, text)


def _etcd_mark(spec: StageSpec, probes: Probes) -> StageMark | None:
    """etcd_quorum reads etcd through the servers; one the run cannot reach counts against
    quorum, unless the API answers (it does only with quorum: hecate/flows/etcd.py)."""
    problems = ssh_problems(probes, spec.nodes)
    if not problems:
        return None
    text = _nodes_text(problems)
    if probes.api.state == "up":
        return StageMark(MarkKind.WARN, f"{text} (the API answers: etcd has quorum)")
    if len(problems) <= (len(spec.nodes) - 1) // 2:
        return StageMark(MarkKind.WARN, f"{text} (etcd keeps quorum without them)")
    return StageMark(MarkKind.FAIL, f"{text}; etcd would have no quorum")


def _stage_mark(
    config: HecateConfig, plan: FlowPlan, spec: StageSpec, probes: Probes, *, servers_down: bool
) -> StageMark | None:
    """One stage's mark, or None when the probes say it goes as planned."""
    api = probes.api
    if spec.name in SSH_STAGES and spec.name != "etcd_quorum":
        problems = ssh_problems(probes, spec.nodes)
        if problems:
            return _ssh_mark(config, spec, problems)
        if probes.jump is not None and probes.jump.ok is False and spec.nodes:
            # the nodes behind it were not probed: the run's fallback is untested
            return StageMark(
                MarkKind.WARN,
                f"jump host: {probes.jump.detail}; the run falls back to direct SSH "
                "(the nodes were not probed)",
            )
    elif plan.kind == "shutdown" and spec.name in SHUTDOWN_API_STAGES:
        if api.state in ("down", "no_client"):
            return StageMark(MarkKind.SKIP, api.detail)
    elif plan.kind == "startup" and spec.name in STARTUP_API_STAGES:
        if api.state == "down" and servers_down:
            return StageMark(
                MarkKind.FAIL, f"{api.detail}, and SSH reaches no server to start k3s on"
            )
    elif spec.name == "ups_kill_power" and probes.ups is not None and not probes.ups.ok:
        return StageMark(MarkKind.WARN, f"{probes.ups.detail} (the run sends the command anyway)")
    return None


def plan_marks(config: HecateConfig, plan: FlowPlan, probes: Probes) -> dict[str, StageMark]:
    """Step name -> its mark, for the steps the probes say would not go as planned. A step the
    plan already skips is left alone (the plan says why)."""
    marks: dict[str, StageMark] = {}
    api = probes.api
    if plan.kind == "startup" and api.state == "no_client":
        # the run refuses before its first stage (hecate/flows/startup.py): say why once
        runnable = [s.name for s in plan.stages if s.skip is None]
        reason = f"startup needs the Kubernetes API and no client can be made ({api.detail})"
        first = {runnable[0]: StageMark(MarkKind.FAIL, reason)} if runnable else {}
        later = StageMark(MarkKind.FAIL, "not reached: no Kubernetes client (see above)")
        return first | dict.fromkeys(runnable[1:], later)
    servers_down = False
    if plan.kind == "startup":
        servers = tuple(config.nodes.servers)
        servers_down = bool(servers) and len(ssh_problems(probes, servers)) == len(servers)
    stopped_at = ""  # a stage whose failure stops the run there (a startup gate)
    for spec in plan.stages:
        if spec.skip is not None:
            continue
        if stopped_at:
            reason = f"not reached: {stopped_at} would stop the {plan.kind}"
            marks[spec.name] = StageMark(MarkKind.FAIL, reason)
            continue
        mark = (
            _etcd_mark(spec, probes)
            if spec.name == "etcd_quorum"
            else _stage_mark(config, plan, spec, probes, servers_down=servers_down)
        )
        if mark is None:
            continue
        marks[spec.name] = mark
        if spec.name in ("time_sync", "etcd_quorum") and mark.kind is MarkKind.FAIL:
            stopped_at = spec.name  # hecate/flows/startup_gates.py: the startup stops there
    return marks


def would_fail(marks: Mapping[str, StageMark]) -> bool:
    """The dry run's verdict: a step would fail, so the run would not end `success`."""
    return any(m.kind is MarkKind.FAIL for m in marks.values())


def marks_json(marks: Mapping[str, StageMark]) -> dict[str, dict[str, str]]:
    return {name: {"kind": m.kind.value, "reason": m.reason} for name, m in marks.items()}


__all__ = [
    "ApiProbe",
    "MarkKind",
    "Probes",
    "Reach",
    "StageMark",
    "marks_json",
    "plan_marks",
    "ssh_problems",
    "would_fail",
]
