"""Which nodes a shutdown is known to have stopped and which are unknown, and why (issue 25).

Pure: built from each stage's per-node status (the runner's record of Ansible's per-host
results and the BMC's answers, never a playbook's stdout). A shutdown that stopped no node
did not protect anything: its outcome is `failed`, whatever its other stages did, so that
`status` never says a startup is pending for a cluster that never stopped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hecate.core.run_history import Outcome

# The stages after which a node counts as stopped (k3s stopped on it) or off (powered off,
# by its poweroff or confirmed by its BMC).
STOP_STAGES = frozenset({"stop_agents", "stop_servers"})
OFF_STAGES = frozenset({"poweroff_agents", "poweroff_servers", "power_confirm"})
NOT_REACHED = "not reached"


@dataclass(frozen=True)
class StageNodes:
    """One stage's per-node view: node -> ok | unreachable | failed | unknown | off | on,
    and the cause Ansible (or the BMC) gave for a node that was not ok."""

    name: str
    nodes: Mapping[str, str]
    causes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NodeAccount:
    """`down`: node -> "off" or "stopped"; `unknown`: node -> the cause, in the config's order."""

    down: Mapping[str, str] = field(default_factory=dict)
    unknown: Mapping[str, str] = field(default_factory=dict)

    @property
    def stopped_none(self) -> bool:
        return not self.down and bool(self.unknown)

    def line(self) -> str:
        """The one line `status` and the report show."""
        unknown = _grouped(self.unknown)
        if self.stopped_none:
            return f"cluster not stopped: the shutdown reached no node ({unknown})"
        down = ", ".join(f"{node} {how}" for node, how in sorted(self.down.items()))
        if not self.unknown:
            return f"all {len(self.down)} node(s) down ({down})"
        return f"{len(self.down)} node(s) down ({down}); state unknown: {unknown}"

    def to_json(self) -> dict[str, Any]:
        return {"down": dict(self.down), "unknown": dict(self.unknown), "line": self.line()}

    @classmethod
    def from_json(cls, data: object) -> NodeAccount | None:
        """Tolerant: an older record without it, or a damaged one, is None."""
        if not isinstance(data, Mapping):
            return None
        down, unknown = data.get("down"), data.get("unknown")
        if not isinstance(down, Mapping) or not isinstance(unknown, Mapping):
            return None
        return cls(
            {str(k): str(v) for k, v in down.items()},
            {str(k): str(v) for k, v in unknown.items()},
        )


def _grouped(unknown: Mapping[str, str]) -> str:
    """`a1, a2: Connection refused; s1: Permission denied`: nodes sharing a cause together."""
    by_cause: dict[str, list[str]] = {}
    for node, cause in unknown.items():
        by_cause.setdefault(cause, []).append(node)
    # names sorted: the report and status (which reads them back from intent.json) agree
    return "; ".join(f"{', '.join(sorted(nodes))}: {cause}" for cause, nodes in by_cause.items())


def short_cause(message: str) -> str:
    """The end of an SSH error, the part an operator acts on: "ssh: connect to host 10.0.0.5
    port 22: Connection refused" -> "Connection refused"."""
    text = message.strip().splitlines()[-1].strip() if message.strip() else ""
    tail = text.rsplit(": ", 1)[-1].strip().rstrip(".")
    return (tail or text)[:160]


def account_nodes(nodes: Sequence[str], stages: Iterable[StageNodes]) -> NodeAccount:
    """Each node: `off` when a poweroff (or its BMC) says so, else `stopped` when k3s was
    stopped on it, else unknown with the first cause a node stage gave (or its status)."""
    off: set[str] = set()
    stopped: set[str] = set()
    causes: dict[str, str] = {}
    for stage in stages:
        if stage.name not in STOP_STAGES | OFF_STAGES:
            continue
        for node, status in stage.nodes.items():
            if status in ("ok", "off"):
                (off if stage.name in OFF_STAGES else stopped).add(node)
            elif node not in causes:
                causes[node] = stage.causes.get(node) or status
    down: dict[str, str] = {}
    unknown: dict[str, str] = {}
    for node in nodes:
        if node in off:
            down[node] = "off"
        elif node in stopped:
            down[node] = "stopped"
        else:
            unknown[node] = causes.get(node, NOT_REACHED)
    return NodeAccount(down, unknown)


def shutdown_outcome(outcome: Outcome, account: NodeAccount) -> Outcome:
    """A shutdown that stopped no node failed, however its other stages went; one that left
    some nodes unknown is at best partial."""
    if outcome in (Outcome.SUCCESS, Outcome.PARTIAL) and account.stopped_none:
        return Outcome.FAILED
    if outcome is Outcome.SUCCESS and account.unknown:
        return Outcome.PARTIAL
    return outcome
