"""A partial shutdown on the twin (issue 28): real SSH and systemd units, the API stand-in.
Feed B lost stops only the agent it alone powers; the server and the other agent keep running
with the API up and Flux untouched; the feed's return starts that agent and uncordons it."""

from __future__ import annotations

from pathlib import Path

import pytest

from hecate.adapters.statedir.store import StateStore
from hecate.core.feeds import feed_loss
from hecate.core.intent import IntentState
from hecate.core.run_history import Outcome
from tests.integration.support import twin_config
from tests.integration.test_flows import is_suspended, shutdown, startup
from tests.testbed.nut import NutServer
from tests.testbed.pytest_twin import TwinFactory

pytestmark = pytest.mark.integration


def test_partial_shutdown_and_return_on_the_twin(
    make_twin: TwinFactory, nut_server: NutServer, tmp_path: Path
) -> None:
    twin = make_twin(1, 2)
    server, kept, lost = twin.servers[0], twin.agents[0], twin.agents[1]
    node_feeds = {server.name: ["A"], kept.name: ["A", "B"], lost.name: ["B"]}
    power = {
        "feeds": {"A": {"instance": "alpha"}, "B": {"instance": "beta"}},
        "node_feeds": node_feeds,
    }
    config = twin_config(twin, tmp_path / "state", nut_server, power=power)
    loss = feed_loss(config, ["B"])
    assert loss.scope == "partial" and loss.nodes == (lost.name,)

    down = shutdown(config, mode="cluster-only", reason="feed B", nodes=loss.nodes)
    assert down.outcome is Outcome.SUCCESS, down.to_json()
    assert not twin.unit_active(lost)
    assert twin.unit_active(server) and twin.unit_active(kept)
    assert twin.api_ready()
    assert not is_suspended(twin, "kustomizations", "flux-system", "apps")
    nodes = {n["metadata"]["name"]: n for n in twin.get("/api/v1/nodes")["items"]}
    assert nodes[lost.name].get("spec", {}).get("unschedulable") is True
    assert not nodes[kept.name].get("spec", {}).get("unschedulable")
    intent = StateStore(config.state_dir).read_intent()
    assert intent.state is IntentState.SHUTDOWN_COMPLETE and intent.nodes == (lost.name,)

    up = startup(config, reason="feed B back", nodes=loss.nodes)
    assert up.outcome is Outcome.SUCCESS, up.to_json()
    assert twin.unit_active(lost) and all(twin.nodes_ready().values())
    nodes = {n["metadata"]["name"]: n for n in twin.get("/api/v1/nodes")["items"]}
    assert not nodes[lost.name].get("spec", {}).get("unschedulable")
    assert StateStore(config.state_dir).read_intent().state is IntentState.NORMAL
