"""`power.feeds`, `power.node_feeds`, `power.partial_policy`, `power.min_agents`, `power.shed`
(issue 28): checked at the boundary, every error naming its key path."""

from __future__ import annotations

from typing import Any

import pytest

from hecate.config.model import parse_config
from hecate.errors import ConfigError

NODE_FEEDS = {"s1": ["A"], "s2": ["A"], "s3": ["B"], "a1": ["A"], "a2": ["B"], "a3": ["A", "B"]}


def _data(**power: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "feeds": {"A": {"instance": "alpha"}, "B": {"instance": "beta"}},
        "node_feeds": NODE_FEEDS,
    }
    return {
        "ups": {"target": "ups@127.0.0.1"},
        "nodes": {"servers": ["s1", "s2", "s3"], "agents": ["a1", "a2", "a3"]},
        "power": {**base, **power},
    }


def _problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    return caught.value.problems


def test_defaults_and_a_full_example() -> None:
    config = parse_config(
        _data(
            partial_policy="always",
            min_agents=2,
            shed={
                "after_seconds": 60,
                "below_runtime_seconds": 600,
                "label_selector": "hecate.dev/shed=true",
                "priority_below": 1000,
                "agents": ["a3"],
            },
        )
    )
    assert config.power.feeds["B"].instance == "beta"
    assert config.power.node_feeds["a3"] == ["A", "B"]
    assert config.power.shed.agents == ["a3"]
    plain = parse_config({"ups": {"target": "u@h"}})
    assert plain.power.feeds == {} and plain.power.partial_policy == "quorum_safe"
    assert plain.power.min_agents == 1 and plain.power.shed.label_selector is None


@pytest.mark.parametrize(
    ("power", "expected"),
    [
        (
            {"node_feeds": {**NODE_FEEDS, "a3": ["A", "A"]}},
            "power.node_feeds.a3: feed 'A' is named twice",
        ),
        (
            {"node_feeds": {**NODE_FEEDS, "a3": ["C"]}},
            "power.node_feeds.a3: feeds not in power.feeds: ['C']",
        ),
        ({"node_feeds": {**NODE_FEEDS, "a3": []}}, "power.node_feeds.a3: node 'a3' names no feed"),
        (
            {"node_feeds": {k: v for k, v in NODE_FEEDS.items() if k != "a3"}},
            "power.node_feeds: nodes without a feed (each node needs one): ['a3']",
        ),
        (
            {"node_feeds": {**NODE_FEEDS, "zz": ["A"]}},
            "power.node_feeds: names nodes not in nodes.servers/agents: ['zz']",
        ),
        ({"feeds": {"A": {}, "B": {"instance": "beta"}}}, "power.feeds.A.instance: required"),
        (
            {"feeds": {"A": {"instance": "beta"}, "B": {"instance": "beta"}}},
            "power.feeds.B.instance: instance 'beta' watches feeds ['A', 'B']",
        ),
        ({"shed": {"agents": ["s1"]}}, "power.shed.agents: names nodes not in nodes.agents"),
        ({"shed": {"label_selector": "a b"}}, "power.shed.label_selector: 'a b' is not a label"),
        ({"shed": {"after_seconds": 0}}, "power.shed.after_seconds:"),
        ({"min_agents": -1}, "power.min_agents:"),
        ({"partial_policy": "sometimes"}, "power.partial_policy:"),
        ({"feeds": {"A B": {"instance": "x"}}}, "power.feeds.A B"),
        ({"feeds": {"A": {"instance": "x", "ups": "y"}}}, "power.feeds.A.ups: unknown key"),
    ],
)
def test_each_error_names_its_key(power: dict[str, Any], expected: str) -> None:
    problems = _problems(_data(**power))
    assert any(p.startswith(expected) for p in problems), problems


def test_node_feeds_without_feeds_is_an_error() -> None:
    data = _data()
    del data["power"]["feeds"]
    assert _problems(data) == ["power.node_feeds.s1: feeds not in power.feeds: ['A']"]


def test_a_bad_feed_does_not_also_report_every_node_naming_it() -> None:
    problems = _problems(_data(feeds={"A": {}, "B": {"instance": "beta"}}))
    assert problems == ["power.feeds.A.instance: required"]
