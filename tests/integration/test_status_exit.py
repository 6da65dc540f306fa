"""`hecate status` and `hecate doctor` against a real upsd (no podman): exit 4 when the cluster
is not protected, NUT's own flag order, and a driver fix the installed NUT accepts.

Every command runs through the real console entry point in a subprocess (`python -m hecate`).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hecate.cli.cmd_doctor import ups_checks
from hecate.config.model import load_config
from tests.testbed.nut import DEFAULT_UPS, NutServer
from tests.testbed.pytest_nut import NutServerFactory

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "configs" / "hecate.example.yaml"
UPSDRVCTL = Path("/sbin/upsdrvctl")


def _config(tmp_path: Path, nut: NutServer) -> Path:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["state_dir"] = str(tmp_path / "state")
    data["ups"].update(
        target=nut.target(),
        user=nut.user,
        password_file=str(nut.password_file),
        timeout_seconds=3,
    )
    path = tmp_path / "hecate.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def hecate(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "hecate", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
        env=env,
    )


@pytest.fixture
def nut(nut_server_factory: NutServerFactory) -> NutServer:
    return nut_server_factory([DEFAULT_UPS])


def test_status_exits_0_when_protected_and_4_when_upsd_or_its_driver_is_gone(
    tmp_path: Path, nut: NutServer
) -> None:
    config = _config(tmp_path, nut)
    up = hecate("status", "--config", str(config), "--json")
    assert up.returncode == 0, up.stderr

    nut.stop_driver(DEFAULT_UPS)
    driver_down = hecate("status", "--config", str(config), "--json")
    assert driver_down.returncode == 4, driver_down.stderr
    assert json.loads(up.stdout)["protected"] is True
    report = json.loads(driver_down.stdout)  # the report is still printed, in full
    assert report["protected"] is False and report["ups"]["readable"] is False
    assert report["not_protected"]

    nut.stop_upsd()
    for args in (["--json"], []):
        down = hecate("status", "--config", str(config), *args)
        assert down.returncode == 4, (down.stdout, down.stderr)
    assert "not protected" in down.stderr
    assert "intent:" in down.stdout  # the text report too


def test_status_shows_the_flags_in_the_order_upsd_sends_them(
    tmp_path: Path, nut: NutServer
) -> None:
    config = _config(tmp_path, nut)
    nut.set_reading(status="OB DISCHRG", runtime=900, charge=80)
    text = hecate("status", "--config", str(config))
    assert text.returncode == 0, text.stderr
    assert "ups:     OB DISCHRG runtime=" in text.stdout
    as_json = hecate("status", "--config", str(config), "--json")
    assert json.loads(as_json.stdout)["ups"]["status"] == "OB DISCHRG"


def _upsdrvctl_commands() -> set[str]:
    """The commands the installed upsdrvctl accepts, from its own usage line:
    `usage: upsdrvctl [OPTIONS] (start | stop | shutdown) [<ups>]` on NUT 2.8.0."""
    done = subprocess.run(
        [str(UPSDRVCTL), "-h"], capture_output=True, text=True, timeout=10, check=False
    )
    usage = re.search(r"\(([a-z |-]+)\)", done.stdout + done.stderr)
    assert usage is not None, done.stdout + done.stderr
    return {word.strip() for word in usage[1].split("|")}


@pytest.mark.skipif(not UPSDRVCTL.exists(), reason="needs NUT's upsdrvctl")
def test_doctor_fix_for_a_stopped_driver_names_only_commands_the_installed_nut_accepts(
    tmp_path: Path, nut: NutServer
) -> None:
    cfg = load_config(_config(tmp_path, nut))
    nut.stop_driver(DEFAULT_UPS)
    read = next(f for f in ups_checks(cfg) if f.check == "ups.read")
    assert read.status == "fail"
    accepted = _upsdrvctl_commands()
    used = re.findall(r"upsdrvctl (\w+)", read.fix)
    assert used, read.fix  # it says how to start the driver
    assert set(used) <= accepted, (used, accepted)  # NUT 2.8.0 has no `upsdrvctl status`
    assert f"upsc {cfg.ups.target}" in read.fix
