"""Issue #12, item 2: one bad node never stops the others.

A node whose address is unusable, whose SSH fails or whose host key changed is that node's
failure; the run is partial and every other node is still stopped and powered off. The
inventory builder reports per-node problems as data, never as an exception.
"""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from hecate.adapters.ansible.inventory import (
    build_inventory,
    inventory_hosts,
    node_problems,
    plan_inventory,
)
from hecate.cli.main import app
from hecate.core.plans import ShutdownOptions
from hecate.core.run_history import Outcome
from hecate.flows.shutdown import run_shutdown
from tests.fakes import FakeAnsible
from tests.unit.flows.test_flows import _cluster, _config, _ctx


def test_nodes_sharing_an_address_are_problems_as_data(tmp_path: Path) -> None:
    # a1 and a2 both point at 10.0.0.9: one address is wrong, and acting on either could
    # power off the other's machine, so neither is touched.
    config = _config(tmp_path, ssh_node_hosts={"a1": "10.0.0.9", "a2": "10.0.0.9:22"})
    problems = node_problems(config)
    assert set(problems) == {"a1", "a2"}
    assert "same SSH address 10.0.0.9:22" in problems["a1"]
    plan = plan_inventory(config)
    assert plan.problems == problems
    assert inventory_hosts(plan.data) == {"s1"}


def test_an_unusable_address_is_a_problem_not_an_exception(tmp_path: Path) -> None:
    config = _config(tmp_path)
    # a config built around the validators (model_copy skips them): the safety net holds
    broken = config.model_copy(update={"ssh_node_hosts": {"a1": object()}})
    problems = node_problems(broken)
    assert list(problems) == ["a1"] and "no usable SSH address" in problems["a1"]
    assert inventory_hosts(build_inventory(broken)) == {"s1", "a2"}


def test_bad_address_node_fails_and_every_other_node_is_stopped_and_powered_off(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path, ssh_node_hosts={"a1": "10.0.0.9", "a2": "10.0.0.9"})
    kube, ansible = _cluster(), FakeAnsible()
    report = run_shutdown(_ctx(config, kube, ansible), ShutdownOptions(reason="ups"))
    assert report.outcome is Outcome.PARTIAL
    # only s1 reached Ansible, for every node stage, power off included
    assert ansible.playbooks == [
        ("etcd_snapshot", ("s1",)),
        ("stop_servers", ("s1",)),
        ("poweroff", ("s1",)),
    ]
    nodes = report.to_json()["nodes"]
    assert nodes["a1"]["stop_agents"] == "failed"
    assert nodes["a2"]["poweroff_agents"] == "failed"
    assert nodes["s1"]["stop_servers"] == "ok"
    assert nodes["s1"]["poweroff_servers"] == "ok"
    stage = next(s for s in report.stages if s.name == "stop_agents")
    assert stage.status == "failed" and "same SSH address" in stage.detail


def test_unreachable_or_changed_host_key_node_never_stops_the_others(tmp_path: Path) -> None:
    # A changed host key, a refused SSH or a wrong address all end as an unreachable host in
    # Ansible's stats (StrictHostKeyChecking stays on): the others go on.
    config = _config(tmp_path)
    kube, ansible = _cluster(), FakeAnsible(unreachable={"a1"})
    report = run_shutdown(_ctx(config, kube, ansible), ShutdownOptions(reason="ups"))
    assert report.outcome is Outcome.PARTIAL
    assert ("poweroff", ("a1", "a2")) in ansible.playbooks
    assert ("poweroff", ("s1",)) in ansible.playbooks
    nodes = report.to_json()["nodes"]
    assert nodes["a2"]["poweroff_agents"] == "ok"
    assert nodes["a1"]["poweroff_agents"] == "unreachable"


def test_inventory_command_warns_about_left_out_nodes(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "nodes: {servers: [s1], agents: [a1, a2]}\n"
        f"state_dir: {tmp_path / 'state'}\n"
        "ssh_node_hosts: {a1: 10.0.0.9, a2: 10.0.0.9}\n"
    )
    result = CliRunner().invoke(app, ["inventory", "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert "warning: node a1 left out of the inventory: same SSH address" in result.output
