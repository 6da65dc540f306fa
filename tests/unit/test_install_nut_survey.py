"""roles/hecate_install/files/nut_survey.py, run for real (a subprocess, as the role runs it)
on trees of real files under --root: what the installer calls "another NUT" (left alone by
HECATE_MANAGE_NUT=auto), an upsmon at work (never masked) and the USB UPS it may use (no vendor
assumed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "roles/hecate_install/files/nut_survey.py"
TEMPLATES = SCRIPT.parents[1] / "templates/nut"

# Debian 12's files as nut-server installs them: NUT present, nothing set up.
DEBIAN_DEFAULTS = {
    "nut.conf": "# Network UPS Tools: example nut.conf\n#\nMODE=none\n",
    "ups.conf": "# Network UPS Tools: example ups.conf\n#\nmaxretry = 3\n# [myups]\n",
    "upsd.conf": "# Network UPS Tools: example upsd.conf\n# LISTEN 127.0.0.1 3493\n",
    "upsd.users": "# Network UPS Tools: Example upsd.users\n# [admin]\n#\tpassword = x\n",
    "upsmon.conf": '# MONITOR myups@localhost 1 upsmon pass master\nSHUTDOWNCMD "/sbin/halt"\n',
}
# A NAS-style NUT set up by someone else.
CONFIGURED = {
    "nut.conf": 'MODE="netserver"\n',
    "ups.conf": "[nas]\n\tdriver = usbhid-ups\n\tport = auto\n",
    "upsd.conf": "LISTEN 0.0.0.0 3493\n",
    "upsd.users": "[admin]\n\tpassword = secret\n\tupsmon primary\n",
    "upsmon.conf": "MONITOR nas@localhost 1 admin secret primary\n",
}
# The installer's own files (the first lines its templates write).
OURS_HEADER = "# Ansible managed\n# Hecate's installer (HECATE_MANAGE_NUT=0 leaves NUT alone).\n"
OURS = {
    "nut.conf": OURS_HEADER + "MODE=netserver\n",
    "ups.conf": OURS_HEADER
    + "maxretry = 3\n\n[pyrphoros]\n\tdriver = usbhid-ups\n\tport = auto\n"
    + '\tvendorid = 051d\n\tproductid = 0002\n\tdesc = "UPS"\n',
    "upsd.conf": OURS_HEADER + "LISTEN 127.0.0.1 3493\n",
    "upsd.users": "# Ansible managed\n# Hecate's installer: the user Hecate logs in as\n"
    '[monuser]\n\tpassword = "x"\n\tupsmon primary\n',
}
# From NUT's 62-nut-usbups.rules (the format Debian ships).
NUT_RULES = """# This file is generated and installed by the Network UPS Tools package.
LABEL="nut-usbups_rules_real"
# APC
#  various models  - usbhid-ups
ATTR{idVendor}=="051d", ATTR{idProduct}=="0002", MODE="664", GROUP="nut"
# Phoenixtec Power Co., Ltd
#  Online Yunto YQ450  - nutdrv_qx
ATTR{idVendor}=="06da", ATTR{idProduct}=="0003", MODE="664", GROUP="nut"
"""


def run(root: Path, what: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--root", str(root), what],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def etc_nut(root: Path, files: dict[str, str]) -> None:
    (root / "etc/nut").mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / "etc/nut" / name).write_text(text)


def process(root: Path, pid: int, comm: str) -> None:
    (root / f"proc/{pid}").mkdir(parents=True)
    (root / f"proc/{pid}/comm").write_text(comm + "\n")


def usb_device(root: Path, where: str, vendor: str, product: str, name: str = "") -> None:
    base = root / "sys/bus/usb/devices" / where
    base.mkdir(parents=True)
    (base / "idVendor").write_text(vendor + "\n")
    (base / "idProduct").write_text(product + "\n")
    if name:
        (base / "product").write_text(name + "\n")


def test_no_nut_at_all_is_free_to_manage(tmp_path: Path) -> None:
    found = run(tmp_path, "survey")
    assert found == {
        "existing": False,
        "found": [],
        "ours": [],
        "ups_names": [],
        "upsmon_in_use": [],
        "our_ups": {},
    }


def test_debian_defaults_are_not_a_configured_nut(tmp_path: Path) -> None:
    etc_nut(tmp_path, DEBIAN_DEFAULTS)
    found = run(tmp_path, "survey")
    assert (found["existing"], found["found"], found["upsmon_in_use"]) == (False, [], [])


def test_a_configured_nut_is_found_with_every_sign(tmp_path: Path) -> None:
    etc_nut(tmp_path, CONFIGURED)
    process(tmp_path, 41, "upsd")
    process(tmp_path, 42, "upsmon")
    process(tmp_path, 43, "bash")
    found = run(tmp_path, "survey")
    assert found["existing"] is True
    assert found["found"] == [
        "/etc/nut/nut.conf sets MODE=netserver",
        "/etc/nut/ups.conf defines the UPS nas",
        "/etc/nut/upsd.users defines the user admin",
        "/etc/nut/upsd.conf has settings (LISTEN 0.0.0.0 3493 ...)",
        "/etc/nut/upsmon.conf monitors nas@localhost",
        "upsmon is running (pid 42)",
        "upsd is running (pid 41)",
    ]
    assert found["ups_names"] == ["nas"]
    assert found["upsmon_in_use"] == [
        "/etc/nut/upsmon.conf monitors nas@localhost",
        "upsmon is running (pid 42)",
    ]
    assert found["our_ups"] == {}


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("nut.conf", "MODE=netclient\n"),  # a Pi watching a NAS's UPS
        ("nut.conf", "MODE = standalone # comment\n"),
        ("ups.conf", "maxretry = 3\n  [eaton]\n\tdriver = usbhid-ups\n"),
        ("upsd.users", "[observer]\n\tpassword = x\n"),
        ("upsmon.conf", "MONITOR ups@nas.lan 1 monuser pw secondary\n"),
    ],
)
def test_any_one_sign_is_enough(tmp_path: Path, name: str, text: str) -> None:
    etc_nut(tmp_path, {**DEBIAN_DEFAULTS, name: text})
    found = run(tmp_path, "survey")
    assert found["existing"] is True
    assert len(found["found"]) == 1, found["found"]


def test_a_running_upsd_without_any_file_is_another_nut(tmp_path: Path) -> None:
    process(tmp_path, 7, "upsd")  # e.g. NUT built from source, configured elsewhere
    found = run(tmp_path, "survey")
    assert found["existing"] is True
    assert found["found"] == ["upsd is running (pid 7)"]
    assert found["upsmon_in_use"] == []


def test_the_installers_own_files_are_not_another_nut(tmp_path: Path) -> None:
    etc_nut(tmp_path, {**OURS, "upsmon.conf": DEBIAN_DEFAULTS["upsmon.conf"]})
    process(tmp_path, 9, "upsd")  # the installer's own upsd
    found = run(tmp_path, "survey")
    assert found["existing"] is False, found["found"]
    assert found["ours"] == ["nut.conf", "ups.conf", "upsd.conf", "upsd.users"]
    # its USB ids are kept by later runs
    assert found["our_ups"] == {
        "driver": "usbhid-ups",
        "port": "auto",
        "vendorid": "051d",
        "productid": "0002",
        "desc": "UPS",
    }


def test_the_templates_carry_the_marker() -> None:
    """Each file the installer writes in /etc/nut is recognised as its own on the next run."""
    for name in ("nut.conf", "ups.conf", "upsd.conf", "upsd.users"):
        lines = (TEMPLATES / f"{name}.j2").read_text().splitlines()[:5]
        assert any("Hecate's installer" in line for line in lines), name


def test_an_edited_file_without_the_marker_is_someone_elses(tmp_path: Path) -> None:
    etc_nut(tmp_path, {**OURS, "upsd.users": "[admin]\n\tpassword = mine\n"})
    found = run(tmp_path, "survey")
    assert found["found"] == ["/etc/nut/upsd.users defines the user admin"]


def test_an_upsmon_added_to_the_installers_nut_is_at_work_but_no_other_nut(
    tmp_path: Path,
) -> None:
    etc_nut(tmp_path, {**OURS, "upsmon.conf": "MONITOR pyrphoros@localhost 1 monuser x primary\n"})
    process(tmp_path, 5, "upsmon")
    found = run(tmp_path, "survey")
    assert found["upsmon_in_use"] == [
        "/etc/nut/upsmon.conf monitors pyrphoros@localhost",
        "upsmon is running (pid 5)",
    ]
    assert (found["existing"], found["found"]) == (False, [])


def test_usb_finds_only_upses_nut_knows(tmp_path: Path) -> None:
    (tmp_path / "lib/udev/rules.d").mkdir(parents=True)
    (tmp_path / "lib/udev/rules.d/62-nut-usbups.rules").write_text(NUT_RULES)
    usb_device(tmp_path, "1-1", "046d", "c52b", "Unifying Receiver")  # a mouse dongle
    usb_device(tmp_path, "1-2", "051D", "0002", "Back-UPS ES 700")
    found = run(tmp_path, "usb")
    assert found["devices"] == [
        {
            "vendor": "051d",
            "product": "0002",
            "driver": "usbhid-ups",
            "name": "Back-UPS ES 700",
            "where": "/sys/bus/usb/devices/1-2",
        }
    ]
    assert "62-nut-usbups.rules" in found["source"]


def test_usb_reports_several_and_their_drivers(tmp_path: Path) -> None:
    (tmp_path / "lib/udev/rules.d").mkdir(parents=True)
    (tmp_path / "lib/udev/rules.d/62-nut-usbups.rules").write_text(NUT_RULES)
    usb_device(tmp_path, "1-2", "051d", "0002")
    usb_device(tmp_path, "2-1", "06da", "0003")
    found = run(tmp_path, "usb")
    assert [(d["vendor"], d["product"], d["driver"]) for d in found["devices"]] == [
        ("051d", "0002", "usbhid-ups"),
        ("06da", "0003", "nutdrv_qx"),
    ]


def test_usb_without_nuts_list_finds_nothing_and_says_why(tmp_path: Path) -> None:
    usb_device(tmp_path, "1-2", "051d", "0002")  # no rules to tell a UPS from anything else
    found = run(tmp_path, "usb")
    assert found["devices"] == []
    assert "neither NUT's udev rules nor nut-scanner" in found["note"]
