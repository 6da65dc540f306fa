"""Runs started ahead and held at their gate, for real: the port's `hold` on localhost (local
connection) against the recording stand-ins of test_node_roles_local. A held run must do
nothing until Python asks for the same work, then run exactly the hosts asked for (within those
held) in the one process started ahead; work that differs runs anew and the held run ends
without touching a node; a hold that runs out ends by itself."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hecate.adapters.ansible.batch import BatchStage
from hecate.adapters.ansible.held import HeldRun
from hecate.adapters.ansible.protocol import PlaybookRequest
from hecate.adapters.ansible.rundir import ARTIFACTS_DIRNAME
from tests.unit.adapters.ansible.test_node_roles_local import Node, make_port

STOP = {"k3s_service_timeout_s": 5}
BOUND_S = 60.0


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return Node(tmp_path / "node")


def run_dirs(tmp_path: Path) -> list[str]:
    root = tmp_path / "state" / ARTIFACTS_DIRNAME
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


def held_runs(tmp_path: Path) -> list[str]:
    return [name for name in run_dirs(tmp_path) if "-held-" in name]


def wait_gone(run: HeldRun, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while run.alive and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not run.alive, "the held run did not end"


def stop(limit: list[str], playbook: str = "stop_agents") -> PlaybookRequest:
    return PlaybookRequest(playbook, limit=limit, extravars=STOP, timeout_s=BOUND_S)


def test_a_held_batch_runs_only_the_hosts_asked_for_in_the_process_started_ahead(
    tmp_path: Path, node: Node
) -> None:
    node.set_unit("k3s-agent", "active")
    node.set_unit("k3s", "active")
    with make_port(tmp_path, node) as port:
        port.hold([stop(["a1", "a2"]), stop(["s1"], "stop_servers")])
        time.sleep(2.0)  # it starts up and waits at its gate: nothing is touched meanwhile
        assert node.unit("k3s-agent") == "active" and node.changes() == []
        agents, servers = port.run_batch([stop(["a1"]), stop(["s1"], "stop_servers")])
        assert held_runs(tmp_path) == run_dirs(tmp_path)  # no process but the held one
    assert len(run_dirs(tmp_path)) == 1
    assert agents.ok and servers.ok, (agents.summary(), servers.summary())
    assert sorted(agents.hosts) == ["a1"]  # a2 was held, not asked for: never touched
    assert sorted(servers.hosts) == ["s1"]
    assert node.unit("k3s") == "inactive"
    assert {t.host for t in agents.tasks} == {"a1"}


def test_a_single_run_of_held_work_uses_the_held_process(tmp_path: Path, node: Node) -> None:
    node.set_unit("k3s-agent", "active")
    events: list[tuple[str, str]] = []
    with make_port(tmp_path, node) as port:
        port.hold([stop(["a1", "a2"])])
        result = port.run(stop(["a2", "a1"]), on_event=lambda e: events.append((e.host, e.status)))
    assert result.ok and sorted(result.hosts) == ["a1", "a2"], result.summary()
    assert result.playbook == "stop_agents"
    assert len(held_runs(tmp_path)) == len(run_dirs(tmp_path)) == 1
    # the gate's own task is not the stage's: no event names its host
    assert {host for host, _ in events} == {"a1", "a2"}


def test_other_work_runs_anew_and_the_held_run_ends_without_touching_a_node(
    tmp_path: Path, node: Node
) -> None:
    node.set_unit("k3s-agent", "active")
    node.set_unit("k3s", "active")
    with make_port(tmp_path, node) as port:
        port.hold([stop(["a1", "a2"])])
        # other extra vars: not the work held, whatever the hosts
        other = PlaybookRequest(
            "stop_servers", limit=["s1"], extravars={"k3s_service_timeout_s": 6}
        )
        result = port.run(other)
        assert result.ok, result.summary()
        # more hosts than were held: not the work held either
        wider = port.run(stop(["a1", "a2", "s1"], "stop_agents"))
        assert sorted(wider.hosts) == ["a1", "a2"]
    # closing the port said "no" to the held run: it ran no stage play
    assert len(held_runs(tmp_path)) == 1 and len(run_dirs(tmp_path)) == 3
    held_dir = tmp_path / "state" / ARTIFACTS_DIRNAME / held_runs(tmp_path)[0]
    stdout = (held_dir / "artifacts" / "run" / "stdout").read_text()
    assert "a1" not in stdout.split("PLAY RECAP")[-1]


def test_a_hold_that_runs_out_ends_by_itself_and_is_never_claimed(
    tmp_path: Path, node: Node
) -> None:
    node.set_unit("k3s-agent", "active")
    with make_port(tmp_path, node) as port:
        port.hold([stop(["a1"])], hold_s=2.0)  # shorter than the claim margin: never claimed
        held = port._held._runs[0]
        wait_gone(held)
        assert held.gate.read_text() == '{"go": false, "expired": true}'  # the gate made it
        assert node.unit("k3s-agent") == "active"
        result = port.run(stop(["a1"]))
    assert result.ok and node.unit("k3s-agent") == "inactive"
    assert len(run_dirs(tmp_path)) == 2  # the run out one, then a new one


def test_a_decision_after_the_gate_gave_up_is_not_taken(tmp_path: Path) -> None:
    """Exactly one side creates the decision file: Python's link fails once the gate made it."""
    stage = BatchStage(0, "stop_agents", tmp_path / "x.yml", {}, ("a1",), 10.0)
    run = HeldRun([stage], 1, tmp_path)
    run.gate.write_text('{"go": false, "expired": true}')
    assert run._decide({"go": True}) is False
    assert run.gate.read_text() == '{"go": false, "expired": true}'
    assert list(tmp_path.iterdir()) == [run.gate]  # its temp file is gone


def test_a_claimed_run_still_exiting_is_waited_for_when_the_port_closes(
    tmp_path: Path, node: Node
) -> None:
    """A clean run returns at ansible's stats, before its process exits; a flow's end
    (drop_held) must not forget it: the port's close waits for it (its CPU, its sockets)."""
    node.set_unit("k3s-agent", "active")
    with make_port(tmp_path, node) as port:
        port.hold([stop(["a1"])])
        held = port._held._runs[0]
        assert port.run(stop(["a1"])).ok
        port.drop_held()  # what the runner does when the flow ends
    assert not held.alive
