"""What the recorded runs say of etcd, for `hecate status`, the metrics and doctor: the last
quorum verdict and the newest verified snapshot. Pure: from the run records (no live probe)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hecate.core.run_history import RunRecord


@dataclass(frozen=True)
class RecordedSnapshot:
    """A snapshot Hecate took and verified (recorded in a shutdown run)."""

    name: str
    node: str
    path: str
    taken_at: float
    cluster_id: str = ""
    run_id: str = ""


def latest(recorded: Sequence[RecordedSnapshot]) -> RecordedSnapshot | None:
    return max(recorded, key=lambda s: s.taken_at, default=None)


def recorded_snapshots(runs_facts: Iterable[Mapping[str, Any]]) -> list[RecordedSnapshot]:
    """The verified snapshots in the runs' facts (runs.json `facts.etcd_snapshot`)."""
    found: list[RecordedSnapshot] = []
    for facts in runs_facts:
        snap = facts.get("etcd_snapshot")
        if not isinstance(snap, dict) or not snap.get("verified") or not snap.get("path"):
            continue
        try:
            found.append(
                RecordedSnapshot(
                    name=str(snap.get("name", "")),
                    node=str(snap["node"]),
                    path=str(snap["path"]),
                    taken_at=float(snap["taken_at"]),
                    cluster_id=str(snap.get("cluster_id", "")),
                    run_id=str(snap.get("run_id", "")),
                )
            )
        except (KeyError, TypeError, ValueError, OverflowError):  # float() of a 400-digit int
            continue
    return found


@dataclass(frozen=True)
class EtcdSummary:
    quorum: dict[str, Any] | None  # the last recorded verdict (QuorumVerdict.to_json())
    quorum_at: float | None  # when the run that recorded it ended
    snapshot: RecordedSnapshot | None

    def to_json(self, now: float) -> dict[str, Any]:
        snap = self.snapshot
        return {
            "quorum": self.quorum,
            "quorum_checked_at": self.quorum_at,
            "snapshot": None
            if snap is None
            else {
                "name": snap.name,
                "node": snap.node,
                "path": snap.path,
                "taken_at": snap.taken_at,
                "age_s": round(now - snap.taken_at, 1),
            },
        }

    def lines(self, now: float) -> list[str]:
        out: list[str] = []
        if self.quorum is not None:
            members = self.quorum.get("members", [])
            troubled = [
                f"{m.get('node')} {m.get('state')}"
                for m in members
                if isinstance(m, dict) and m.get("state") != "healthy"
            ]
            age = f" {(now - self.quorum_at) / 3600:.1f} h ago" if self.quorum_at else ""
            out.append(
                f"etcd:    quorum {'yes' if self.quorum.get('quorum') else 'NO'} at the last "
                f"startup{age}" + (f"; {', '.join(troubled)}" if troubled else "")
            )
        if self.snapshot is not None:
            snap = self.snapshot
            out.append(
                f"etcd:    last snapshot {snap.path} on {snap.node}, "
                f"{(now - snap.taken_at) / 3600:.1f} h old"
            )
        return out


def etcd_summary(runs: Sequence[RunRecord]) -> EtcdSummary:
    verdict: dict[str, Any] | None = None
    when: float | None = None
    for run in reversed(runs):
        found = run.facts.get("etcd_quorum")
        if isinstance(found, dict):
            verdict, when = found, run.ended_at
            break
    snapshots = recorded_snapshots(run.facts for run in runs)
    return EtcdSummary(verdict, when, latest(snapshots))
