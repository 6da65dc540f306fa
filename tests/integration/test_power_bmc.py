"""`hecate power` against the twin's hardware (tests/testbed/bmc.py): real IPMI BMCs (pyghmi)
spoken to by the real ipmitool, a Wake-on-LAN listener, a Redfish endpoint over TLS. The nodes
are files holding on/off: no container is needed to prove the power paths (the twin's
containers: test_power_twin.py)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hecate.adapters.power.redfish import RedfishDriver
from hecate.config.power import RedfishPower
from tests.testbed.bmc import Hardware, hardware
from tests.testbed.twin import make_tls

PASSWORD = "bmc-Pa55-word"  # noqa: S105 - the twin's BMC
WRONG = "not-the-Pa55"
ROOT = Path(__file__).resolve().parents[2]
MACS = {"wol-1": "02:00:00:00:00:21"}
NODES = ["ipmi-0", "ipmi-1", "wol-1", "rf-2"]


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Hardware, Path]]:
    work = tmp_path_factory.mktemp("power")
    make_tls(work / "tls")
    nodes: dict[str, dict[str, Any]] = {}
    for node in NODES:
        (work / f"{node}.power").write_text("off\n")
        nodes[node] = {"switch": {"file": str(work / f"{node}.power")}}
        if node in MACS:
            nodes[node]["mac"] = MACS[node]
    with hardware(work / "hw", nodes, password=PASSWORD, tls=work / "tls") as hw:
        yield hw, work


def _closed_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_config(
    work: Path, hw: Hardware, *, password: str = PASSWORD, extra: dict[str, Any] | None = None
) -> Path:
    secret = work / f"pass-{password}"
    secret.write_text(password + "\n")
    secret.chmod(0o600)
    ipmi = {"user": "admin", "password_file": str(secret), "cipher_suite": 3}  # pyghmi: SHA-1
    power: dict[str, Any] = {
        "ipmi-0": {"method": "ipmi", "address": f"127.0.0.1:{hw.ipmi_ports['ipmi-0']}", **ipmi},
        "ipmi-1": {"method": "ipmi", "address": f"127.0.0.1:{hw.ipmi_ports['ipmi-1']}", **ipmi},
        "wol-1": {
            "method": "wol",
            "mac": MACS["wol-1"],
            "broadcast": "127.0.0.1",
            "port": hw.wol_port,
        },
        "rf-2": {
            "method": "redfish",
            "url": f"https://127.0.0.1:{hw.redfish_port}",
            "user": "admin",
            "password_file": str(secret),
            "system": "rf-2",
            "ca_file": str(work / "tls" / "ca.crt"),
        },
        **(extra or {}),
    }
    nodes = [*NODES, *(extra or {})]
    data = {
        "ups": {"target": "ups@127.0.0.1"},
        "state_dir": str(work / "state"),
        "nodes": {"servers": nodes[:1], "agents": nodes[1:]},
        # nothing listens there: SSH never answers
        "ssh_node_hosts": {n: f"127.0.0.1:{_closed_port()}" for n in nodes},
        "power": {"nodes": power},
    }
    path = work / f"hecate-{password}-{len(nodes)}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def hecate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hecate", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def set_power(work: Path, node: str, state: str) -> None:
    (work / f"{node}.power").write_text(f"{state}\n")


def wait_power(work: Path, node: str, state: str, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while (work / f"{node}.power").read_text().strip() != state:
        assert time.monotonic() < deadline, f"{node} is not {state}"
        time.sleep(0.05)


def test_ipmitool_speaks_to_the_twins_bmc(bench: tuple[Hardware, Path]) -> None:
    """The BMC is standard IPMI 2.0: Debian's ipmitool reads and switches it."""
    hw, work = bench
    set_power(work, "ipmi-1", "off")
    argv = ["ipmitool", "-I", "lanplus", "-H", "127.0.0.1", "-p", str(hw.ipmi_ports["ipmi-1"])]
    argv += ["-U", "admin", "-E", "-C", "3"]
    env = {**os.environ, "IPMI_PASSWORD": PASSWORD}

    def run(*command: str) -> str:
        done = subprocess.run(
            [*argv, *command], env=env, capture_output=True, text=True, timeout=30, check=True
        )
        return done.stdout.strip()

    assert run("chassis", "power", "status") == "Chassis Power is off"
    assert run("chassis", "power", "on") == "Chassis Power Control: Up/On"
    wait_power(work, "ipmi-1", "on")
    assert run("chassis", "power", "status") == "Chassis Power is on"


def test_power_status_reads_each_nodes_state_with_its_reason(
    bench: tuple[Hardware, Path],
) -> None:
    hw, work = bench
    set_power(work, "ipmi-0", "on")
    set_power(work, "ipmi-1", "off")
    set_power(work, "rf-2", "on")
    done = hecate("power", "status", "--json", "-c", str(write_config(work, hw)))
    assert done.returncode == 0, done.stderr
    rows = {row["node"]: row for row in json.loads(done.stdout)["nodes"]}
    ipmi_0 = hw.ipmi_ports["ipmi-0"]
    assert rows["ipmi-0"]["state"] == "on"
    assert rows["ipmi-0"]["reason"] == f"BMC 127.0.0.1:{ipmi_0} says on"
    # the BMC says on, and SSH never answers: said, not hidden
    assert rows["ipmi-0"]["ssh"]["answers"] is False
    assert "SSH does not answer" in rows["ipmi-0"]["note"]
    assert (rows["ipmi-1"]["state"], rows["ipmi-1"]["method"]) == ("off", "ipmi")
    assert "note" not in rows["ipmi-1"]
    assert rows["wol-1"]["state"] == "unknown"
    assert "Wake-on-LAN cannot read a power state" in rows["wol-1"]["reason"]
    assert (rows["rf-2"]["state"], rows["rf-2"]["method"]) == ("on", "redfish")


def test_power_on_execute_turns_an_ipmi_node_on(bench: tuple[Hardware, Path]) -> None:
    hw, work = bench
    set_power(work, "ipmi-1", "off")
    config = str(write_config(work, hw))
    dry = hecate("power", "on", "ipmi-1", "-c", config)
    assert dry.returncode == 0 and "would power on ipmi-1" in dry.stdout
    time.sleep(0.2)
    assert (work / "ipmi-1.power").read_text().strip() == "off"  # a dry run switches nothing
    done = hecate("power", "on", "ipmi-1", "--execute", "-c", config)
    assert done.returncode == 0, done.stderr
    wait_power(work, "ipmi-1", "on")
    assert hecate("power", "status", "ipmi-1", "-c", config).stdout.split()[2] == "on"
    soft = hecate("power", "off", "ipmi-1", "--execute", "-c", config)
    assert "accepted chassis power soft" in soft.stdout
    wait_power(work, "ipmi-1", "off")
    assert {"node": "ipmi-1", "via": "ipmi", "action": "off"}.items() <= hw.events()[-1].items()


def test_a_wake_on_lan_node_gets_a_magic_packet_carrying_its_mac(
    bench: tuple[Hardware, Path],
) -> None:
    hw, work = bench
    set_power(work, "wol-1", "off")
    done = hecate("power", "on", "wol-1", "--execute", "-c", str(write_config(work, hw)))
    assert done.returncode == 0, done.stderr
    wait_power(work, "wol-1", "on")
    packets = [e for e in hw.events() if e["via"] == "wol"]
    assert packets and {e["mac"] for e in packets} == {MACS["wol-1"]}
    off = hecate("power", "off", "wol-1", "--execute", "-c", str(write_config(work, hw)))
    assert off.returncode == 1
    assert off.stderr.strip() == "error: wol-1: no BMC: off goes through SSH"


def test_redfish_reads_and_switches_over_tls(bench: tuple[Hardware, Path]) -> None:
    hw, work = bench
    set_power(work, "rf-2", "on")
    config = str(write_config(work, hw))
    done = hecate("power", "off", "rf-2", "--hard", "--execute", "--json", "-c", config)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["results"][0]["reason"].endswith("ResetType ForceOff")
    wait_power(work, "rf-2", "off")
    assert hecate("power", "status", "rf-2", "-c", config).stdout.split()[2] == "off"


def test_a_wrong_password_is_one_line_per_node_and_never_shown(
    bench: tuple[Hardware, Path],
) -> None:
    hw, work = bench
    config = str(write_config(work, hw, password=WRONG))
    for args in (["status"], ["on", "--execute"], ["status", "--json"]):
        done = hecate("power", *args, "ipmi-0", "rf-2", "-c", config)
        assert done.returncode == 1
        assert "Traceback" not in done.stderr
        for text in (done.stdout, done.stderr):
            assert WRONG not in text and PASSWORD not in text
        if "--json" in args:
            continue
        assert done.stderr.splitlines() == [
            f"error: ipmi-0: BMC 127.0.0.1:{hw.ipmi_ports['ipmi-0']}: the BMC refused the "
            "password (check the password file)",
            f"error: rf-2: Redfish https://127.0.0.1:{hw.redfish_port} refused the credentials "
            "of user 'admin' (HTTP 401)",
        ]


def test_unreachable_and_hanging_bmcs_are_bounded_and_leave_the_others_alone(
    bench: tuple[Hardware, Path],
) -> None:
    hw, work = bench
    set_power(work, "ipmi-0", "on")
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # takes packets, never answers
    silent.bind(("127.0.0.1", 0))
    with silent:
        ipmi = {"method": "ipmi", "user": "admin", "cipher_suite": 3}
        secret = str(work / f"pass-{PASSWORD}")
        extra = {
            "hangs": {**ipmi, "address": f"127.0.0.1:{silent.getsockname()[1]}"},
            "gone": {**ipmi, "address": f"127.0.0.1:{_closed_port(socket.SOCK_DGRAM)}"},
        }
        for entry in extra.values():
            entry["password_file"] = secret
        config = str(write_config(work, hw, extra=extra))
        started = time.monotonic()
        done = hecate("power", "status", "ipmi-0", "hangs", "gone", "-c", config)
        took = time.monotonic() - started
    assert took < 15  # each BMC call is bounded (10 s), and they run side by side
    assert done.returncode == 1
    assert done.stdout.split()[:3] == ["ipmi-0", "ipmi", "on"]
    errors = done.stderr.splitlines()
    assert [line.split(":")[1].strip() for line in errors] == ["hangs", "gone"]
    assert all("no answer (unreachable" in line for line in errors), errors


def test_redfish_tls_is_verified_unless_told_otherwise(bench: tuple[Hardware, Path]) -> None:
    hw, work = bench
    secret = work / "pass-tls"
    secret.write_text(PASSWORD + "\n")
    secret.chmod(0o600)
    base = {
        "method": "redfish",
        "url": f"https://127.0.0.1:{hw.redfish_port}",
        "user": "admin",
        "password_file": str(secret),
        "system": "rf-2",
    }
    untrusted = RedfishDriver("rf-2", RedfishPower.model_validate(base)).status()
    assert untrusted.state == "unknown"
    assert "TLS certificate not trusted" in untrusted.reason and "ca_file" in untrusted.reason
    unverified = RedfishPower.model_validate({**base, "verify_tls": False})
    assert RedfishDriver("rf-2", unverified).status().state in ("on", "off")
    missing = RedfishPower.model_validate({**base, "system": "nope", "verify_tls": False})
    assert "HTTP 404" in RedfishDriver("rf-2", missing).status().reason
