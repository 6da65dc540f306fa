"""Load shedding on battery (issue 28, item 3): when it is due, and the record of what was
changed so that it is restored exactly. Pure: times and readings passed in.

The record (`state_dir/shed.json`) is written before the changes it names are made, so a
crash leaves a record; the decisions over it are in hecate.core.shed_plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from hecate.errors import StateCorruptError

if TYPE_CHECKING:
    from hecate.config.feeds import ShedConfig
    from hecate.config.view import ShedView


def shed_configured(shed: ShedConfig | ShedView) -> bool:
    """Whether anything may be shed at all (a selector or agents)."""
    return bool(shed.label_selector or shed.agents)


def shed_due(shed: ShedConfig, on_battery_s: float | None, runtime_s: float | None) -> str | None:
    """Why shedding is due now (None: it is not, or nothing is configured to shed).
    `on_battery_s`: how long this outage has lasted (None: on mains); `runtime_s`: the UPS's
    runtime (None: unknown, which never triggers shedding by runtime)."""
    if on_battery_s is None or not shed_configured(shed):
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

    @property
    def label(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"


@dataclass(frozen=True)
class ShedRecord:
    """What shedding changed: workloads scaled down, Flux objects suspended so they do not
    scale them back (`Kind/namespace/name`; only those Hecate suspended), HorizontalPodAutoscalers
    named (`namespace/name -> kind/target`: an HPA does not scale a target at 0, so they are
    left alone), agents drained and powered off (`cordoned`: those Hecate cordoned, the only
    ones uncordoned again). `complete`: every change was made (False: a shed that a crash or
    a shutdown cut short; on battery it is carried on from the record). Kept in the state
    directory until restored."""

    since: float
    reason: str
    workloads: tuple[ShedWorkload, ...] = ()
    flux_suspended: tuple[str, ...] = ()
    autoscalers: tuple[str, ...] = ()
    agents: tuple[str, ...] = field(default_factory=tuple)
    cordoned: tuple[str, ...] = ()
    complete: bool = False

    def done(self) -> ShedRecord:
        return replace(self, complete=True)

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
            "cordoned": list(self.cordoned),
            "complete": self.complete,
        }

    @classmethod
    def from_json(cls, data: object, source: str = "shed.json") -> ShedRecord:
        if not isinstance(data, dict):
            raise StateCorruptError(f"{source}: expected an object")
        try:
            workloads = data.get("workloads", [])
            if not isinstance(workloads, list):
                raise ValueError("workloads: expected a list")
            complete = data.get("complete", False)
            if not isinstance(complete, bool):
                raise ValueError(f"complete {complete!r}")
            return cls(
                since=float(data["since"]),
                reason=str(data.get("reason", "")),
                workloads=tuple(_workload(w) for w in workloads),
                flux_suspended=_names(data.get("flux_suspended", [])),
                autoscalers=_names(data.get("autoscalers", [])),
                agents=_names(data.get("agents", [])),
                cordoned=_names(data.get("cordoned", [])),
                complete=complete,
            )
        except (KeyError, TypeError, ValueError, OverflowError) as exc:  # float(10**400)
            raise StateCorruptError(f"{source}: invalid shed record ({exc})") from None


@dataclass(frozen=True)
class ShedBlocked:
    """The record was unreadable: what was shed is unknown. Fail closed: nothing is shed or
    restored automatically until an operator restores by hand (from `kept`, the set-aside
    file) and removes `state_dir/shed.json`."""

    since: float
    kept: str
    problem: str

    def to_json(self) -> dict[str, Any]:
        return {"blocked": {"since": self.since, "kept": self.kept, "problem": self.problem}}


def parse_shed_file(data: object, source: str = "shed.json") -> ShedRecord | ShedBlocked:
    """The state file's content: a record, or the marker a corrupt record left."""
    if isinstance(data, dict) and "blocked" in data:
        blocked = data["blocked"]
        if not isinstance(blocked, dict):
            raise StateCorruptError(f"{source}: blocked: expected an object")
        try:
            return ShedBlocked(
                float(blocked["since"]), str(blocked["kept"]), str(blocked["problem"])
            )
        except (KeyError, TypeError, ValueError, OverflowError) as exc:  # float(10**400)
            raise StateCorruptError(f"{source}: invalid blocked marker ({exc})") from None
    return ShedRecord.from_json(data, source)


def _workload(value: object) -> ShedWorkload:
    if not isinstance(value, dict):
        raise ValueError("a workload: expected an object")
    name, namespace = value["name"], value["namespace"]
    if not isinstance(name, str) or not isinstance(namespace, str) or not name or not namespace:
        raise ValueError("a workload's namespace and name: expected names")
    return ShedWorkload(_kind(value["kind"]), namespace, name, _count(value["replicas"]))


def _kind(value: object) -> str:
    if value not in ("deployment", "statefulset"):
        raise ValueError(f"kind {value!r}")
    return str(value)


def _count(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"replicas {value!r}")
    return value


def _names(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError("expected a list of names")
    return tuple(value)
