"""Issue #12 on the twin: one node with a wrong address (and one with a changed host key) never
keeps the shutdown from stopping and powering off every other node."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from hecate.adapters.ansible.inventory import known_hosts_path
from hecate.adapters.ansible.port import AnsiblePort
from hecate.adapters.kube.client import Kube
from hecate.adapters.statedir.store import StateStore
from hecate.core.plans import ShutdownOptions
from hecate.core.run_history import Outcome
from hecate.flows.context import FlowContext
from hecate.flows.shutdown import run_shutdown
from tests.integration.support import twin_config
from tests.testbed.pytest_twin import TwinFactory

pytestmark = pytest.mark.integration


def test_one_wrong_address_still_stops_and_powers_off_every_other_node(
    make_twin: TwinFactory, tmp_path: Path
) -> None:
    twin = make_twin(1, 3)
    wrong, changed_key, good = twin.agents
    state = tmp_path / "state"
    hosts = {n.name: f"127.0.0.1:{n.ssh_port}" for n in twin.nodes}
    hosts[wrong.name] = "127.0.0.1:1"  # well-formed, but nothing listens there
    config = twin_config(twin, state, ssh_node_hosts=hosts, ssh_connect_timeout_seconds=5)
    # A host key that is not the node's: ssh refuses it (StrictHostKeyChecking=accept-new
    # learns new hosts, never a changed key).
    key = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    public = key.with_suffix(".pub").read_text().split()
    known = known_hosts_path(config)
    known.parent.mkdir(parents=True, exist_ok=True)
    known.write_text(f"[127.0.0.1]:{changed_key.ssh_port} {public[0]} {public[1]}\n")

    with AnsiblePort.from_config(config) as ansible, Kube(config.kubeconfig) as kube:
        ctx = FlowContext(config, ansible, kube, StateStore(config.state_dir))
        report = run_shutdown(ctx, ShutdownOptions(mode="poweroff", skip_etcd_snapshot=True))

    assert report.outcome is Outcome.PARTIAL, report.to_json()
    nodes = report.to_json()["nodes"]
    assert nodes[wrong.name]["stop_agents"] == "unreachable"
    assert nodes[changed_key.name]["stop_agents"] == "unreachable"
    assert nodes[good.name]["stop_agents"] == "ok"
    assert nodes[twin.servers[0].name]["stop_servers"] == "ok"
    assert nodes[good.name]["poweroff_agents"] == "ok"
    assert nodes[twin.servers[0].name]["poweroff_servers"] == "ok"
    deadline = time.monotonic() + 30
    while twin.is_running(good) or twin.is_running(twin.servers[0]):
        assert time.monotonic() < deadline, "reachable nodes still running after poweroff"
        time.sleep(0.5)
    # the two bad nodes were never touched: still up, k3s-agent still running
    assert twin.is_running(wrong) and twin.unit_active(wrong)
    assert twin.is_running(changed_key) and twin.unit_active(changed_key)
