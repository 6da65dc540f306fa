"""Load shedding's decisions (issue 28, item 3): what to shed given a listing of the workloads
the selector matches, what to restore given what is there now, and which move is due. Pure:
listings and times passed in, actions returned as data (the shell: hecate.flows.shed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from hecate.config.feeds import ShedConfig
from hecate.core.shed import ShedBlocked, ShedRecord, ShedWorkload, shed_due

# The labels Flux's controllers put on what they apply: the owner's kind, and its label prefix.
FLUX_OWNERS = (
    ("Kustomization", "kustomize.toolkit.fluxcd.io"),
    ("HelmRelease", "helm.toolkit.fluxcd.io"),
)


@dataclass(frozen=True)
class Candidate:
    """A Deployment or StatefulSet the selector matches, as listed: its labels (for its Flux
    owner) and its pod template's priority (`priority`, else `priority_class`)."""

    kind: str  # deployment | statefulset
    namespace: str
    name: str
    replicas: int
    labels: tuple[tuple[str, str], ...] = ()
    priority_class: str | None = None
    priority: int | None = None

    @property
    def label(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"


@dataclass(frozen=True)
class PriorityClassInfo:
    name: str
    value: int
    global_default: bool = False


@dataclass(frozen=True)
class Autoscaler:
    """A HorizontalPodAutoscaler and the workload it scales."""

    namespace: str
    name: str
    target_kind: str  # Deployment | StatefulSet | ...
    target_name: str

    def targets(self, c: Candidate) -> bool:
        return (
            self.namespace == c.namespace
            and self.target_name == c.name
            and self.target_kind.lower() == c.kind
        )


def flux_owner(c: Candidate) -> str | None:
    """The Flux object that applied this workload (`Kind/namespace/name`), from its labels."""
    labels = dict(c.labels)
    for kind, prefix in FLUX_OWNERS:
        name = labels.get(f"{prefix}/name")
        if name:
            return f"{kind}/{labels.get(f'{prefix}/namespace') or c.namespace}/{name}"
    return None


def pod_priority(c: Candidate, classes: Sequence[PriorityClassInfo]) -> int | None:
    """The priority its pods get, as admission gives it: the template's own, else its class's
    value, else the global default class's, else 0. None: its class does not exist."""
    if c.priority is not None:
        return c.priority
    if c.priority_class:
        found = [pc.value for pc in classes if pc.name == c.priority_class]
        return found[0] if found else None
    default = [pc.value for pc in classes if pc.global_default]
    return default[0] if default else 0


@dataclass(frozen=True)
class ShedPlan:
    """The record to write (before any change) and what was left alone, and why."""

    record: ShedRecord
    notes: tuple[str, ...] = ()


def plan_shed(
    shed: ShedConfig,
    candidates: Sequence[Candidate],
    classes: Sequence[PriorityClassInfo],
    autoscalers: Sequence[Autoscaler],
    suspended: frozenset[str],
    cordoned: frozenset[str] | None,
    *,
    now: float,
    reason: str,
    unlisted_flux: frozenset[str] = frozenset(),
    not_ready: frozenset[str] = frozenset(),
) -> ShedPlan:
    """What to shed: the listed workloads with replicas (a workload already at 0 is not
    recorded, so the restore never scales it up), below `priority_below` when it is set (an
    unknown priority class: left alone); the Flux objects owning them that are not suspended
    already (one an operator suspended is never resumed by Hecate); the HPAs targeting them;
    the agents, and which of them Hecate cordons (`cordoned`: the Nodes unschedulable now).
    Fail closed where the listing failed: a Flux object of a kind in `unlisted_flux` (whether
    someone else suspended it is unknown) is neither suspended nor recorded, so the restore
    never resumes another's suspension; with `cordoned` None (Nodes unlisted) no agent is shed,
    as which cordons are Hecate's to lift would be unknown (and a drain needs the API). An
    agent in `not_ready` (not a Ready Node now: off for maintenance, broken) is left alone, so
    the restore never powers on and starts what Hecate did not power off."""
    notes: list[str] = []
    chosen: list[Candidate] = []
    seen: set[str] = set()
    for c in sorted(candidates, key=lambda c: c.label):
        if c.label in seen:
            continue
        seen.add(c.label)
        if c.replicas <= 0:
            notes.append(f"{c.label}: already at 0 replicas, left alone")
            continue
        if shed.priority_below is not None:
            priority = pod_priority(c, classes)
            if priority is None:
                notes.append(f"{c.label}: priority class {c.priority_class!r} unknown, kept")
                continue
            if priority >= shed.priority_below:
                notes.append(f"{c.label}: priority {priority} >= {shed.priority_below}, kept")
                continue
        chosen.append(c)
    owners = sorted({o for c in chosen if (o := flux_owner(c)) is not None})
    for key in (k for k in owners if k in suspended):
        notes.append(f"{key}: suspended already (not by Hecate), left suspended")
    for key in (k for k in owners if k.split("/", 1)[0] in unlisted_flux):
        notes.append(f"{key}: its kind could not be listed, not suspended (it may scale back)")
    owners = [k for k in owners if k not in suspended and k.split("/", 1)[0] not in unlisted_flux]
    agents = tuple(a for a in shed.agents if a not in not_ready) if cordoned is not None else ()
    if shed.agents and cordoned is None:
        notes.append("Nodes could not be listed: no agent shed")
    elif down := [a for a in shed.agents if a in not_ready]:
        notes.append(f"agents not Ready now, left alone (not powered on later): {down}")
    hpas = sorted(
        {
            f"{h.namespace}/{h.name} -> {c.label}"
            for h in autoscalers
            for c in chosen
            if h.targets(c)
        }
    )
    if not chosen and shed.label_selector:
        notes.append(f"no workload with replicas matches {shed.label_selector!r}")
    record = ShedRecord(
        since=now,
        reason=reason,
        workloads=tuple(ShedWorkload(c.kind, c.namespace, c.name, c.replicas) for c in chosen),
        flux_suspended=tuple(owners),
        autoscalers=tuple(hpas),
        agents=agents,
        cordoned=tuple(a for a in agents if cordoned is not None and a not in cordoned),
    )
    return ShedPlan(record, tuple(notes))


@dataclass(frozen=True)
class RestorePlan:
    """What to put back: workloads scaled to their recorded replicas, Flux objects resumed,
    agents powered on and uncordoned; `notes`: what is left as it is, and why."""

    scale: tuple[ShedWorkload, ...]
    resume: tuple[str, ...]
    agents: tuple[str, ...]
    uncordon: tuple[str, ...]
    notes: tuple[str, ...] = ()


def plan_restore(record: ShedRecord, current: Mapping[str, int | None]) -> RestorePlan:
    """`current`: each recorded workload's replicas now (by its label; None: deleted since).
    Only a workload still at 0 is scaled back (one someone scaled since keeps their replicas;
    a deleted one is not made again); one recorded at 0 (never by Hecate) is never scaled up;
    one whose replicas could not be read is tried anyway (scaling a workload at 0 to its
    recorded replicas is what the restore is for, and a failed call keeps it recorded)."""
    notes: list[str] = []
    scale: list[ShedWorkload] = []
    for w in record.workloads:
        now = current.get(w.label, 0)
        if w.replicas <= 0:
            notes.append(f"{w.label}: recorded at 0, left at 0")
        elif w.label in current and now is None:
            notes.append(f"{w.label}: deleted since it was shed, not made again")
        elif now:
            notes.append(f"{w.label}: at {now} replicas now (changed since), left as it is")
        else:
            scale.append(w)
    return RestorePlan(
        tuple(scale), record.flux_suspended, record.agents, record.cordoned, tuple(notes)
    )


Move = Literal["shed", "carry_on", "restore"]


def shed_move(
    shed: ShedConfig,
    record: ShedRecord | ShedBlocked | None,
    *,
    on_battery_s: float | None,
    runtime_s: float | None,
    mains_stable: bool,
    startup_pending: bool,
    flow_running: bool,
    partial_in_force: bool = False,
) -> tuple[Move, str] | None:
    """The daemon's next shedding move, and why (None: nothing now). Never while a flow runs
    (a shutdown takes precedence; a startup restores a record itself), never over a record
    that could not be read (fail closed), never a second shed in one outage, never once the
    outage ended in a shutdown (a startup pending: the cluster is down); a record is
    restored once this UPS's mains is stable and no startup is pending, a shed cut short is
    carried on while still on battery. No restore while a partial shutdown is in force
    (`partial_in_force`): a shed agent may be one of its nodes, on a feed still lost; the
    partial startup, once that feed is back, comes first."""
    if flow_running or isinstance(record, ShedBlocked):
        return None
    if startup_pending:  # the cluster was shut down: nothing to shed, its startup restores
        return None
    if record is None:
        why = shed_due(shed, on_battery_s, runtime_s)
        return ("shed", why) if why else None
    if mains_stable and not partial_in_force:
        return "restore", "mains stable"
    if not record.complete and on_battery_s is not None:
        return "carry_on", "a shed cut short (a restart or a flow) is carried on from its record"
    return None
