"""The intent: what Hecate last set out to do, so that crashes and other instances can tell.

Pure: the allowed transitions are an explicit table and every function takes `now`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from hecate.errors import StateCorruptError, TransitionError


class IntentState(StrEnum):
    NORMAL = "normal"
    STARTUP_IN_PROGRESS = "startup_in_progress"
    SHUTTING_DOWN = "shutting_down"
    SHUTDOWN_COMPLETE = "shutdown_complete"


S = IntentState

# Self-transitions mean "resume after a crash" (the same flow runs again).
ALLOWED_TRANSITIONS: dict[IntentState, frozenset[IntentState]] = {
    S.NORMAL: frozenset({S.NORMAL, S.SHUTTING_DOWN, S.STARTUP_IN_PROGRESS}),
    # A shutdown trigger during startup takes over; a finished startup returns to normal.
    S.STARTUP_IN_PROGRESS: frozenset({S.STARTUP_IN_PROGRESS, S.NORMAL, S.SHUTTING_DOWN}),
    # Startup from shutting_down is only let through by the guards once the intent is stale.
    S.SHUTTING_DOWN: frozenset({S.SHUTTING_DOWN, S.SHUTDOWN_COMPLETE, S.STARTUP_IN_PROGRESS}),
    S.SHUTDOWN_COMPLETE: frozenset({S.SHUTDOWN_COMPLETE, S.STARTUP_IN_PROGRESS, S.SHUTTING_DOWN}),
}


@dataclass(frozen=True)
class Intent:
    state: IntentState
    since: float
    reason: str
    host: str
    run_id: str | None = None
    # A partial shutdown's nodes (issue 28: only those lost power; the cluster runs on).
    # None: the whole cluster. Old intent files have no such key: the whole cluster.
    nodes: tuple[str, ...] | None = None

    @property
    def partial(self) -> bool:
        return self.nodes is not None

    # What the last shutdown left (hecate.core.node_account): node -> off | stopped, and
    # node -> why its state is unknown. Empty when no shutdown said.
    nodes_down: Mapping[str, str] = field(default_factory=dict)
    nodes_unknown: Mapping[str, str] = field(default_factory=dict)

    @property
    def cluster_not_stopped(self) -> bool:
        """The shutdown this intent records reached no node: the cluster was never stopped."""
        return not self.nodes_down and bool(self.nodes_unknown)

    def age_text(self, now: float) -> str:
        seconds = int(max(0.0, now - self.since))
        if seconds < 120:
            return f"{seconds}s ago"
        if seconds < 7200:
            return f"{seconds // 60}m ago"
        return f"{seconds // 3600}h ago"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = self.state.value
        data["nodes"] = list(self.nodes) if self.nodes is not None else None
        data["nodes_down"], data["nodes_unknown"] = dict(self.nodes_down), dict(self.nodes_unknown)
        if not self.nodes_down and not self.nodes_unknown:
            del data["nodes_down"], data["nodes_unknown"]
        return data

    @classmethod
    def from_json(cls, data: object, source: str = "intent.json") -> Intent:
        if not isinstance(data, dict):
            raise StateCorruptError(f"{source}: expected an object")
        try:
            since = float(data["since"])
            if not math.isfinite(since):
                raise ValueError(f"since is {since}")
            return cls(
                state=IntentState(data["state"]),
                since=since,
                reason=str(data.get("reason", "")),
                host=str(data.get("host", "")),
                run_id=None if data.get("run_id") is None else str(data["run_id"]),
                nodes=_nodes(data.get("nodes")),
                nodes_down=_node_map(data.get("nodes_down", {})),
                nodes_unknown=_node_map(data.get("nodes_unknown", {})),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise StateCorruptError(f"{source}: invalid intent ({exc})") from None


def _nodes(value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
        raise ValueError("nodes is not a list of node names")
    return tuple(value)


def _node_map(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ValueError(f"expected an object of node names, got {value!r}")
    return {str(k): str(v) for k, v in value.items()}


def initial_intent(now: float, host: str) -> Intent:
    return Intent(IntentState.NORMAL, now, "no intent recorded", host)


def transition(
    current: Intent,
    new: IntentState,
    *,
    now: float,
    reason: str,
    host: str,
    run_id: str | None,
    nodes: tuple[str, ...] | None = None,
    nodes_down: Mapping[str, str] | None = None,
    nodes_unknown: Mapping[str, str] | None = None,
) -> Intent:
    """The next intent, or TransitionError when the table forbids the move."""
    if new not in ALLOWED_TRANSITIONS[current.state]:
        raise TransitionError(
            f"intent cannot go from {current.state.value} to {new.value} "
            f"(set {current.age_text(now)} by {current.host or 'unknown host'}: {current.reason})"
        )
    return Intent(
        new, now, reason, host, run_id, nodes, dict(nodes_down or {}), dict(nodes_unknown or {})
    )


def age_s(intent: Intent, now: float) -> float:
    return max(0.0, now - intent.since)


def is_stale(intent: Intent, now: float, max_age_s: float) -> bool:
    """An intent older than the guard's max age no longer blocks anything."""
    return age_s(intent, now) > max_age_s


def blocks_startup(intent: Intent, now: float, max_age_s: float) -> bool:
    """A shutdown that is under way (and not stale) blocks startup. One that ended having
    stopped no node (hecate.core.node_account) is not under way: the cluster never stopped,
    and a startup only powers on and starts what needs it."""
    if intent.state is not IntentState.SHUTTING_DOWN or intent.cluster_not_stopped:
        return False
    return not is_stale(intent, now, max_age_s)
