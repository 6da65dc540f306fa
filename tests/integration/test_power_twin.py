"""Out-of-band power on the twin's containers: a node that stays off when mains returns is
brought back by its BMC or by a magic packet, and its BMC powers it off (issue 25). One small
twin, a few seconds of podman: run under `flock /tmp/hecate-twin.lock`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import yaml

from tests.integration.test_power_bmc import PASSWORD, hecate
from tests.testbed.bmc import hardware
from tests.testbed.pytest_twin import TwinFactory
from tests.testbed.twin import make_tls, wait_until

MAC = "02:00:00:00:00:41"


def test_a_node_that_stays_off_is_powered_on_and_off_through_its_bmc_and_woken_by_lan(
    make_twin: TwinFactory, tmp_path: Path
) -> None:
    twin = make_twin(servers=1, agents=1)
    agent = twin.agents[0]
    twin.stays_off.add(agent.name)  # no "restore on AC loss" in its BIOS
    make_tls(tmp_path / "tls")
    nodes = {
        n.name: {"switch": {"container": n.container}, **({"mac": MAC} if n is agent else {})}
        for n in twin.nodes
    }
    with hardware(tmp_path / "hw", nodes, password=PASSWORD, tls=tmp_path / "tls") as hw:
        secret = tmp_path / "bmc-pass"
        secret.write_text(PASSWORD + "\n")
        secret.chmod(0o600)

        def config(method: str) -> str:
            entry: dict[str, Any] = {
                "method": "ipmi",
                "address": f"127.0.0.1:{hw.ipmi_ports[agent.name]}",
                "user": "admin",
                "password_file": str(secret),
                "cipher_suite": 3,
            }
            if method == "wol":
                entry = {"method": "wol", "mac": MAC, "broadcast": "127.0.0.1", "port": hw.wol_port}
            data = {
                "ups": {"target": "ups@127.0.0.1"},
                "state_dir": str(tmp_path / "state"),
                "nodes": {"servers": [twin.servers[0].name], "agents": [agent.name]},
                "ssh_node_hosts": {n.name: f"127.0.0.1:{n.ssh_port}" for n in twin.nodes},
                "power": {"nodes": {agent.name: entry}},
            }
            path = tmp_path / f"{method}.yaml"
            path.write_text(yaml.safe_dump(data))
            return str(path)

        def status() -> dict[str, Any]:
            done = hecate("power", "status", agent.name, "--json", "-c", config("ipmi"))
            assert done.returncode == 0, done.stderr
            row: dict[str, Any] = json.loads(done.stdout)["nodes"][0]
            return row

        twin.poweroff(agent)  # a power cut
        assert twin.mains_returns() == []  # mains is back; the agent stays off
        assert not twin.is_running(agent)
        assert status()["state"] == "off"

        done = hecate("power", "on", agent.name, "--execute", "-c", config("ipmi"))
        assert done.returncode == 0, done.stderr
        twin.wait_ssh(agent, 60)
        row = status()
        assert (row["state"], row["ssh"]["answers"]) == ("on", True)

        started = time.monotonic()  # soft off: the OS shuts down (systemctl poweroff)
        done = hecate("power", "off", agent.name, "--execute", "-c", config("ipmi"))
        assert done.returncode == 0, done.stderr
        wait_until(lambda: not twin.is_running(agent), 60, "the agent did not power off")
        soft_seconds = time.monotonic() - started

        done = hecate("power", "on", agent.name, "--execute", "-c", config("wol"))
        assert done.returncode == 0, done.stderr
        twin.wait_ssh(agent, 60)
        assert [e["mac"] for e in hw.events() if e["via"] == "wol"][:1] == [MAC]
    assert soft_seconds < 30
