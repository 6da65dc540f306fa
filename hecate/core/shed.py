"""Load shedding on battery (issue 28, item 3): when it is due, and the record of what was
changed so that it is restored exactly. Pure: times and readings passed in.

Not wired yet: the daemon does not call these (see docs/operating/power-feeds.md, "Not yet").
The record's shape is fixed here so that the shell that sheds and the startup that restores
read one format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hecate.config.feeds import ShedConfig
from hecate.errors import StateCorruptError


def shed_due(shed: ShedConfig, on_battery_s: float | None, runtime_s: float | None) -> str | None:
    """Why shedding is due now (None: it is not, or nothing is configured to shed).
    `on_battery_s`: how long this outage has lasted (None: on mains); `runtime_s`: the UPS's
    runtime (None: unknown, which never triggers shedding by runtime)."""
    if on_battery_s is None or not (shed.label_selector or shed.agents):
        return None
    if shed.after_seconds is not None and on_battery_s >= shed.after_seconds:
        return f"{on_battery_s:.0f}s on battery >= power.shed.after_seconds {shed.after_seconds:g}"
    below = shed.below_runtime_seconds
    if below is not None and runtime_s is not None and runtime_s < below:
        return f"runtime {runtime_s:.0f}s < power.shed.below_runtime_seconds {below:g}"
    return None


@dataclass(frozen=True)
class ShedWorkload:
    """A workload scaled to zero, and its replicas before (restored to exactly that)."""

    kind: str  # deployment | statefulset
    namespace: str
    name: str
    replicas: int


@dataclass(frozen=True)
class ShedRecord:
    """What shedding changed: workloads scaled down, Flux objects suspended so they do not
    scale them back, HorizontalPodAutoscalers named (their owners' to undo), agents powered
    off. Kept in the state directory until restored."""

    since: float
    reason: str
    workloads: tuple[ShedWorkload, ...] = ()
    flux_suspended: tuple[str, ...] = ()
    autoscalers: tuple[str, ...] = ()
    agents: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "reason": self.reason,
            "workloads": [
                {"kind": w.kind, "namespace": w.namespace, "name": w.name, "replicas": w.replicas}
                for w in self.workloads
            ],
            "flux_suspended": list(self.flux_suspended),
            "autoscalers": list(self.autoscalers),
            "agents": list(self.agents),
        }

    @classmethod
    def from_json(cls, data: object, source: str = "shed.json") -> ShedRecord:
        if not isinstance(data, dict):
            raise StateCorruptError(f"{source}: expected an object")
        try:
            workloads = tuple(
                ShedWorkload(
                    _kind(w["kind"]), str(w["namespace"]), str(w["name"]), _count(w["replicas"])
                )
                for w in data.get("workloads", [])
            )
            return cls(
                since=float(data["since"]),
                reason=str(data.get("reason", "")),
                workloads=workloads,
                flux_suspended=_names(data.get("flux_suspended", [])),
                autoscalers=_names(data.get("autoscalers", [])),
                agents=_names(data.get("agents", [])),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StateCorruptError(f"{source}: invalid shed record ({exc})") from None


def _kind(value: object) -> str:
    if value not in ("deployment", "statefulset"):
        raise ValueError(f"kind {value!r}")
    return str(value)


def _count(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"replicas {value!r}")
    return value


def _names(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("expected a list of names")
    return tuple(value)
