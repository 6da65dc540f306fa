"""Embedded etcd, decided: which datastore the cluster has, whether etcd has quorum and what
each member's state is, and the order the servers start in. Pure: readings in, verdicts out
(the readings come from the servers through the etcd_probe playbook, hecate/flows/etcd.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from hecate.core.run_history import RunRecord

Datastore = Literal["etcd", "sqlite", "external", "unknown"]
MemberState = Literal[
    "healthy", "behind", "unhealthy", "unit_not_running", "unreachable", "data_missing"
]

# A member whose raft index trails the most advanced one by more than this is "behind".
BEHIND_LAG = 1000
DATA_DIR = "/var/lib/rancher/k3s/server/db/etcd"
SNAPSHOT_DIR = "/var/lib/rancher/k3s/server/db/snapshots"
# Hecate's own snapshots are named `hecate-...`; k3s's scheduled ones `etcd-snapshot-...`.
SNAPSHOT_PREFIX = "hecate"


@dataclass(frozen=True)
class EtcdReading:
    """What one server said (or that it said nothing: reachable False)."""

    node: str
    reachable: bool = True
    unit_active: bool | None = None
    data: Literal["present", "empty", "missing"] | None = None
    cluster_init: bool | None = None
    health: bool | None = None  # etcd's /health: true only while the member sees a leader
    raft_index: int | None = None
    cluster_id: str = ""
    members: tuple[str, ...] | None = None  # names in this member's member list
    error: str = ""


def parse_probe(node: str, stdout: str) -> EtcdReading:
    """The etcd_probe script's `key=value` lines (unknown keys and bad JSON: left unknown)."""
    values: dict[str, str] = {}
    for line in stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    members: tuple[str, ...] | None = None
    cluster_id = ""
    raft_index: int | None = None
    listing = _json(values.get("member_list", ""))
    if isinstance(listing, dict) and isinstance(listing.get("members"), list):
        members = tuple(str(m.get("name", "")) for m in listing["members"] if isinstance(m, dict))
        cluster_id = str(_header(listing).get("cluster_id", ""))
    status = _unlist(_json(values.get("status", "")), "Status")
    if isinstance(status, dict):
        raft_index = _int(status.get("raftIndex"))
        cluster_id = cluster_id or str(_header(status).get("cluster_id", ""))
    health = _unlist(_json(values.get("health", "")), "")
    healthy: bool | None = None
    if isinstance(health, dict):
        healthy = str(health.get("health", "")).lower() == "true"
    elif values.get("health") is not None:
        healthy = False  # no answer from etcd at all
    unit = values.get("unit")
    data = values.get("data")
    init = values.get("cluster_init")
    return EtcdReading(
        node=node,
        unit_active=None if unit is None else unit == "active",
        data=data if data in ("present", "empty", "missing") else None,  # type: ignore[arg-type]
        cluster_init=None if init is None else init == "yes",
        health=healthy,
        raft_index=raft_index,
        cluster_id=cluster_id,
        members=members,
        error=values.get("error", ""),
    )


def _json(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def _unlist(data: Any, key: str) -> Any:
    """etcdctl's `endpoint status|health -w json` answer a list of one entry per endpoint
    (status under "Status"); the HTTP gateway answers the object itself."""
    if isinstance(data, list) and data and isinstance(data[0], dict):
        return data[0].get(key) if key else data[0]
    return data


def _header(data: Mapping[str, Any]) -> Mapping[str, Any]:
    header = data.get("header")
    return header if isinstance(header, dict) else {}


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def decide_datastore(configured: str, readings: Iterable[EtcdReading]) -> Datastore:
    """`cluster.datastore` unless auto; auto: etcd when a server has an etcd data directory or
    k3s's `cluster-init`, sqlite when every server answered and none has either, else unknown
    (the etcd stages then run: reading etcd on a server without it only says so)."""
    if configured in ("etcd", "sqlite", "external"):
        return configured  # type: ignore[return-value]
    seen = list(readings)
    if any(r.data in ("present", "empty") or r.cluster_init for r in seen if r.reachable):
        return "etcd"
    if seen and all(r.reachable and r.data == "missing" for r in seen):
        return "sqlite"
    return "unknown"


def member_of(node: str, names: Iterable[str]) -> str | None:
    """The etcd member name of `node`: the node name itself (as the twin names them) or
    real k3s's `NODE-<8 hex>`."""
    for name in names:
        suffix = name.removeprefix(f"{node}-")
        if name == node or (
            suffix != name and len(suffix) == 8 and all(c in "0123456789abcdef" for c in suffix)
        ):
            return name
    return None


@dataclass(frozen=True)
class MemberReport:
    node: str
    state: MemberState
    detail: str = ""
    raft_index: int | None = None


@dataclass(frozen=True)
class QuorumVerdict:
    quorum: bool
    members: tuple[MemberReport, ...]
    needed: int
    healthy: int
    cluster_id: str = ""
    next_step: str = ""
    strangers: tuple[str, ...] = field(default_factory=tuple)  # members no configured server is

    @property
    def troubled(self) -> tuple[MemberReport, ...]:
        return tuple(m for m in self.members if m.state != "healthy")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["members"] = [asdict(m) for m in self.members]
        data["strangers"] = list(self.strangers)
        return data


_REPAIR: Mapping[MemberState, str] = {
    "unreachable": "bring the node back (power, network, SSH), then run the startup again",
    "unit_not_running": "start k3s on it (`systemctl start k3s`; `journalctl -u k3s` says why "
    "it stopped)",
    "data_missing": "its etcd data is gone: remove the member (`etcdctl member remove`) and "
    "rejoin the server empty (docs/operating/etcd.md)",
    "unhealthy": "etcd runs but has no leader: see `journalctl -u k3s` on it",
    "behind": "it is catching up; wait, or see `journalctl -u k3s` if it stays behind",
}


def _state(reading: EtcdReading | None, top_index: int | None) -> tuple[MemberState, str]:
    if reading is None or not reading.reachable:
        return "unreachable", reading.error if reading else "no answer over SSH"
    if reading.data in ("missing", "empty"):
        return "data_missing", f"{DATA_DIR} is {reading.data}"
    if reading.unit_active is False:
        return "unit_not_running", "k3s is not active"
    if not reading.health:
        return "unhealthy", reading.error or "etcd /health is not true"
    if (
        reading.raft_index is not None
        and top_index is not None
        and top_index - reading.raft_index > BEHIND_LAG
    ):
        return "behind", f"raft index {reading.raft_index}, the most advanced {top_index}"
    return "healthy", ""


def quorum_verdict(
    servers: Iterable[str],
    readings: Mapping[str, EtcdReading],
    lost_before_start: Iterable[str] = (),
) -> QuorumVerdict:
    """Each configured server's member state, and whether etcd has quorum: a member answers
    /health true (etcd says so only while a leader exists, i.e. with quorum).
    `lost_before_start`: servers whose data directory was missing or empty before k3s started
    (k3s may rejoin such a server as a new, empty member: it is still named)."""
    names = list(servers)
    lost = set(lost_before_start)
    indexes = [r.raft_index for r in readings.values() if r.raft_index is not None and r.health]
    top = max(indexes) if indexes else None
    members = tuple(
        MemberReport(node, *_state(readings.get(node), top), _index(readings.get(node)))
        for node in names
    )
    members = tuple(
        MemberReport(
            m.node,
            "data_missing",
            f"{DATA_DIR} was missing or empty before k3s started"
            + ("; it rejoined as a new member" if m.state == "healthy" else f"; now {m.state}"),
            m.raft_index,
        )
        if m.node in lost and m.state != "data_missing"
        else m
        for m in members
    )
    listed: set[str] = set()
    cluster_id = ""
    for reading in readings.values():
        if reading.members is not None and reading.health:
            listed.update(reading.members)
            cluster_id = cluster_id or reading.cluster_id
    for reading in readings.values():
        cluster_id = cluster_id or reading.cluster_id
    strangers = tuple(sorted(m for m in listed if not any(member_of(n, [m]) for n in names)))
    size = max(len(listed), len(names))
    needed = size // 2 + 1
    healthy = sum(
        1
        for m in members
        if m.state in ("healthy", "behind") or (m.node in lost and "rejoined" in m.detail)
    )
    quorum = any(r.health for r in readings.values())
    verdict = QuorumVerdict(quorum, members, needed, healthy, cluster_id, "", strangers)
    return QuorumVerdict(
        quorum, members, needed, healthy, cluster_id, next_step(verdict), strangers
    )


def _index(reading: EtcdReading | None) -> int | None:
    return reading.raft_index if reading is not None else None


def next_step(verdict: QuorumVerdict) -> str:
    troubled = verdict.troubled
    if verdict.quorum and not troubled:
        return ""
    if verdict.quorum:
        return "; ".join(f"repair {m.node}: {_REPAIR[m.state]}" for m in troubled)
    can_return = [
        m for m in troubled if m.state in ("unreachable", "unit_not_running", "unhealthy")
    ]
    kept = sum(1 for m in verdict.members if m.state != "data_missing")
    if kept >= verdict.needed and can_return:
        names = ", ".join(m.node for m in can_return)
        return (
            f"quorum needs {verdict.needed} of {len(verdict.members)} members: bring back "
            f"{names} (their data is there), then run the startup again"
        )
    lost = ", ".join(m.node for m in troubled if m.state == "data_missing")
    return (
        f"quorum cannot come back: {lost or 'too many members'} lost their etcd data. Restore "
        "from the last snapshot: `hecate recover etcd` (a dry run; then --execute)"
    )


def render_verdict(verdict: QuorumVerdict) -> list[str]:
    """The one-screen report: a line per member, then the next step."""
    head = "etcd quorum: " + (
        f"yes ({verdict.healthy} of {len(verdict.members)} healthy, {verdict.needed} needed)"
        if verdict.quorum
        else f"NO ({verdict.healthy} of {len(verdict.members)} members up, {verdict.needed} needed)"
    )
    lines = [head]
    for member in verdict.members:
        detail = f" ({member.detail})" if member.detail else ""
        lines.append(f"  {member.node:<20} {member.state}{detail}")
    for name in verdict.strangers:
        lines.append(f"  {name:<20} member of etcd but not in nodes.servers")
    if verdict.next_step:
        lines.append(f"next: {verdict.next_step}")
    return lines


def start_order(servers: Iterable[str], stopped_at: Mapping[str, float]) -> tuple[str, ...]:
    """The servers, the one whose k3s stopped last first (its etcd has the newest data);
    those without a recorded stop time keep their config order, after the others."""
    names = list(servers)
    known = sorted((n for n in names if n in stopped_at), key=lambda n: -stopped_at[n])
    return (*known, *(n for n in names if n not in stopped_at))


def stopped_at(runs: Sequence[RunRecord]) -> dict[str, float]:
    """When each server's k3s stopped, from the newest shutdown run that recorded it."""
    for run in reversed(runs):
        times = run.facts.get("node_times", {})
        if run.kind == "shutdown" and isinstance(times, dict):
            servers = times.get("stop_servers")
            if isinstance(servers, dict) and servers:
                return {str(k): float(v) for k, v in servers.items() if isinstance(v, int | float)}
    return {}
