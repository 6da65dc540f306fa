"""Metrics per power feed (issue 28), read from the daemon's supervisor state at each scrape."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from hecate.adapters.metrics.exposition import Collector, Family, GaugeMetricFamily
from hecate.core.feeds import feed_gauges
from hecate.core.supervisor import SupervisorState


class FeedCollector(Collector):
    """`hecate_feed_nodes`, `hecate_feed_lost`, `hecate_feed_nodes_down` by feed and instance;
    nothing without power.feeds."""

    def __init__(self, state: Callable[[], SupervisorState | None]) -> None:
        self.state = state

    def collect(self) -> Iterable[Family]:
        state = self.state()
        if state is None:
            return []
        gauges = feed_gauges(state.settings.feeds, state.lost_feeds, state.scope)
        if not gauges:
            return []
        labels = ["feed", "instance"]
        nodes = GaugeMetricFamily("hecate_feed_nodes", "Nodes the feed powers", labels=labels)
        lost = GaugeMetricFamily(
            "hecate_feed_lost",
            "1 while the feed's UPS has triggered and is not back",
            labels=labels,
        )
        down = GaugeMetricFamily(
            "hecate_feed_nodes_down",
            "The feed's nodes a partial shutdown stopped (0 when none is in force)",
            labels=labels,
        )
        for g in gauges:
            nodes.add_metric([g.feed, g.instance], g.nodes)
            lost.add_metric([g.feed, g.instance], 1.0 if g.lost else 0.0)
            down.add_metric([g.feed, g.instance], g.down)
        return [nodes, lost, down]
