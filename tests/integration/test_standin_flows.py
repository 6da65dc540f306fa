"""Hecate's flows on the twin against behaviours of a real cluster the stand-in models
(tests/testbed/node/standin_behaviour.py): evictions a PodDisruptionBudget refuses, Pods that stay
Terminating for their grace period, etcd quorum with three servers."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from hecate.core.run_history import Outcome
from tests.integration.support import twin_config
from tests.integration.test_flows import shutdown, startup
from tests.testbed.nut import NutServer
from tests.testbed.pytest_twin import TwinFactory
from tests.testbed.twin import Twin

pytestmark = pytest.mark.integration


def _pods_on(twin: Twin, nodes: set[str]) -> list[dict[str, Any]]:
    pods: list[dict[str, Any]] = twin.get("/api/v1/pods")["items"]
    return [p for p in pods if p.get("spec", {}).get("nodeName") in nodes]


def _running(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _spread_pods(twin: Twin, agents: set[str], timeout: float = 60.0) -> None:
    """Wait until every agent runs a Ready Pod. A scheduler never moves a bound Pod: when one
    agent was Ready a tick before the other, it took every Pod; deleting one of its Pods at once
    (grace 0) lets the controller recreate it on the least loaded agent, as a real one would."""
    twin.wait_ready()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pods = _pods_on(twin, agents)
        ready = {p["spec"]["nodeName"] for p in pods if _running(p)}
        if ready == agents:
            return
        bound = {a: [p for p in pods if p["spec"]["nodeName"] == a] for a in agents}
        crowded = max(bound.values(), key=len)
        if len(crowded) > 1 and {a for a, ps in bound.items() if ps} != agents:
            md = crowded[0]["metadata"]
            status, body = twin.api(
                "DELETE",
                f"/api/v1/namespaces/{md['namespace']}/pods/{md['name']}?gracePeriodSeconds=0",
            )
            assert status == 200, body
        time.sleep(1.0)
    raise AssertionError(f"Pods are not Ready on every agent: {_pods_on(twin, agents)}")


def test_drain_of_two_agents_behind_pdbs_takes_one_timeout_not_two(
    make_twin: TwinFactory, nut_server: NutServer, tmp_path: Path
) -> None:
    """Every Pod on both agents is under a PDB that allows no disruption: each eviction answers
    429, the drain waits a third of its timeout, then deletes (the Pods sit in Terminating for
    the delete's grace). One agent after the other would take two such waits per agent."""
    timeout = 30.0
    twin = make_twin(1, 2)
    agents = {a.name for a in twin.agents}

    _spread_pods(twin, agents)
    pods = _pods_on(twin, agents)
    assert {p["spec"]["nodeName"] for p in pods if _running(p)} == agents, pods
    for namespace in sorted({p["metadata"]["namespace"] for p in pods}):
        pdb = {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "all", "namespace": namespace},
            "spec": {"minAvailable": "100%", "selector": {}},  # {}: every Pod of the namespace
        }
        status, body = twin.api(
            "POST", f"/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets", pdb
        )
        assert status == 201, body
    config = twin_config(
        twin,
        tmp_path / "state",
        nut_server,
        shutdown={"drain": True, "drain_timeout_seconds": timeout, "etcd_snapshot": False},
    )
    report = shutdown(config, mode="cluster-only")
    drain = next(s for s in report.stages if s.name == "drain")
    assert drain.status == "ok", drain.to_json()
    assert drain.nodes == dict.fromkeys(sorted(agents), "ok")
    assert drain.detail == "; ".join(f"{a}: deleted" for a in sorted(agents)), drain.detail
    # the refused evictions wait out one third; the deletes' grace (5 s) a part of another
    assert timeout / 3 <= drain.duration_s < timeout, drain.duration_s
    assert report.outcome is Outcome.SUCCESS, report.to_json()


def _startup_with_unreachable(
    twin: Twin, nut_server: NutServer, state: Path, unreachable: list[str]
) -> tuple[Any, Any]:
    hosts = {n.name: f"127.0.0.1:{n.ssh_port}" for n in twin.nodes}
    for name in unreachable:
        hosts[name] = "127.0.0.1:1"  # well-formed, nothing listens: SSH fails at once
    config = twin_config(
        twin,
        state,
        nut_server,
        ssh_node_hosts=hosts,
        # no time_sync gate: it would hold the startup for the unreachable servers' clocks
        startup={
            "api_timeout_seconds": 10,
            "nodes_ready_timeout_seconds": 10,
            "time_sync_check": False,
            # method none: nothing can power the unreachable ones on; do not wait out a boot
            "power_on_timeout_seconds": 3,
            "etcd_quorum_timeout_seconds": 10,
        },
    )
    down = shutdown(twin_config(twin, state, nut_server), mode="cluster-only")
    assert down.outcome is Outcome.SUCCESS, down.to_json()
    assert not twin.api_ready()
    return config, startup(config)


def test_three_servers_start_with_one_unreachable_and_fail_clearly_with_two(
    make_twin: TwinFactory, nut_server: NutServer, tmp_path: Path
) -> None:
    twin = make_twin(3, 1)
    s1, s2, s3 = (n.name for n in twin.servers)
    # one server unreachable: the other two start together and make the quorum
    _, report = _startup_with_unreachable(twin, nut_server, tmp_path / "one", [s3])
    stages = {s.name: s for s in report.stages}
    assert stages["start_servers"].nodes[s3] == "unreachable", report.to_json()
    assert stages["start_servers"].nodes[s1] == stages["start_servers"].nodes[s2] == "ok"
    assert stages["wait_api"].status == "ok", report.to_json()
    assert stages["wait_api"].duration_s < 10
    assert twin.api_ready(s1) and twin.api_ready(s2)
    # two unreachable: k3s runs on s1 alone, etcd has no quorum; the startup stops at
    # etcd_quorum (issue 26) naming each member, before waiting on an API that cannot answer
    _, report = _startup_with_unreachable(twin, nut_server, tmp_path / "two", [s2, s3])
    stages = {s.name: s for s in report.stages}
    assert report.outcome is Outcome.FAILED, report.to_json()
    assert stages["start_servers"].nodes[s1] == "ok"
    assert twin.unit_active(s1) and not twin.api_ready(s1)
    quorum = stages["etcd_quorum"]
    assert quorum.status == "failed", quorum.to_json()
    assert quorum.nodes[s2] == quorum.nodes[s3] == "unreachable", quorum.to_json()
    assert f"{s2} unreachable" in report.message and f"{s3} unreachable" in report.message
    assert "no etcd quorum within 10s" in report.message
    assert 10 <= quorum.duration_s < 20, quorum.duration_s  # bounded by its timeout
    assert "wait_api" not in stages and "start_agents" not in stages
