"""What a flow needs from the outside world, as small typed ports; a stage while it runs."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from hecate.adapters.ansible.events import TaskEvent
from hecate.adapters.ansible.inventory import node_problems
from hecate.adapters.ansible.protocol import Ansible, PlaybookRequest, PlaybookResult
from hecate.adapters.statedir.store import StateStore
from hecate.config.model import HecateConfig
from hecate.core.node_account import short_cause
from hecate.core.plans import StageStatus
from hecate.core.progress_names import node_line
from hecate.core.readings import Poll
from hecate.core.run_history import StageRecord
from hecate.core.shed_plan import Autoscaler, Candidate, PriorityClassInfo
from hecate.errors import HecateError

if TYPE_CHECKING:  # annotations only: the idle daemon does not load lightkube (issue 16)
    from hecate.adapters.kube.types import (
        FluxKind,
        FluxObject,
        NodeInfo,
        PodRef,
        Readiness,
        StorageKind,
        VolumeAttachmentInfo,
        WorkloadInfo,
        WorkloadKind,
    )
    from hecate.adapters.power.port import PowerPort


class FlowAbortedError(HecateError):
    """The flow was asked to stop (e.g. a new outage during startup)."""


class KubeApi(Protocol):
    """The Kubernetes calls the flows make (hecate.adapters.kube.client.Kube implements it).

    `available` is False when no client could be made (`reason` says why): the port says so
    itself, callers never check its type.
    """

    @property
    def available(self) -> bool: ...
    @property
    def reason(self) -> str: ...
    def readyz(self) -> bool: ...
    def nodes(self) -> list[NodeInfo]: ...
    def set_unschedulable(self, node: str, value: bool) -> None: ...
    def pods_on_node(self, node: str) -> list[PodRef]: ...
    def evict(self, pod: PodRef) -> None: ...
    def delete_pod(self, pod: PodRef, *, grace_s: int = 0) -> None: ...
    def workload(self, kind: WorkloadKind, namespace: str, name: str) -> WorkloadInfo: ...
    def scale(self, kind: WorkloadKind, namespace: str, name: str, replicas: int) -> None: ...
    def flux_objects(self, kind: FluxKind) -> list[FluxObject]: ...
    def flux_object(self, kind: FluxKind, namespace: str, name: str) -> FluxObject: ...
    def set_suspend(self, kind: FluxKind, namespace: str, name: str, suspend: bool) -> None: ...
    def request_reconcile(self, kind: FluxKind, namespace: str, name: str, at: str) -> None: ...
    def set_git_branch(self, namespace: str, name: str, branch: str) -> None: ...
    def apply(self, manifest: dict[str, Any]) -> str: ...
    def live_manifest(self, manifest: dict[str, Any]) -> dict[str, Any]: ...
    def readiness(self, kind: StorageKind, namespace: str, name: str) -> Readiness: ...
    def volume_attachments(self) -> list[VolumeAttachmentInfo]: ...
    # load shedding (issue 28)
    def shed_candidates(self, selector: str) -> list[Candidate]: ...
    def priority_classes(self) -> list[PriorityClassInfo]: ...
    def autoscalers(self) -> list[Autoscaler]: ...


ProgressFn = Callable[[str, str, str], None]  # (stage, status, detail)


def no_progress(stage: str, status: str, detail: str) -> None:
    """The default progress sink: silent."""


@dataclass
class FlowContext:
    config: HecateConfig
    ansible: Ansible
    kube: KubeApi
    store: StateStore
    read_ups: Callable[[], Poll] | None = None
    # Host-level power actions outside the cluster (None: not available here).
    ups_command: Callable[[str], None] | None = None
    poweroff_local: Callable[[], None] | None = None
    # Out-of-band power (issue 25) and whether a node's SSH answers, with what was seen
    # (None: not available here; the power stages are skipped).
    power: PowerPort | None = None
    node_answers: Callable[[str], tuple[bool, str]] | None = None
    progress: ProgressFn = no_progress
    cancel: threading.Event = field(default_factory=threading.Event)
    # The clock port: wall time stamps intents, runs and reports; every duration and deadline
    # (stage durations, waits) is on the monotonic clock, so a wall-clock step changes none.
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic


# What a stage's code may set; the recorder turns it into a StageStatus.
StatusName = Literal["ok", "partial", "failed", "skipped", "warning"]


@dataclass
class StageResult:
    name: str
    status: StageStatus
    duration_s: float
    detail: str = ""
    nodes: dict[str, str] = field(default_factory=dict)  # node -> ok | unreachable | failed
    causes: dict[str, str] = field(default_factory=dict)  # node -> why it was not ok
    facts: dict[str, Any] = field(default_factory=dict)  # into the run's facts (RunRecord)
    node_times: dict[str, float] = field(default_factory=dict)  # node -> when it finished

    def record(self) -> StageRecord:
        return StageRecord(self.name, round(self.duration_s, 3), self.status.value, self.detail)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status.value,
            "duration_s": round(self.duration_s, 3),
            "detail": self.detail,
            "nodes": self.nodes,
        } | ({"causes": self.causes} if self.causes else {})


@dataclass
class Stage:
    """Mutable while a stage runs; the recorder turns it into a StageResult."""

    name: str
    status: StageStatus | StatusName = StageStatus.OK
    detail: str = ""
    nodes: dict[str, str] = field(default_factory=dict)
    causes: dict[str, str] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    node_times: dict[str, float] = field(default_factory=dict)

    def note(self, text: str) -> None:
        self.detail = f"{self.detail}; {text}" if self.detail else text

    def cause(self, event: TaskEvent) -> None:
        """Keep a host's first failure or unreachability message (judged by the event's
        per-host status, never by a playbook's output)."""
        if event.status in ("failed", "unreachable") and event.message:
            self.causes.setdefault(event.host, short_cause(event.message))


def new_run_id(kind: str, now: float) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    return f"{kind}-{stamp}-{uuid.uuid4().hex[:6]}"


def apply_playbook_result(stage: Stage, result: PlaybookResult, nodes: list[str]) -> None:
    """Per-node outcome from the runner's stats; a stage with any bad node is partial."""
    for timing in result.tasks:  # when each node's last task ended (wall clock)
        if timing.end is not None and timing.host in nodes and timing.status in ("ok", "changed"):
            stage.node_times[timing.host] = timing.end.timestamp()
    for node in nodes:
        stats = result.hosts.get(node)
        if stats is None:
            stage.nodes[node] = "ok" if result.ok else "unknown"
        elif stats.unreachable:
            stage.nodes[node] = "unreachable"
        elif stats.failed:
            stage.nodes[node] = "failed"
        else:
            stage.nodes[node] = "ok"
    bad = sorted(n for n, s in stage.nodes.items() if s != "ok")
    if result.timed_out:
        stage.status = "failed"
        stage.note(result.detail or f"timed out after {result.duration_s:.0f}s")
    elif bad:
        stage.status = "partial"
        stage.note(", ".join(f"{n} {stage.nodes[n]}" for n in bad))
        if result.detail:  # why, when the port knows (a stage that could not start, say)
            stage.note(result.detail)


def run_playbook(
    ctx: FlowContext,
    stage: Stage,
    playbook: str,
    nodes: list[str],
    *,
    timeout_s: float,
    listen: Callable[[TaskEvent], None] | None = None,
    **extravars: Any,
) -> PlaybookResult:
    """Run one stage's playbook; `timeout_s` bounds the whole run (the role's own waits plus
    a margin for connecting)."""
    problems = node_problems(ctx.config)
    broken = [n for n in nodes if n in problems]
    usable = [n for n in nodes if n not in problems]
    if not usable:
        result = PlaybookResult(
            playbook, "failed", 1, {}, 0.0, [], None, limit=(), detail="no usable node"
        )
        _mark_broken(stage, broken, problems)
        stage.status = "failed"
        return result
    request = PlaybookRequest(playbook, limit=usable, extravars=extravars, timeout_s=timeout_s)

    def on_event(event: TaskEvent) -> None:
        stage.cause(event)
        if listen is not None:
            listen(event)
        if event.status in ("ok", "changed", "failed", "unreachable"):
            ctx.progress(
                stage.name,
                event.status,
                node_line(stage.name, event.host, event.task, event.status),
            )

    result = ctx.ansible.run(request, on_event=on_event, cancel=ctx.cancel)
    if result.canceled:
        raise FlowAbortedError(f"{playbook} was cancelled")
    apply_playbook_result(stage, result, usable)
    _mark_broken(stage, broken, problems)
    return result


@dataclass(frozen=True)
class PlaybookStep:
    """A stage that is one playbook run on the stage's nodes and nothing else. Consecutive
    stages of this kind need no decision from Python between them, so the runner runs them as
    one ansible-playbook (:func:`run_playbook_batch`); alone, it is :func:`run_playbook`."""

    playbook: str
    timeout_s: float  # bounds this stage's share of the run (see run_playbook)
    extravars: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class BatchEntry:
    """One stage of a batch while it runs."""

    stage: Stage
    nodes: list[str]
    step: PlaybookStep


def batch_requests(
    config: HecateConfig, entries: Sequence[BatchEntry]
) -> tuple[list[BatchEntry], list[PlaybookRequest]]:
    """The entries that have a usable node, and the batch's requests (one each, in order):
    what :func:`run_playbook_batch` runs, and what the runner may start ahead."""
    problems = node_problems(config)
    requests: list[PlaybookRequest] = []
    owners: list[BatchEntry] = []
    for entry in entries:
        usable = [n for n in entry.nodes if n not in problems]
        if not usable:
            continue
        owners.append(entry)
        requests.append(
            PlaybookRequest(
                entry.step.playbook,
                limit=usable,
                extravars=dict(entry.step.extravars),
                timeout_s=entry.step.timeout_s,
            )
        )
    return owners, requests


def run_playbook_batch(
    ctx: FlowContext,
    entries: Sequence[BatchEntry],
    on_stage_start: Callable[[str], None] | None = None,
) -> list[PlaybookResult | None]:
    """Run several PlaybookStep stages as one batch (`Ansible.run_batch`); each stage's
    result is its own share of the run's events, as if it had run alone. Returns each entry's
    result (None: no usable node, nothing ran; the stage is marked failed). Nothing is applied
    to the stages here: :func:`apply_batch_result` does that, in order, so a cancelled batch
    keeps what its finished stages did. `on_stage_start` is told a stage's name when its first
    event arrives."""
    owners, requests = batch_requests(ctx.config, entries)
    running: set[int] = set()

    def on_event(event: TaskEvent) -> None:
        if event.stage is None or not 0 <= event.stage < len(owners):
            return
        owner = owners[event.stage].stage
        owner.cause(event)
        name = owner.name
        if event.stage not in running:
            running.add(event.stage)
            if on_stage_start is not None:
                on_stage_start(name)
        if event.status in ("ok", "changed", "failed", "unreachable"):
            ctx.progress(name, event.status, node_line(name, event.host, event.task, event.status))

    results = (
        ctx.ansible.run_batch(requests, on_event=on_event, cancel=ctx.cancel) if owners else []
    )
    by_entry = {id(e): r for e, r in zip(owners, results, strict=True)}
    return [by_entry.get(id(entry)) for entry in entries]


def apply_batch_result(ctx: FlowContext, entry: BatchEntry, result: PlaybookResult | None) -> None:
    """One batched stage's outcome, as run_playbook would have made it; a cancelled stage
    raises FlowAbortedError (the stages before it keep theirs)."""
    problems = node_problems(ctx.config)
    broken = [n for n in entry.nodes if n in problems]
    if result is None:
        _mark_broken(entry.stage, broken, problems)
        entry.stage.status = "failed"
        return
    if result.canceled:
        raise FlowAbortedError(f"{entry.step.playbook} was cancelled")
    apply_playbook_result(entry.stage, result, [n for n in entry.nodes if n not in problems])
    _mark_broken(entry.stage, broken, problems)


def _mark_broken(stage: Stage, broken: list[str], problems: dict[str, str]) -> None:
    """Nodes the inventory left out: failed, the stage partial; the others ran regardless."""
    for node in broken:
        stage.nodes[node] = "failed"
        stage.note(f"{node}: {problems[node]}")
    if broken and stage.status == "ok":
        stage.status = "partial"


def wait_until(
    ctx: FlowContext, check: Callable[[], bool], timeout_s: float, interval_s: float = 0.25
) -> bool:
    """Poll `check` until it is true or `timeout_s` passes; honours cancellation."""
    deadline = ctx.monotonic() + timeout_s
    while True:
        if ctx.cancel.is_set():
            raise FlowAbortedError("stopped while waiting")
        if check():
            return True
        left = deadline - ctx.monotonic()
        if left <= 0:
            return False
        ctx.sleep(min(interval_s, left))


def check_cancel(ctx: FlowContext) -> None:
    """Raise FlowAbortedError when the flow was asked to stop (call it inside long loops)."""
    if ctx.cancel.is_set():
        raise FlowAbortedError("stopped on request")
