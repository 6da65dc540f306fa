"""Held runs at their edges, for real (local connection, the stand-ins of
test_node_roles_local): a claim that leaves a held stage out, and a held run told "no"."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hecate.adapters.ansible.protocol import PlaybookRequest
from tests.unit.adapters.ansible.test_ansible_held_local import BOUND_S, STOP, node, run_dirs, stop
from tests.unit.adapters.ansible.test_node_roles_local import Node, make_port

__all__ = ["node"]  # the fixture, shared with test_ansible_held_local


@pytest.mark.parametrize("left_out", [0, 1])
def test_a_claim_that_leaves_a_held_stage_out_runs_the_others(
    tmp_path: Path, node: Node, left_out: int
) -> None:
    """Held: stop the agents, then the servers. Asked: the same two requests, one of them
    with no host left (its limit empty: skipped, "a stage asked for none is left out"). The
    left-out stage's plays still start in the held run (with no hosts): the watch of the
    claimed stages must not trip over a stage it was not given (a KeyError in ansible-runner's
    cancel callback ended the whole batch as an AnsibleRunError)."""
    node.set_unit("k3s-agent", "active")
    node.set_unit("k3s", "active")
    held = [stop(["a1"]), stop(["s1"], "stop_servers")]
    asked = list(held)
    asked[left_out] = PlaybookRequest(
        held[left_out].playbook, limit=[], extravars=STOP, timeout_s=BOUND_S
    )
    with make_port(tmp_path, node) as port:
        port.hold(held)
        time.sleep(1.0)
        results = port.run_batch(asked)
    assert results[left_out].status == "skipped"
    ran = results[1 - left_out]
    assert ran.ok, ran.summary()
    assert len(run_dirs(tmp_path)) == 1  # the held process, no new one
    assert node.unit("k3s-agent" if left_out == 1 else "k3s") == "inactive"
    assert node.unit("k3s" if left_out == 1 else "k3s-agent") == "active"


def test_a_failed_host_in_a_claim_that_leaves_the_last_held_stage_out(
    tmp_path: Path, node: Node
) -> None:
    """As above, the last stage left out, and a1 fails its stop: the run is not clean, so the
    claim waits for the process; the left-out stage's play (no hosts) starts before it exits.
    The batch must still return each stage's result, not raise."""
    node.set_unit("k3s-agent", "active")
    failing = {"a1": {"k3s_service_unit": "missing-unit"}}
    with make_port(tmp_path, node, host_vars=failing) as port:
        port.hold([stop(["a1", "a2"]), stop(["s1"], "stop_servers")])
        time.sleep(1.0)
        agents, servers = port.run_batch(
            [stop(["a1", "a2"]), PlaybookRequest("stop_servers", limit=[], extravars=STOP)]
        )
    assert servers.status == "skipped"
    assert agents.failed_hosts == ["a1"] and agents.succeeded_hosts == ["a2"], agents.summary()
