"""Issue 25, item 4: a shutdown that stopped no node failed (not partial), and the run, the
report and the intent say which nodes are down and which unknown, with Ansible's cause."""

from __future__ import annotations

from pathlib import Path

from hecate.adapters.statedir.store import StateStore
from hecate.core.intent import IntentState, blocks_startup
from hecate.core.node_account import (
    NodeAccount,
    StageNodes,
    account_nodes,
    short_cause,
    shutdown_outcome,
)
from hecate.core.plans import ShutdownOptions, StartupOptions
from hecate.core.run_history import Outcome
from hecate.flows.shutdown import run_shutdown
from hecate.flows.startup import run_startup
from tests.fakes import FakeAnsible
from tests.unit.flows.test_flows import _cluster, _config, _ctx


def test_a_shutdown_that_reached_no_node_failed_and_the_intent_says_not_stopped(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path)
    ansible = FakeAnsible(unreachable={"s1", "a1", "a2"})
    report = run_shutdown(_ctx(config, _cluster(), ansible), ShutdownOptions(reason="ups"))
    assert report.outcome is Outcome.FAILED, report.to_json()  # main: partial
    cluster = report.to_json()["cluster"]
    assert cluster["down"] == {}
    assert cluster["unknown"] == dict.fromkeys(["s1", "a1", "a2"], "Connection refused")
    assert cluster["line"] == (
        "cluster not stopped: the shutdown reached no node (a1, a2, s1: Connection refused)"
    )
    store = StateStore(config.state_dir)
    intent = store.read_intent()
    # main: shutdown_complete, so `status` said a startup was pending for a running cluster
    assert intent.state is IntentState.SHUTTING_DOWN
    assert intent.cluster_not_stopped
    assert "cluster not stopped" in intent.reason
    [run] = store.load_runs()
    assert run.outcome is Outcome.FAILED
    assert dict(run.nodes_unknown) == cluster["unknown"]
    # the record reads back (runs.json, intent.json)
    assert StateStore(config.state_dir).load_runs()[0].nodes_unknown == run.nodes_unknown


def test_some_nodes_down_is_partial_and_names_both_sides(tmp_path: Path) -> None:
    config = _config(tmp_path)
    ansible = FakeAnsible(unreachable={"a2"})
    report = run_shutdown(_ctx(config, _cluster(), ansible), ShutdownOptions(reason="ups"))
    assert report.outcome is Outcome.PARTIAL
    assert report.cluster is not None
    assert dict(report.cluster.down) == {"s1": "off", "a1": "off"}
    assert dict(report.cluster.unknown) == {"a2": "Connection refused"}
    intent = StateStore(config.state_dir).read_intent()
    assert intent.state is IntentState.SHUTDOWN_COMPLETE
    assert dict(intent.nodes_down) == {"s1": "off", "a1": "off"}
    assert not intent.cluster_not_stopped


def test_cluster_only_counts_stopped_nodes(tmp_path: Path) -> None:
    config = _config(tmp_path)
    report = run_shutdown(
        _ctx(config, _cluster(), FakeAnsible()), ShutdownOptions(mode="cluster-only")
    )
    assert report.outcome is Outcome.SUCCESS
    assert report.cluster is not None
    assert dict(report.cluster.down) == dict.fromkeys(["s1", "a1", "a2"], "stopped")
    assert report.cluster.line() == "all 3 node(s) down (a1 stopped, a2 stopped, s1 stopped)"


def test_account_is_judged_by_per_host_status() -> None:
    stages = [
        StageNodes("cordon", {"s1": "failed"}),  # an API stage never decides a node's state
        StageNodes("stop_servers", {"s1": "unreachable"}, {"s1": "No route to host"}),
        StageNodes("poweroff_servers", {"s1": "unreachable"}, {"s1": "later cause"}),
        StageNodes("stop_agents", {"a1": "ok", "a2": "failed"}),
    ]
    account = account_nodes(["s1", "a1", "a2", "a3"], stages)
    assert dict(account.down) == {"a1": "stopped"}
    assert dict(account.unknown) == {"s1": "No route to host", "a2": "failed", "a3": "not reached"}
    assert shutdown_outcome(Outcome.SUCCESS, account) is Outcome.PARTIAL
    assert shutdown_outcome(Outcome.ABORTED, account) is Outcome.ABORTED
    none = account_nodes(["s1"], stages[:3])
    assert none.stopped_none
    assert shutdown_outcome(Outcome.PARTIAL, none) is Outcome.FAILED
    assert shutdown_outcome(Outcome.SUCCESS, NodeAccount({"s1": "off"})) is Outcome.SUCCESS
    # a BMC's confirmation counts as off even where SSH never answered
    confirmed = account_nodes(["s1"], [*stages[:3], StageNodes("power_confirm", {"s1": "off"})])
    assert dict(confirmed.down) == {"s1": "off"}


def test_short_cause_keeps_what_an_operator_acts_on() -> None:
    message = (
        'Data could not be sent to remote host "10.0.0.5". Make sure this host can be reached '
        "over ssh: ssh: connect to host 10.0.0.5 port 22: Connection refused\r\n"
    )
    assert short_cause(message) == "Connection refused"
    assert short_cause("Permission denied (publickey).") == "Permission denied (publickey)"
    assert short_cause("") == ""
    assert NodeAccount.from_json({"down": [], "unknown": {}}) is None
    assert NodeAccount.from_json(NodeAccount({}, {"a": "x"}).to_json()) == NodeAccount(
        {}, {"a": "x"}
    )


def test_a_shutdown_that_stopped_nothing_does_not_block_the_next_startup(tmp_path: Path) -> None:
    config = _config(tmp_path)
    ctx = _ctx(config, _cluster(), FakeAnsible(unreachable={"s1", "a1", "a2"}))
    assert run_shutdown(ctx, ShutdownOptions(reason="ups")).outcome is Outcome.FAILED
    intent = StateStore(config.state_dir).read_intent()
    assert not blocks_startup(intent, intent.since + 1, 3600)
    ctx.ansible = FakeAnsible(cluster=ctx.ansible.cluster)  # type: ignore[attr-defined]
    assert run_startup(ctx, StartupOptions()).outcome is Outcome.SUCCESS
    # a shutdown under way (its intent just set, no nodes recorded) still blocks one
    StateStore(config.state_dir).set_intent(IntentState.SHUTTING_DOWN, reason="x", run_id="r")
    assert blocks_startup(StateStore(config.state_dir).read_intent(), intent.since + 1, 3600)
