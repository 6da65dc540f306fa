"""Hecate's playbooks through the runner port against the cluster twin (real SSH, limited sudo).

The twin (1 server + 2 agents) is shared by this module: every test leaves the units running
and the nodes powered on, as it found them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from hecate.adapters.ansible.assets import Playbook
from hecate.adapters.ansible.port import AnsiblePort
from hecate.adapters.ansible.protocol import PlaybookRequest, PlaybookResult
from hecate.config.model import HecateConfig, parse_config
from tests.testbed.twin import Twin, TwinNode, wait_until

pytestmark = pytest.mark.integration

TIMEOUT_S = 120.0


def twin_config(twin: Twin, state_dir: Path, **overrides: object) -> HecateConfig:
    data: dict[str, object] = {
        "nodes": {
            "servers": [n.name for n in twin.servers],
            "agents": [n.name for n in twin.agents],
        },
        "state_dir": str(state_dir),
        "ssh_user": twin.ssh_user,
        "ssh_identity_file": str(twin.ssh_key),
        "ssh_node_hosts": twin.ssh_node_hosts(),
        "ssh_connect_timeout_seconds": 5,
        "ups": {"target": "pyrphoros@localhost"},
    }
    data.update(overrides)
    return parse_config(data)


@pytest.fixture(scope="module")
def port(twin: Twin, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnsiblePort]:
    config = twin_config(twin, tmp_path_factory.mktemp("hecate-state"))
    with AnsiblePort.from_config(config) as made:
        yield made


@pytest.fixture
def restore(twin: Twin) -> Iterator[None]:
    """Put every node back on and every k3s unit back up after the test."""
    yield
    for node in twin.nodes:
        if not twin.is_running(node):
            twin.power_on(node)
    for node in twin.nodes:
        if not twin.unit_active(node):
            twin.start_unit(node)


def run(
    port: AnsiblePort, playbook: str, limit: list[str] | None, **extravars: object
) -> PlaybookResult:
    return port.run(
        PlaybookRequest(playbook, limit=limit, extravars=extravars, timeout_s=TIMEOUT_S)
    )


def names(nodes: Sequence[TwinNode]) -> list[str]:
    return sorted(n.name for n in nodes)


def test_ping_reaches_every_node(twin: Twin, port: AnsiblePort) -> None:
    result = run(port, Playbook.PING, None)
    assert result.status == "successful", result.summary()
    assert sorted(result.hosts) == names(twin.nodes)
    assert port.warnings == []


def test_stop_and_start_agents(twin: Twin, port: AnsiblePort, restore: None) -> None:
    agents = names(twin.agents)
    stopped = run(port, Playbook.STOP_AGENTS, agents)
    assert stopped.status == "successful", stopped.summary()
    assert stopped.changed_hosts == agents
    assert not any(twin.unit_active(a) for a in agents)
    assert all(twin.unit_active(s) for s in twin.servers)
    assert {t.host for t in stopped.tasks} == set(agents)
    assert all(t.duration_s is not None for t in stopped.tasks)

    again = run(port, Playbook.STOP_AGENTS, agents)
    assert again.ok and again.changed_hosts == []  # idempotent

    started = run(port, Playbook.START_AGENTS, agents)
    assert started.status == "successful", started.summary()
    assert started.changed_hosts == agents
    assert all(twin.unit_active(a) for a in agents)


def test_stop_and_start_servers_takes_the_api_down_and_up(
    twin: Twin, port: AnsiblePort, restore: None
) -> None:
    servers = names(twin.servers)
    assert twin.api_ready()
    stopped = run(port, Playbook.STOP_SERVERS, servers, k3s_service_use_killall=True)
    assert stopped.status == "successful", stopped.summary()
    assert not any(twin.unit_active(s) for s in servers)
    wait_until(lambda: not twin.api_ready(), 15, "the API still answers")

    started = run(port, Playbook.START_SERVERS, servers)
    assert started.status == "successful", started.summary()
    assert all(twin.unit_active(s) for s in servers)
    wait_until(twin.api_ready, 30, "the API does not come back")


def test_etcd_snapshot_writes_a_file(twin: Twin, port: AnsiblePort) -> None:
    server = twin.servers[0].name
    name = f"hecate-it-{int(time.time())}"
    result = run(port, Playbook.ETCD_SNAPSHOT, [server], etcd_snapshot_name=name)
    assert result.status == "successful", result.summary()
    assert result.changed_hosts == [server]
    listing = twin.exec(server, "ls", "/var/lib/rancher/k3s/server/db/snapshots")
    assert any(line.startswith(f"{name}-") for line in listing.stdout.splitlines()), listing


def test_etcd_snapshot_failure_is_reported_not_fatal_when_not_required(
    twin: Twin, port: AnsiblePort
) -> None:
    server = twin.servers[0].name
    optional = run(
        port,
        Playbook.ETCD_SNAPSHOT,
        [server],
        etcd_snapshot_k3s_bin="/usr/local/bin/k3s-missing",
        etcd_snapshot_required=False,
    )
    assert optional.status == "successful", optional.summary()
    assert optional.hosts[server].rescued == 1
    required = run(
        port, Playbook.ETCD_SNAPSHOT, [server], etcd_snapshot_k3s_bin="/usr/local/bin/k3s-missing"
    )
    assert required.status == "failed" and required.failed_hosts == [server]


def test_poweroff_in_marker_mode_agents_then_servers(twin: Twin, port: AnsiblePort) -> None:
    marker = "/tmp/hecate-it-poweroff-marker"
    for group in (twin.agents, twin.servers):
        result = run(
            port,
            Playbook.POWEROFF,
            names(group),
            node_power_mode="marker",
            node_power_marker_path=marker,
        )
        assert result.status == "successful", result.summary()
        assert sorted(result.hosts) == names(group)
    for node in twin.nodes:
        assert twin.exec(node, "test", "-f", marker).returncode == 0
        assert twin.is_running(node)
        twin.exec(node, "rm", "-f", marker)


def test_real_poweroff_is_fire_and_forget(twin: Twin, port: AnsiblePort, restore: None) -> None:
    agent = twin.agents[-1].name
    result = run(port, Playbook.POWEROFF, [agent], node_power_mode="poweroff")
    assert result.status == "successful", result.summary()
    wait_until(lambda: not twin.is_running(agent), 60, f"{agent} is still on")


def test_unreachable_node_is_reported_while_the_other_is_stopped(
    twin: Twin, port: AnsiblePort, restore: None
) -> None:
    down, up = twin.agents[-1].name, twin.agents[0].name
    twin.poweroff(down)
    started = time.monotonic()
    result = run(port, Playbook.STOP_AGENTS, [up, down])
    assert result.status == "failed"
    assert result.unreachable_hosts == [down]
    assert result.failed_hosts == []
    assert result.succeeded_hosts == [up]
    assert not twin.unit_active(up)
    assert time.monotonic() - started < 60  # bounded by the connect timeout, not the job timeout


def test_check_mode_changes_nothing(twin: Twin, port: AnsiblePort) -> None:
    agents = names(twin.agents)
    result = port.run(PlaybookRequest(Playbook.STOP_AGENTS, limit=agents, check=True))
    assert result.status == "successful", result.summary()
    assert all(twin.unit_active(a) for a in agents)


def test_jump_host_fallback_still_reaches_the_nodes(twin: Twin, tmp_path: Path) -> None:
    config = twin_config(twin, tmp_path / "state", ssh_jump_host="127.0.0.1:1")
    with AnsiblePort.from_config(config) as fallback:
        assert fallback.warnings and "falling back to direct SSH" in fallback.warnings[0]
        result = run(fallback, Playbook.PING, None)
    assert result.status == "successful", result.summary()
