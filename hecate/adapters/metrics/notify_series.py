"""The notification series: messages by target and result, and the spool's depth."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from hecate.adapters.metrics.exposition import (
    Collector,
    CollectorRegistry,
    Counter,
    Family,
    GaugeMetricFamily,
)

RESULTS = ("sent", "failed", "dropped")


class SpoolDepthCollector(Collector):
    def __init__(self, depth: Callable[[], int]) -> None:
        self.depth = depth

    def collect(self) -> Iterable[Family]:
        yield GaugeMetricFamily(
            "hecate_notify_spool_messages",
            "Notification messages spooled in the state dir, waiting to be sent",
            value=float(self.depth()),
        )


class NotifySeries:
    """`hecate_notifications_total{target,result}` (the target by its name, never its URL),
    every target at 0 from the start, and the spool's depth."""

    def __init__(
        self, registry: CollectorRegistry, targets: Sequence[str], depth: Callable[[], int]
    ) -> None:
        self.total = Counter(
            "hecate_notifications",
            "Notification messages by target and result (sent, failed attempt, dropped)",
            ["target", "result"],
            registry=registry,
        )
        for target in targets:
            for result in RESULTS:
                self.total.labels(target, result)
        registry.register(SpoolDepthCollector(depth))

    def count(self, target: str, result: str) -> None:
        self.total.labels(target, result).inc()
