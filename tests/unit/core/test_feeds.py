"""The feed planner (hecate/core/feeds.py): which nodes lose power, when a partial shutdown is
refused, and the plan it gives (hecate/core/plans.py, narrowed to those nodes)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hecate.config.model import HecateConfig, parse_config
from hecate.core.feeds import feed_loss, feed_of_instance, nodes_by_feed, unsafe_reasons
from hecate.core.plans import ShutdownOptions, shutdown_plan

FEEDS = ["A", "B", "C"]


def _config(
    servers: list[str],
    agents: list[str],
    node_feeds: dict[str, list[str]],
    policy: str = "quorum_safe",
    min_agents: int = 1,
) -> HecateConfig:
    used = sorted({f for names in node_feeds.values() for f in names})
    data: dict[str, Any] = {
        "ups": {"target": "ups@127.0.0.1"},
        "nodes": {"servers": servers, "agents": agents},
        "power": {
            "feeds": {f: {"instance": f"i-{f.lower()}"} for f in used},
            "node_feeds": node_feeds,
            "partial_policy": policy,
            "min_agents": min_agents,
        },
    }
    return parse_config(data)


def _issue(s2: str = "A", **kwargs: Any) -> HecateConfig:
    return _config(
        ["s1", "s2", "s3"],
        ["a1", "a2", "a3"],
        {"s1": ["A"], "s2": [s2], "s3": ["B"], "a1": ["A"], "a2": ["B"], "a3": ["A", "B"]},
        **kwargs,
    )


def test_the_issue_example() -> None:
    loss = feed_loss(_issue(), ["B"])
    assert (loss.scope, loss.stop, loss.refusals) == ("partial", ("s3", "a2"), ())
    assert loss.keep == ("s1", "s2", "a1", "a3")
    refused = feed_loss(_issue("B"), ["B"])
    assert refused.scope == "full" and refused.nodes is None
    assert refused.refusals == ("etcd would lose quorum: 1 of 3 servers keep power (s1), 2 needed",)


def test_policies() -> None:
    assert feed_loss(_issue(policy="never"), ["B"]).scope == "full"
    unsafe = feed_loss(_issue("B", policy="always"), ["B"])
    assert unsafe.scope == "partial" and unsafe.nodes == ("s2", "s3", "a2") and unsafe.refusals


def test_too_few_agents_left_refuses() -> None:
    config = _issue(min_agents=3)
    loss = feed_loss(config, ["B"])
    assert loss.scope == "full"
    assert loss.refusals == ("too few agents left: 2 keep power (a1, a3), power.min_agents is 3",)


def test_min_agents_is_at_most_the_agents_there_are() -> None:
    config = _config(["s1", "s2", "s3"], [], {"s1": ["A"], "s2": ["A"], "s3": ["B"]}, min_agents=2)
    assert feed_loss(config, ["B"]).scope == "partial"


def test_both_feeds_lost_is_the_whole_cluster_and_none_lost_is_nothing() -> None:
    assert feed_loss(_issue(), ["A", "B"]).scope == "full"
    assert feed_loss(_issue(), []).scope == "none"
    assert feed_loss(_issue(), []).nodes == ()


def test_without_feeds_the_whole_cluster() -> None:
    config = parse_config({"ups": {"target": "u@h"}, "nodes": {"servers": ["s1"]}})
    assert feed_loss(config, ["A"]).scope == "full"


def test_lookups() -> None:
    config = _issue()
    assert feed_of_instance(config, "i-b") == "B" and feed_of_instance(config, "x") is None
    assert nodes_by_feed(config) == {"A": ["s1", "s2", "a1", "a3"], "B": ["s3", "a2", "a3"]}


def test_the_partial_plan_touches_only_the_nodes_that_lose_power() -> None:
    config = _issue()
    loss = feed_loss(config, ["B"])
    plan = shutdown_plan(config, ShutdownOptions(nodes=loss.nodes))
    touched = {n for stage in plan.stages if stage.skip is None for n in stage.nodes}
    assert touched == {"s3", "a2"}
    names = {s.name for s in plan.stages if s.skip is None}
    assert "flux_suspend" not in names and "ups_kill_power" not in names
    assert "partial" in plan.before[0].description


# --------------------------------------------------------------------------- properties

_feed_sets = st.lists(st.sampled_from(FEEDS), min_size=1, max_size=3, unique=True)


@st.composite
def _clusters(draw: st.DrawFn) -> tuple[HecateConfig, list[str]]:
    n_servers = draw(st.integers(1, 5))
    n_agents = draw(st.integers(0, 5))
    servers = [f"s{i}" for i in range(n_servers)]
    agents = [f"a{i}" for i in range(n_agents)]
    node_feeds = {n: draw(_feed_sets) for n in servers + agents}
    policy = draw(st.sampled_from(["never", "quorum_safe", "always"]))
    min_agents = draw(st.integers(0, 4))
    critical = draw(st.lists(st.sampled_from(FEEDS), max_size=3, unique=True))
    return _config(servers, agents, node_feeds, policy, min_agents), critical


@settings(max_examples=120, deadline=None)
@given(_clusters())
def test_never_stops_a_node_with_a_live_feed_in_a_partial_shutdown(
    case: tuple[HecateConfig, list[str]],
) -> None:
    config, critical = case
    loss = feed_loss(config, critical)
    if loss.scope != "partial":
        return
    assert loss.nodes
    for node in loss.nodes:
        assert set(config.power.node_feeds[node]) <= set(critical)
    plan = shutdown_plan(config, ShutdownOptions(nodes=loss.nodes))
    touched = {n for stage in plan.stages if stage.skip is None for n in stage.nodes}
    # every node the plan acts on lost power (the snapshot runs on a server that stops)
    assert touched <= set(loss.nodes)


@settings(max_examples=120, deadline=None)
@given(_clusters())
def test_quorum_safe_never_leaves_etcd_without_quorum(
    case: tuple[HecateConfig, list[str]],
) -> None:
    config, critical = case
    loss = feed_loss(config, critical)
    if config.power.partial_policy != "quorum_safe" or loss.scope != "partial":
        return
    kept = [s for s in config.nodes.servers if s not in loss.stop]
    assert 2 * len(kept) > len(config.nodes.servers)
    kept_agents = [a for a in config.nodes.agents if a not in loss.stop]
    assert len(kept_agents) >= min(config.power.min_agents, len(config.nodes.agents))
    assert unsafe_reasons(config, loss.stop) == []


@settings(max_examples=80, deadline=None)
@given(_clusters())
def test_scope_is_full_or_nothing_when_not_partial(case: tuple[HecateConfig, list[str]]) -> None:
    config, critical = case
    loss = feed_loss(config, critical)
    lost = [n for n in config.nodes.all if set(config.power.node_feeds[n]) <= set(critical)]
    assert list(loss.stop) == lost
    if not lost:
        assert loss.scope == "none"
    elif config.power.partial_policy == "never" or len(lost) == len(config.nodes.all):
        assert loss.scope == "full"
