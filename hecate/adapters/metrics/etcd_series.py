"""The etcd series (`hecate_etcd_*`), from the recorded runs at each scrape (no live probe):
the last startup's quorum verdict and the newest verified snapshot."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from hecate.adapters.metrics.exposition import Collector, Family, GaugeMetricFamily
from hecate.adapters.statedir.store import StateStore
from hecate.core.etcd import MemberState
from hecate.core.etcd_status import EtcdSummary, etcd_summary
from hecate.errors import StateError

STATES: tuple[MemberState, ...] = (
    "healthy",
    "behind",
    "unhealthy",
    "unit_not_running",
    "unreachable",
    "data_missing",
)


def etcd_families(summary: EtcdSummary) -> list[Family]:
    """Pure: the families for a summary (absent values stay absent)."""
    quorum = GaugeMetricFamily(
        "hecate_etcd_quorum",
        "1 when etcd had quorum at the last startup's etcd_quorum stage; absent before one",
    )
    members = GaugeMetricFamily(
        "hecate_etcd_members",
        "etcd members by state at the last startup's etcd_quorum stage",
        labels=["state"],
    )
    snapshot = GaugeMetricFamily(
        "hecate_etcd_snapshot_timestamp_seconds",
        "Unix time of the newest snapshot Hecate took and verified; absent before one",
    )
    if summary.quorum is not None:
        quorum.add_metric([], 1.0 if summary.quorum.get("quorum") else 0.0)
        counts = dict.fromkeys(STATES, 0)
        for member in summary.quorum.get("members", []):
            if isinstance(member, dict) and member.get("state") in counts:
                counts[member["state"]] += 1
        for state, count in counts.items():
            members.add_metric([state], float(count))
    if summary.snapshot is not None:
        snapshot.add_metric([], summary.snapshot.taken_at)
    return [quorum, members, snapshot]


class EtcdCollector(Collector):
    def __init__(self, state_dir: Path) -> None:
        self.store = StateStore(state_dir)

    def collect(self) -> Iterable[Family]:
        try:
            runs = self.store.load_runs(move=False)
        except StateError:
            runs = []
        return etcd_families(etcd_summary(runs))
