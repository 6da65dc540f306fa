"""`hecate doctor` on out-of-band power (pure verdicts; the WoL probe lines run in a real shell)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from hecate.config.model import HecateConfig, parse_config
from hecate.core.doctor.nodes import SshOutcome, node_findings, parse_probe, probe_script
from hecate.core.doctor.power import (
    STAYS_OFF,
    WolSeen,
    bmc_finding,
    power_config_findings,
    wol_finding,
    wol_probe_lines,
)
from hecate.core.power import PowerReading

MAC = "02:00:00:00:00:31"


def config(tmp_path: Path, **overrides: Any) -> HecateConfig:
    secret = str(tmp_path / "bmc")
    data: dict[str, Any] = {
        "ups": {"target": "u@127.0.0.1"},
        "nodes": {"servers": ["s0"], "agents": ["a1", "a2", "a3"]},
        "power": {
            "nodes": {
                "s0": {
                    "method": "ipmi",
                    "address": "127.0.0.1:1623",
                    "user": "admin",
                    "password_file": secret,
                },
                "a1": {"method": "wol", "mac": MAC},
                "a2": {
                    "method": "redfish",
                    "url": "https://127.0.0.1:8443",
                    "user": "admin",
                    "password_file": secret,
                },
            }
        },
        **overrides,
    }
    return parse_config(data)


def test_every_none_node_is_warned_about_while_the_ups_does_not_cut_power(
    tmp_path: Path,
) -> None:
    findings = power_config_findings(config(tmp_path))
    assert [(f.check, f.status) for f in findings] == [("power.a3", "warn")]
    assert STAYS_OFF in findings[0].detail
    assert power_config_findings(config(tmp_path, shutdown={"ups_kill_power": True})) == []


def test_a_hecate_host_that_powers_itself_off_cannot_power_anything_on(tmp_path: Path) -> None:
    cfg = config(tmp_path, shutdown={"poweroff_local_host": True, "ups_kill_power": True})
    (finding,) = power_config_findings(cfg)
    assert (finding.check, finding.status) == ("power.local_host", "warn")
    assert "cannot power anything on (s0, a1, a2)" in finding.detail


def test_a_bmc_that_answers_is_ok_and_one_that_does_not_fails_with_how_to_try_it(
    tmp_path: Path,
) -> None:
    cfg = config(tmp_path)
    good = bmc_finding(cfg, PowerReading("s0", "ipmi", "off", "BMC 127.0.0.1:1623 says off"))
    assert good.status == "ok" and "accepts the credentials" in good.detail
    bad = bmc_finding(
        cfg, PowerReading("s0", "ipmi", "unknown", "BMC 127.0.0.1:1623: the BMC refused ...")
    )
    assert bad.status == "fail"
    assert "-E -C 17 chassis power status" in bad.fix and "-P" not in bad.fix
    rf = bmc_finding(cfg, PowerReading("a2", "redfish", "unknown", "HTTP 401"))
    assert rf.status == "fail" and "/redfish/v1/Systems/1" in rf.fix


@pytest.mark.parametrize(
    ("seen", "status"),
    [
        (WolSeen("eth0", "enabled", "g"), "ok"),
        (WolSeen("eth0", "enabled", "pumbg"), "ok"),
        (WolSeen("eth0", "enabled", "d"), "fail"),
        (WolSeen("eth0", "disabled", "g"), "fail"),
        (WolSeen("eth0", "none", "-"), "warn"),
        (None, "fail"),  # a wrong MAC: no card has it
    ],
)
def test_wake_on_lan_armed_or_not(tmp_path: Path, seen: WolSeen | None, status: str) -> None:
    assert wol_finding(config(tmp_path), "a1", seen).status == status


def test_the_probe_finds_the_card_with_the_mac_in_a_real_shell(tmp_path: Path) -> None:
    """The probe lines run here, against this machine's /sys (a card here, and a MAC nobody has)."""
    here = next(
        p for p in sorted(Path("/sys/class/net").iterdir()) if p.name != "lo"
    )  # any card but loopback
    mac = (here / "address").read_text().strip()
    for wanted, expect in ((mac, here.name), ("02:99:99:99:99:99", None)):
        script = probe_script([], "k3s-agent", wanted)
        done = subprocess.run(
            ["sh", "-c", script], capture_output=True, text=True, timeout=10, check=False
        )
        seen = parse_probe(done.stdout).wol
        assert (seen.interface if seen else None) == expect, done.stdout
    assert "= aa:bb:cc:dd:ee:ff ]" in wol_probe_lines("m", "aa:bb:cc:dd:ee:ff")[0]


def test_a_wol_node_doctor_cannot_reach_gets_the_reminder(tmp_path: Path) -> None:
    down = SshOutcome(255, "", "ssh: connect to host 127.0.0.1 port 1: Connection refused", 0, 1)
    findings = node_findings(config(tmp_path), "a1", "127.0.0.1:1", down, known_hosts="kh")
    assert [(f.check, f.status) for f in findings] == [
        ("node.a1.ssh", "fail"),
        ("power.a1.wol", "warn"),
    ]
    assert "must be enabled" in findings[1].fix
    up = SshOutcome(0, "hecate-doctor uid 0\nhecate-doctor wol eth0 enabled g\n", "", 0, 1)
    findings = node_findings(config(tmp_path), "a1", "127.0.0.1:1", up, known_hosts="kh")
    assert ("power.a1.wol", "ok") in [(f.check, f.status) for f in findings]
