"""Metrics per power feed (issue 28): nodes, lost, nodes down, from the supervisor's state."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from hecate.adapters.metrics.exposition import render_text
from hecate.adapters.metrics.registry import Metrics
from hecate.core.supervisor import SupervisorState
from tests.unit.core.test_supervisor_feeds import _state


def test_metrics_per_feed_follow_the_supervisor(tmp_path: Path) -> None:
    state: list[SupervisorState] = [_state()]
    metrics = Metrics()
    metrics.watch_drills(tmp_path, lambda: state[0])
    text = render_text(metrics.registry).decode()
    assert 'hecate_feed_nodes{feed="A",instance="alpha"} 4' in text
    assert 'hecate_feed_nodes{feed="B",instance="beta"} 3' in text
    assert 'hecate_feed_lost{feed="B",instance="beta"} 0' in text
    state[0] = replace(state[0], lost_feeds=frozenset({"B"}), scope=("s3", "a2"))
    text = render_text(metrics.registry).decode()
    assert 'hecate_feed_lost{feed="B",instance="beta"} 1' in text
    assert 'hecate_feed_nodes_down{feed="B",instance="beta"} 2' in text
    assert 'hecate_feed_nodes_down{feed="A",instance="alpha"} 0' in text


def test_no_feed_metrics_without_power_feeds(tmp_path: Path) -> None:
    metrics = Metrics()
    metrics.watch_drills(tmp_path, SupervisorState)
    assert "hecate_feed_" not in render_text(metrics.registry).decode()
