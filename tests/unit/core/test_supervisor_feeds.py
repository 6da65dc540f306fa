"""The supervisor with power feeds (issue 28): a trigger's feed comes from the instance that
sent it; a partial shutdown stops only the nodes that lost power; a second feed failing during
it escalates; the feed's UPS back starts its nodes again."""

from __future__ import annotations

from typing import Any

from hecate.config.model import parse_config
from hecate.core.feeds import FeedSettings
from hecate.core.peers import PeerIntent, PeerUps
from hecate.core.supervisor import Settings, SupervisorState
from hecate.core.supervisor_vocabulary import (
    Answer,
    AskPeers,
    FlowKind,
    FlowOutcome,
    PeerReported,
    PeerTriggered,
    RunShutdown,
    RunStartup,
    ShutdownOwed,
)
from tests.unit.core.test_supervisor import Run, r


def _state(s2: str = "A", own: str = "alpha") -> SupervisorState:
    data: dict[str, Any] = {
        "ups": {"target": "ups@127.0.0.1"},
        "nodes": {"servers": ["s1", "s2", "s3"], "agents": ["a1", "a2", "a3"]},
        "power": {
            "feeds": {"A": {"instance": "alpha"}, "B": {"instance": "beta"}},
            "node_feeds": {
                "s1": ["A"],
                "s2": [s2],
                "s3": ["B"],
                "a1": ["A"],
                "a2": ["B"],
                "a3": ["A", "B"],
            },
        },
    }
    config = parse_config(data)
    return SupervisorState(settings=Settings(feeds=FeedSettings(config, own)))


def _flows(effects: list[Any]) -> list[Any]:
    return [e for e in effects if isinstance(e, RunShutdown | RunStartup | ShutdownOwed | Answer)]


def _back(name: str) -> PeerReported:
    ups = PeerUps(f"{name}-ups", back=True, detail="mains stable")
    return PeerReported(PeerIntent("127.0.0.1:1", name, "normal", None, None, ups), 0.0)


def test_a_peer_trigger_shuts_down_its_feeds_nodes_only() -> None:
    run = Run(_state())
    effects = run.feed(PeerTriggered("beta", "OB LB", run.now))
    assert _flows(effects) == [RunShutdown("peer beta: OB LB", ("s3", "a2")), Answer("started")]
    assert run.state.scope == ("s3", "a2") and run.state.lost_feeds == {"B"}
    assert not run.state.policy.latched  # this instance's own UPS still triggers
    # the same feed again: nothing more to stop
    again = run.feed(PeerTriggered("beta", "OB LB", run.now))
    assert _flows(again) == [Answer("duplicate")]


def test_quorum_refusal_takes_the_whole_cluster_down() -> None:
    run = Run(_state(s2="B"))
    effects = run.feed(PeerTriggered("beta", "OB LB", run.now))
    assert _flows(effects) == [RunShutdown("peer beta: OB LB", None), Answer("started")]
    assert run.state.policy.latched and run.state.scope is None


def test_a_second_feed_failing_during_a_partial_shutdown_escalates() -> None:
    run = Run(_state())
    run.feed(PeerTriggered("beta", "OB LB", run.now))
    assert run.state.running is FlowKind.SHUTDOWN
    # the coordinator's own UPS (feed A) goes critical: both feeds lost, the whole cluster
    effects = run.shut_down_by_ups()
    assert [e.nodes for e in effects if isinstance(e, ShutdownOwed)] == [None]
    assert run.state.owed is not None and run.state.owed_nodes is None
    # the partial shutdown ends: the whole-cluster one starts at once
    after = run.finish(FlowKind.SHUTDOWN, FlowOutcome.SUCCESS)
    assert [e.nodes for e in after if isinstance(e, RunShutdown)] == [None]
    assert run.state.scope is None and run.state.running is FlowKind.SHUTDOWN


def test_a_second_feed_after_the_partial_shutdown_widens_it() -> None:
    run = Run(_state(own="gamma"))  # this instance watches no feed's UPS
    run.feed(PeerTriggered("beta", "OB LB", run.now))
    run.finish(FlowKind.SHUTDOWN, FlowOutcome.SUCCESS)
    effects = run.feed(PeerTriggered("alpha", "OB LB", run.now))
    assert [e.nodes for e in effects if isinstance(e, RunShutdown)] == [None]
    assert Answer("started") in effects


def test_the_feed_back_starts_its_nodes_again() -> None:
    run = Run(_state())
    run.feed(PeerTriggered("beta", "OB LB", run.now))
    run.finish(FlowKind.SHUTDOWN, FlowOutcome.SUCCESS)
    asked = run.poll(r("OL CHRG"))
    assert [e for e in asked if isinstance(e, AskPeers)] == [AskPeers(frozenset({"beta"}))]
    effects = run.feed(_back("beta"))
    assert [e for e in effects if isinstance(e, RunStartup)] == [
        RunStartup("feed back: peer beta's UPS", ("s3", "a2"))
    ]
    assert run.state.lost_feeds == frozenset()
    run.finish(FlowKind.STARTUP, FlowOutcome.SUCCESS)
    assert run.state.scope is None and run.state.running is None


def test_a_feed_that_powers_no_node_alone_shuts_nothing_down() -> None:
    state = _state()
    config = state.settings.feeds.config if state.settings.feeds else None
    assert config is not None
    data = config.model_dump(mode="json")
    data["power"]["feeds"]["C"] = {"instance": "gamma"}
    data["power"]["node_feeds"]["a3"] = ["A", "C"]
    data["power"]["nodes"] = {}
    run = Run(SupervisorState(settings=Settings(feeds=FeedSettings(parse_config(data), "x"))))
    effects = run.feed(PeerTriggered("gamma", "OB LB", run.now))
    assert _flows(effects) == [Answer("ignored: no node loses power")]
    assert run.state.running is None


def test_this_ups_alone_failing_when_every_node_has_another_feed_starts_nothing_later() -> None:
    state = _state(own="gamma")
    feeds = state.settings.feeds
    assert feeds is not None
    data = feeds.config.model_dump(mode="json")
    data["power"]["feeds"]["C"] = {"instance": "gamma"}
    data["power"]["node_feeds"]["a3"] = ["A", "C"]
    run = Run(SupervisorState(settings=Settings(feeds=FeedSettings(parse_config(data), "gamma"))))
    effects = run.shut_down_by_ups()
    assert _flows(effects) == [] and run.state.running is None
    later: list[Any] = []
    for _ in range(40):  # mains back and stable: no startup of a cluster that never stopped
        later += run.poll(r("OL CHRG"))
    assert [e for e in later if isinstance(e, RunStartup | RunShutdown)] == []
