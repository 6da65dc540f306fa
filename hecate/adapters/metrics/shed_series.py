"""Load shedding's series (issue 28): what is shed now, from the daemon's record."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from hecate.adapters.metrics.exposition import Collector, Family, GaugeMetricFamily
from hecate.core.shed import ShedBlocked, ShedRecord


class ShedCollector(Collector):
    """`hecate_shed_workloads`, `hecate_shed_agents` (0 when nothing is shed) and
    `hecate_shed_record_unreadable` (1: the record was corrupt; nothing is shed or restored
    automatically until an operator clears it)."""

    def __init__(self, record: Callable[[], ShedRecord | ShedBlocked | None]) -> None:
        self.record = record

    def collect(self) -> Iterable[Family]:
        found = self.record()
        shed = found if isinstance(found, ShedRecord) else None
        yield GaugeMetricFamily(
            "hecate_shed_workloads",
            "Workloads load shedding scaled to 0 and not yet restored",
            value=float(len(shed.workloads) if shed else 0),
        )
        yield GaugeMetricFamily(
            "hecate_shed_agents",
            "Agents load shedding powered off and not yet restored",
            value=float(len(shed.agents) if shed else 0),
        )
        yield GaugeMetricFamily(
            "hecate_shed_record_unreadable",
            "1 when the shed record was unreadable: nothing is shed or restored automatically",
            value=float(isinstance(found, ShedBlocked)),
        )
