"""The flows' power stages on the twin (issue 25): real node containers that stay off once
powered off, their real BMCs (tests/testbed/bmc.py: IPMI, Wake-on-LAN, Redfish switching the
containers), real Ansible, real upsd.

One twin for the module, the scenarios in the order a real outage would bring them: a shutdown
that reaches no node fails and `status` says the cluster was not stopped; the startup after it
powers the nodes on itself; then the power-race drill.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hecate.adapters.nut.port import Ups, poll
from hecate.cli.main import app
from hecate.config.model import HecateConfig, parse_config
from hecate.core.plans import ShutdownOptions, StartupOptions
from hecate.core.run_history import Outcome
from hecate.errors import UpsError
from hecate.flows.open_context import open_flow_context
from hecate.flows.report import FlowReport
from hecate.flows.shutdown import run_shutdown
from hecate.flows.startup import run_startup
from tests.integration.support import twin_config_data, write_config
from tests.testbed.bmc import Hardware, hardware
from tests.testbed.nut import NutServer
from tests.testbed.twin import Twin, make_tls

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "bmc-Pa55-word"  # noqa: S105 - the twin's BMC
WOL_MAC = "02:00:00:00:00:41"


@pytest.fixture(scope="module")
def bench(
    twin: Twin, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Twin, Hardware, Path]]:
    work = tmp_path_factory.mktemp("power-flows")
    make_tls(work / "tls")
    nodes: dict[str, dict[str, Any]] = {
        n.name: {"switch": {"container": n.container}} for n in twin.nodes
    }
    nodes[twin.agents[0].name]["mac"] = WOL_MAC
    with hardware(work / "hw", nodes, password=PASSWORD, tls=work / "tls") as hw:
        yield twin, hw, work


def _power_nodes(twin: Twin, hw: Hardware, work: Path) -> dict[str, Any]:
    """The server through IPMI, one agent by Wake-on-LAN, the other through Redfish."""
    secret = work / "bmc-password"
    secret.write_text(PASSWORD + "\n")
    secret.chmod(0o600)
    server, wol, redfish = twin.servers[0].name, twin.agents[0].name, twin.agents[1].name
    return {
        server: {
            "method": "ipmi",
            "address": f"127.0.0.1:{hw.ipmi_ports[server]}",
            "user": "admin",
            "password_file": str(secret),
            "cipher_suite": 3,  # pyghmi's BMC: SHA-1
        },
        wol: {"method": "wol", "mac": WOL_MAC, "broadcast": "127.0.0.1", "port": hw.wol_port},
        redfish: {
            "method": "redfish",
            "url": f"https://127.0.0.1:{hw.redfish_port}",
            "user": "admin",
            "password_file": str(secret),
            "system": redfish,
            "ca_file": str(work / "tls" / "ca.crt"),
        },
    }


def _flow(config: HecateConfig, run: Any) -> FlowReport:
    client = Ups.from_config(config).client
    with open_flow_context(config, read_ups=lambda: poll(client)) as ctx:
        report: FlowReport = run(ctx)
    return report


def _all_off(twin: Twin) -> None:
    for node in twin.nodes:  # a power cut: the containers stay off, nothing restarts them
        twin.poweroff(node)


def test_no_node_reached_then_the_startup_powers_the_nodes_on(
    bench: tuple[Twin, Hardware, Path], nut_server: NutServer, tmp_path: Path
) -> None:
    twin, hw, work = bench
    state = tmp_path / "state"
    # no power.nodes: SSH is the only way in, and every node is off
    plain = twin_config_data(twin, state, nut_server)
    config_file = write_config(tmp_path / "plain.yaml", plain)
    _all_off(twin)
    try:
        down = _flow(
            parse_config(plain), lambda ctx: run_shutdown(ctx, ShutdownOptions(reason="test"))
        )
        assert down.outcome is Outcome.FAILED, down.to_json()  # main: partial
        line = down.to_json()["cluster"]["line"]
        assert line.startswith("cluster not stopped: the shutdown reached no node (")
        assert "Connection refused" in line, line  # Ansible's per-host cause
        status = CliRunner().invoke(app, ["status", "--config", str(config_file)])
        assert f"nodes:   {line}" in status.output.splitlines(), status.output

        # the same state dir, now with the BMCs: the startup powers on what needs it
        powered = twin_config_data(
            twin, state, nut_server, power={"nodes": _power_nodes(twin, hw, work)}
        )
        up = _flow(parse_config(powered), lambda ctx: run_startup(ctx, StartupOptions()))
        assert up.outcome is Outcome.SUCCESS, up.to_json()
        stage = up.stages[0]
        assert stage.name == "power_on"
        assert stage.nodes == dict.fromkeys((n.name for n in twin.nodes), "powered_on")
        via = {
            (e.get("node"), e["via"]) for e in hw.events() if str(e.get("action")).lower() == "on"
        }
        assert {
            (twin.servers[0].name, "ipmi"),
            (twin.agents[0].name, "wol"),
            (twin.agents[1].name, "redfish"),
        } <= via, hw.events()
    finally:
        for node in twin.nodes:
            if not twin.is_running(node):
                twin.power_on(node)


def test_power_race_drill(
    bench: tuple[Twin, Hardware, Path], nut_server: NutServer, tmp_path: Path
) -> None:
    """Mains returns after the nodes are off and before the UPS cuts its output; the UPS
    refuses the kill-power command on mains. The twin's upsd refuses it too (dummy-ups takes no
    shutdown.return): the drill's simulated refusal is the real one's."""
    twin, hw, work = bench
    data = twin_config_data(
        twin, tmp_path / "state", nut_server, power={"nodes": _power_nodes(twin, hw, work)}
    )
    config = parse_config(data)
    with pytest.raises(UpsError, match=r"CMD-NOT-SUPPORTED|not supported"):
        Ups.from_config(config).instant_command("shutdown.return")
    config_file = write_config(tmp_path / "hecate.yaml", data)
    try:
        result = subprocess.run(
            [
                str(ROOT / "scripts" / "hecate-drills.sh"),
                *("run", "power-race", "--execute", "--yes", "--config", str(config_file)),
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        report = json.loads(result.stdout)
        failed = [c for c in report["checks"] if not c["ok"]]
        assert result.returncode == 0, (failed, result.stderr[-3000:])
        assert report["passed"] is True and report["manual_steps"] == 0
        assert [r["kind"] for r in report["runs"]] == ["shutdown", "startup"]
    finally:
        with contextlib.suppress(Exception):
            for node in twin.nodes:
                if not twin.is_running(node):
                    twin.power_on(node)
    deadline = time.monotonic() + 30
    while not twin.api_ready():
        assert time.monotonic() < deadline, "the cluster is not back after the drill"
        time.sleep(0.5)
