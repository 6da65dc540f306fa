"""`hecate recover etcd`, decided: which snapshot, which server, whether it may run, and the
steps of k3s's documented cluster reset from a snapshot, as data. The printed plan is the
executed plan (hecate/flows/recover_etcd.py walks these steps and records each one).
Pure: what was read from the servers and the state directory comes in, with the time.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

from hecate.core.etcd import DATA_DIR, QuorumVerdict
from hecate.core.etcd_status import RecordedSnapshot, latest

StepKind = Literal["stop_all", "reset", "move_aside", "start_first", "start_rest", "quorum"]


@dataclass(frozen=True)
class SnapshotFacts:
    """What the chosen server says of the snapshot file and of its token."""

    exists: bool
    size: int = 0
    mtime: float | None = None
    readable: bool = False
    token: bool = False  # the server token file exists and is not empty
    error: str = ""


@dataclass(frozen=True)
class RecoverStep:
    kind: StepKind
    nodes: tuple[str, ...]
    text: str


@dataclass(frozen=True)
class RecoverPlan:
    server: str
    snapshot: str
    moved_to: str  # where the other servers' etcd data goes (never deleted)
    steps: tuple[RecoverStep, ...]
    refusals: tuple[str, ...] = ()  # why it may not run (empty: it may)
    warnings: tuple[str, ...] = ()  # what --force let through
    snapshot_record: RecordedSnapshot | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["steps"] = [asdict(s) for s in self.steps]
        return data


@dataclass(frozen=True)
class RecoverRequest:
    snapshot: str | None  # PATH on the server, "latest" or None (latest)
    server: str | None
    force: bool = False


# What Ansible would evaluate in an extra var (a Jinja template runs on the controller: an
# argument holding one is refused, never sent; the shell quoting on the node does not cover it).
TEMPLATE_MARKS = ("{{", "{%", "{#")


def template_in(text: str) -> bool:
    return any(mark in text for mark in TEMPLATE_MARKS)


def choose(
    request: RecoverRequest, recorded: Sequence[RecordedSnapshot], servers: Sequence[str]
) -> tuple[str, str, RecordedSnapshot | None, list[str]]:
    """(server, snapshot path, its record or None, refusals) for the request."""
    refusals: list[str] = []
    record: RecordedSnapshot | None = None
    if request.snapshot in (None, "latest"):
        record = latest(recorded)
        if record is None:
            refusals.append(
                "no snapshot recorded by Hecate: name one with --snapshot PATH (on the server "
                "given by --server) and --force"
            )
            return (request.server or (servers[0] if servers else "")), "", None, refusals
        path = record.path
    else:
        path = str(request.snapshot)
        record = next((s for s in recorded if s.path == path), None)
    if template_in(path):
        refusals.append("the snapshot path holds '{{', '{%' or '{#' (Ansible would run it)")
    server = request.server or (record.node if record else (servers[0] if servers else ""))
    if server not in servers:
        refusals.append(f"--server {server!r} is not one of nodes.servers ({', '.join(servers)})")
    if record is not None and record.node != server:
        refusals.append(
            f"{path} was taken on {record.node}, not {server}: give --server {record.node} "
            "(or copy the file there)"
        )
    return server, path, record, refusals


def plan_recovery(
    request: RecoverRequest,
    *,
    servers: Sequence[str],
    recorded: Sequence[RecordedSnapshot],
    verdict: QuorumVerdict | None,
    facts: SnapshotFacts | None,
    cluster_id: str,
    max_age_s: float,
    now: float,
) -> RecoverPlan:
    """The steps, and why they may not run. Refusals that --force lifts become warnings;
    a healthy quorum, a missing or unreadable snapshot, a missing token never are lifted."""
    server, path, record, refusals = choose(request, recorded, servers)
    forceable: list[str] = []
    if verdict is not None and verdict.quorum:
        refusals.append(
            "etcd has a healthy quorum: a restore would throw away everything written since "
            "the snapshot. Repair members instead (see `hecate startup` / docs/operating/etcd.md)"
        )
    if facts is None:
        refusals.append(f"{server} could not be read (is it reachable over SSH?)")
    else:
        if not facts.exists:
            refusals.append(f"snapshot {path} does not exist on {server}")
        elif not facts.readable or facts.size <= 0:
            refusals.append(
                f"snapshot {path} on {server} is not readable or empty"
                + (f" ({facts.error})" if facts.error else "")
            )
        if not facts.token:
            refusals.append(
                f"the k3s server token is missing on {server}: k3s needs it to restore a "
                "snapshot; put the cluster's token (from another server's "
                "/var/lib/rancher/k3s/server/token, or your records) there first"
            )
        taken = record.taken_at if record else facts.mtime
        if taken is not None and now - taken > max_age_s:
            forceable.append(
                f"snapshot {path} is {(now - taken) / 3600:.1f} h old "
                f"(recover.max_snapshot_age_seconds={max_age_s:g})"
            )
    if path and record is None:
        forceable.append(f"snapshot {path} was not recorded by Hecate for this cluster")
    elif (
        record is not None and cluster_id and record.cluster_id and record.cluster_id != cluster_id
    ):
        forceable.append(
            f"snapshot {path} is of another cluster (its etcd cluster id {record.cluster_id}, "
            f"this cluster's {cluster_id})"
        )
    if request.force:
        warnings = tuple(f"--force: {text}" for text in forceable)
    else:
        refusals += [f"{text}; --force to use it anyway" for text in forceable]
        warnings = ()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    moved_to = f"{DATA_DIR}-old-{stamp}"
    others = tuple(s for s in servers if s != server)
    steps = (
        RecoverStep("stop_all", tuple(servers), "stop k3s on every server"),
        RecoverStep(
            "reset",
            (server,),
            f"on {server}: k3s server --cluster-reset --cluster-reset-restore-path={path} "
            "--token-file <the server token file> (etcd reset to a one-member cluster from the "
            "snapshot)",
        ),
        RecoverStep(
            "move_aside",
            others,
            f"on {', '.join(others) or 'no other server'}: move {DATA_DIR} to {moved_to} "
            "(kept, never deleted)",
        ),
        RecoverStep("start_first", (server,), f"start k3s on {server}"),
        RecoverStep("start_rest", others, "start k3s on the other servers: they rejoin empty"),
        RecoverStep("quorum", tuple(servers), "wait for etcd quorum (etcd_quorum)"),
    )
    return RecoverPlan(server, path, moved_to, steps, tuple(refusals), warnings, record)


@dataclass
class RecoveryRecord:
    """etcd-recovery.json: the plan being carried out and the steps done, so a second run
    finishes an interrupted one (or says exactly where it stopped)."""

    plan: dict[str, Any]
    started_at: float
    done: list[str] = field(default_factory=list)
    finished_at: float | None = None
    outcome: str = "running"
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: object) -> RecoveryRecord:
        if not isinstance(data, dict) or not isinstance(data.get("plan"), dict):
            raise ValueError("expected an object with a plan")
        return cls(
            plan=data["plan"],
            started_at=float(data["started_at"]),
            done=[str(d) for d in data.get("done", [])],
            finished_at=None if data.get("finished_at") is None else float(data["finished_at"]),
            outcome=str(data.get("outcome", "running")),
            detail=str(data.get("detail", "")),
        )

    @property
    def unfinished(self) -> bool:
        return self.outcome != "success"

    def describe(self) -> str:
        steps = [str(s.get("kind")) for s in self.plan.get("steps", []) if isinstance(s, dict)]
        left = [s for s in steps if s not in self.done]
        return (
            f"a recovery from {self.plan.get('snapshot')} on {self.plan.get('server')} stopped "
            f"({self.outcome}{': ' + self.detail if self.detail else ''}) after "
            f"{', '.join(self.done) or 'no step'}; left: {', '.join(left) or 'nothing'}; the "
            f"other servers' etcd data is (or goes) in {self.plan.get('moved_to')}"
        )


STEP_KINDS: frozenset[str] = frozenset(get_args(StepKind))


def resume_plan(record: RecoveryRecord) -> RecoverPlan:
    """The recorded plan, to finish it (its steps already done are skipped by the flow).
    Raises ValueError for anything but a plan this module wrote: a damaged record is never
    guessed at (it would reset or move data on the wrong server, or to an empty path)."""
    plan = record.plan
    texts = [plan.get(k) for k in ("server", "snapshot", "moved_to")]
    if not all(isinstance(t, str) and t for t in texts):
        raise ValueError("the plan's server, snapshot or moved_to is missing or not text")
    raw = plan.get("steps")
    if not isinstance(raw, list) or not raw:
        raise ValueError("the plan has no list of steps")
    steps = []
    for s in raw:
        if not isinstance(s, dict) or s.get("kind") not in STEP_KINDS:
            raise ValueError(f"a step that is not one of {sorted(STEP_KINDS)}")
        nodes, text = s.get("nodes"), s.get("text")
        if not isinstance(nodes, list) or not all(isinstance(n, str) and n for n in nodes):
            raise ValueError(f"step {s['kind']}: its nodes are not a list of names")
        if not isinstance(text, str):
            raise ValueError(f"step {s['kind']}: its text is missing")
        steps.append(RecoverStep(s["kind"], tuple(nodes), text))
    server, snapshot, moved_to = (str(t) for t in texts)
    return RecoverPlan(server, snapshot, moved_to, tuple(steps))
