"""A partial shutdown and its startup carried out (issue 28): only the nodes whose every feed
is critical are cordoned, drained, stopped and powered off, Flux keeps running, the intent
names the nodes; the startup brings back those nodes alone and uncordons them."""

from __future__ import annotations

from pathlib import Path

from hecate.adapters.statedir.store import StateStore
from hecate.config.model import HecateConfig, parse_config
from hecate.core.feeds import feed_loss
from hecate.core.intent import IntentState
from hecate.core.plans import ShutdownOptions, StartupOptions
from hecate.core.readings import UpsReading, parse_status
from hecate.core.run_history import Outcome
from hecate.flows.context import FlowContext
from hecate.flows.ledger import load_ledger
from hecate.flows.shutdown import run_shutdown
from hecate.flows.startup import run_startup
from tests.fakes import FakeAnsible, FakeKube

EVERY = ["s1", "s2", "s3", "a1", "a2", "a3"]


def _config(tmp_path: Path, s3: str = "B") -> HecateConfig:
    return parse_config(
        {
            "state_dir": str(tmp_path / "state"),
            "nodes": {"servers": ["s1", "s2", "s3"], "agents": ["a1", "a2", "a3"]},
            "ups": {"target": "pyrphoros@localhost"},
            "shutdown": {"drain": True, "poweroff_local_host": True},
            "startup": {"nodes_ready_timeout_seconds": 2, "api_timeout_seconds": 2},
            "power": {
                "feeds": {"A": {"instance": "alpha"}, "B": {"instance": "beta"}},
                "node_feeds": {
                    "s1": ["A"],
                    "s2": ["A"],
                    "s3": [s3],
                    "a1": ["A"],
                    "a2": ["B"],
                    "a3": ["A", "B"],
                },
            },
        }
    )


def _ctx(config: HecateConfig, kube: FakeKube, ansible: FakeAnsible) -> FlowContext:
    ansible.cluster = kube
    ctx = FlowContext(
        config=config,
        ansible=ansible,
        kube=kube,
        store=StateStore(config.state_dir),
        read_ups=lambda: UpsReading(parse_status("OL"), 1800, 100),
        sleep=lambda _: None,
    )
    ctx.poweroff_local = lambda: (_ for _ in ()).throw(AssertionError("this host keeps power"))
    return ctx


def test_a_partial_shutdown_touches_only_the_nodes_that_lose_power(tmp_path: Path) -> None:
    config = _config(tmp_path)
    kube = FakeKube(nodes_up=dict.fromkeys(EVERY, True))
    kube.add_flux("Kustomization", "flux-system", "apps")
    ansible = FakeAnsible()
    nodes = feed_loss(config, ["B"]).nodes
    assert nodes == ("s3", "a2")
    ctx = _ctx(config, kube, ansible)
    report = run_shutdown(ctx, ShutdownOptions(reason="feed B", nodes=nodes))
    assert report.outcome is Outcome.SUCCESS, report.to_json()
    touched = {host for _, hosts in ansible.playbooks for host in hosts}
    assert touched == {"s3", "a2"}
    assert kube.cordoned == {"s3", "a2"}
    assert not kube.flux["Kustomization/flux-system/apps"].suspended  # Flux keeps running
    assert {n for n, up in kube.nodes_up.items() if up} == {"s1", "s2", "a1", "a3"}
    drain = next(s for s in report.stages if s.name == "drain")
    assert set(drain.nodes) <= {"s3", "a2"}
    intent = StateStore(config.state_dir).read_intent()
    assert intent.state is IntentState.SHUTDOWN_COMPLETE and intent.nodes == ("s3", "a2")
    assert intent.partial
    assert sorted(load_ledger(config.state_dir).cordoned) == ["a2", "s3"]

    # the feed is back: its nodes start again and are uncordoned; Flux is left alone
    report = run_startup(ctx, StartupOptions(reason="feed B back", nodes=nodes))
    assert report.outcome is Outcome.SUCCESS, report.to_json()
    starts = [(name, hosts) for name, hosts in ansible.playbooks if name.startswith("start")]
    assert starts == [("start_servers", ("s3",)), ("start_agents", ("a2",))]
    assert kube.cordoned == set() and all(kube.nodes_up.values())
    assert [s.name for s in report.stages][-1] == "nodes_ready"
    after = StateStore(config.state_dir).read_intent()
    assert after.state is IntentState.NORMAL and after.nodes is None


def test_a_whole_shutdown_still_stops_every_node(tmp_path: Path) -> None:
    config = _config(tmp_path)
    kube = FakeKube(nodes_up=dict.fromkeys(EVERY, True))
    ansible = FakeAnsible()
    ctx = _ctx(config, kube, ansible)
    ctx.poweroff_local = lambda: None
    report = run_shutdown(ctx, ShutdownOptions(reason="ups"))
    assert report.outcome is Outcome.SUCCESS, report.to_json()
    assert kube.cordoned == set(EVERY)
    intent = StateStore(config.state_dir).read_intent()
    assert intent.nodes is None and not intent.partial
