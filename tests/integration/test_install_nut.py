"""scripts/install.sh on a host where NUT already runs (a NAS's, a Pi's, one set up by hand).

One systemd node: nut-server from apt, set up as someone else would (MODE=netserver, a UPS
`nas` on dummy-ups, a user `admin`, upsmon watching it), upsd and upsmon running. Then, in order:
the default install leaves it byte for byte alone and upsmon unmasked; HECATE_MANAGE_NUT=1 takes
it over, keeping every file it replaces as FILE.hecate-backup-TIMESTAMP (and still not masking the
upsmon at work); a second run changes nothing and makes no new backup; and no USB vendor id is
written unless one is found on USB or given.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_install import (  # the module's wheelhouse fixture too
    CHECKOUT,
    REPO,
    SRC,
    WHEELS,
    changed_tasks,
    copy_in,
    exists,
    recap,
    run,
    tar_bytes,
    wheelhouse,  # noqa: F401
)
from tests.testbed.image import ensure_image, podman
from tests.testbed.twin import LABEL, LABEL_OWNER, LABEL_RUN, owner_label, wait_until

pytestmark = pytest.mark.integration

# No trusted keys: the self-update stays off, which is not what this module is about.
ENV = {
    "HECATE_NUT_DRIVER": "dummy-ups",
    "HECATE_WHEELHOUSE": WHEELS,
    "HECATE_INSTALL_PACKAGES": "1",
}
NUT_FILES = ("nut.conf", "ups.conf", "upsd.conf", "upsd.users")
EXISTING = {
    "nut.conf": "# set up by the NAS admin\nMODE=netserver\n",
    "ups.conf": '[nas]\n\tdriver = dummy-ups\n\tport = nas.dev\n\tdesc = "the NAS\'s UPS"\n',
    "nas.dev": "ups.status: OL\nbattery.charge: 100\nbattery.runtime: 3000\n",
    "upsd.conf": "LISTEN 127.0.0.1 3493\n",
    "upsd.users": "[admin]\n\tpassword = nas-secret\n\tupsmon primary\n",
    # upsmon really watches the UPS (its shutdown command harmless in a test node)
    "upsmon.conf": "MONITOR nas@localhost 1 admin nas-secret primary\n"
    'SHUTDOWNCMD "/bin/true"\nMINSUPPLIES 1\nPOWERDOWNFLAG /etc/killpower\n',
}
BACKUP = re.compile(r"^/etc/nut/(?P<file>[\w.]+)\.hecate-backup-\d{8}T\d{6}Z$")


def install(node: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    command = " ".join(["scripts/install.sh", *map(shlex.quote, args)])
    return run(node, f"cd {SRC} && {command}", timeout=900, env={**ENV, **env}, check=False)


def fingerprint(node: str) -> str:
    """Every file in /etc/nut: name, mode, owner and group, and a sha256 of its content."""
    return run(
        node,
        "cd /etc/nut && for f in *; do "
        'printf "%s %s\\n" "$(stat -c "%n %a %U %G" "$f")" "$(sha256sum < "$f")"; done',
    ).stdout


def backups(node: str) -> list[str]:
    done = run(node, "ls -1d /etc/nut/*.hecate-backup-* 2>/dev/null", check=False)
    return sorted(done.stdout.split())


def upsmon_state(node: str) -> tuple[str, str]:
    enabled = run(node, "systemctl is-enabled nut-monitor", check=False).stdout.strip()
    active = run(node, "systemctl is-active nut-monitor", check=False).stdout.strip()
    return enabled, active


@pytest.fixture(scope="module")
def node(wheelhouse: Path) -> Iterator[str]:  # noqa: F811 - the imported fixture
    name = f"hecate-install-nut-{uuid.uuid4().hex[:8]}"
    podman(
        "run",
        "--detach",
        "--name",
        name,
        "--hostname",
        "nas-host",
        "--label",
        f"{LABEL}=1",
        "--label",
        f"{LABEL_RUN}={name}",
        "--label",
        f"{LABEL_OWNER}={owner_label()}",
        "--cap-add",
        "SYS_ADMIN",
        ensure_image(),
    )
    try:
        wait_until(
            lambda: (
                run(name, "systemctl is-system-running", check=False).stdout.strip()
                in ("running", "degraded")
            ),
            60,
            "systemd in the node",
        )
        run(
            name,
            "DEBIAN_FRONTEND=noninteractive apt-get update -q && DEBIAN_FRONTEND=noninteractive "
            "apt-get install -y -q --no-install-recommends nut-server nut-client",
            timeout=600,
        )
        for file, text in EXISTING.items():
            run(name, f"printf %s {shlex.quote(text)} > /etc/nut/{file}")
        run(name, "chgrp nut /etc/nut/* && chmod 640 /etc/nut/*")
        run(
            name,
            "systemctl restart nut-driver-enumerator nut-server && systemctl enable --now "
            "nut-driver.target nut-server nut-monitor && systemctl restart nut-monitor",
            timeout=120,
        )
        wait_until(
            lambda: run(name, "upsc nas@localhost ups.status", check=False).stdout.strip() == "OL",
            60,
            "the existing NUT serving nas",
        )
        assert upsmon_state(name) == ("enabled", "active")
        copy_in(name, tar_bytes(REPO, CHECKOUT), SRC)
        copy_in(name, tar_bytes(wheelhouse), WHEELS)
        yield name
    finally:
        podman("rm", "--force", "--time", "0", name, check=False, timeout=120)


def test_default_install_leaves_an_existing_nut_alone(node: str) -> None:
    before = fingerprint(node)
    done = install(node)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert recap(done.stdout)[1:] == (0, 0), out[-4000:]
    # byte for byte, modes and owners too; no backup, no dummy-ups file of Hecate's
    assert fingerprint(node) == before
    assert upsmon_state(node) == ("enabled", "active")
    assert not exists(node, "/etc/udev/rules.d/62-hecate-ups.rules")
    assert run(node, "upsc nas@localhost ups.status").stdout.strip() == "OL"
    # every decision said: what was found, what is left alone, how to take it over
    assert "/etc/nut/nut.conf sets MODE=netserver" in out
    assert "/etc/nut/ups.conf defines the UPS nas" in out
    assert "/etc/nut/upsd.users defines the user admin" in out
    assert "upsmon is running" in out
    assert "Leaving NUT alone" in out and "HECATE_MANAGE_NUT=1" in out
    assert re.search(
        r"^HECATE_MANAGE_NUT=auto$", run(node, "cat /etc/hecate/install.env").stdout, re.M
    )
    # the daemon needs a NUT password file the installer does not write here: enabled, not
    # started, and the installer says what to do
    assert "hecate.service is enabled but NOT started" in out
    assert run(node, "systemctl is-enabled hecate").stdout.strip() == "enabled"


def test_manage_nut_backs_up_every_file_it_replaces(node: str) -> None:
    originals = {f: run(node, f"sha256sum < /etc/nut/{f}").stdout for f in NUT_FILES}
    done = install(node, HECATE_MANAGE_NUT="1")
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert recap(done.stdout)[1:] == (0, 0), out[-4000:]
    found = backups(node)
    named = {m.group("file"): path for path in found if (m := BACKUP.match(path))}
    assert sorted(named) == sorted(NUT_FILES), found  # one each, named as documented
    for file, path in named.items():
        # the backup is the operator's file as it was; the file itself is the installer's now
        assert run(node, f"sha256sum < {path}").stdout == originals[file], file
        assert run(node, f"sha256sum < /etc/nut/{file}").stdout != originals[file], file
        assert f"NUT: replaced /etc/nut/{file}; the file it replaced is {path}" in out
        mode = run(node, f"stat -c '%a %G' {path}").stdout.split()
        assert mode == ["640", "nut"], (path, mode)  # a secret's backup is no more readable
    # the upsmon at work is still not masked, and the installer says why
    assert upsmon_state(node)[0] == "enabled"
    assert "upsmon left alone, not masked" in out
    assert run(node, "upsc pyrphoros@localhost ups.status 2>/dev/null").stdout.strip() == "OL"


def test_second_run_changes_nothing_and_makes_no_new_backup(node: str) -> None:
    before, files = backups(node), fingerprint(node)
    assert len(before) == len(NUT_FILES)
    # the recorded HECATE_MANAGE_NUT=1; then auto (recorded after its first run): /etc/nut is
    # the installer's own now, so auto still manages it, and changes nothing
    for env, expect in (({}, "0"), ({"HECATE_MANAGE_NUT": "auto"}, "1"), ({}, "0")):
        done = install(node, **env)
        out = done.stdout + done.stderr
        assert done.returncode == 0, out[-4000:]
        if expect == "0":
            assert recap(done.stdout) == (0, 0, 0), changed_tasks(done.stdout) or out[-4000:]
        else:  # only the knob's record changes
            tasks = changed_tasks(done.stdout)
            assert len(tasks) == 1 and "Record the installer's knobs" in tasks[0], tasks
        assert "no other NUT set up here" in out
        assert backups(node) == before
        assert fingerprint(node) == files


def test_no_vendor_id_is_written_unless_found_or_given(node: str) -> None:
    if run(node, "ls /sys/bus/usb/devices/*/idVendor", check=False).returncode == 0:
        pytest.skip("this machine has USB devices: one could be a UPS NUT knows")
    files = fingerprint(node)
    # a USB driver, no ids, no UPS on USB: refused before any NUT file changes, naming the knobs
    done = install(node, "--check", "--diff", HECATE_NUT_DRIVER="usbhid-ups")
    out = done.stdout + done.stderr
    assert done.returncode == 1, out[-4000:]
    assert "guesses no vendor" in out
    assert "HECATE_NUT_VENDOR_ID=XXXX HECATE_NUT_PRODUCT_ID=YYYY" in out
    assert "HECATE_NUT_PORT" in out
    assert "vendorid" not in out
    # given: exactly those, and nothing else
    done = install(
        node,
        "--check",
        "--diff",
        HECATE_NUT_DRIVER="usbhid-ups",
        HECATE_NUT_VENDOR_ID="051D",
        HECATE_NUT_PRODUCT_ID="0002",
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert "+\tvendorid = 051d" in out and "+\tproductid = 0002" in out, out[-4000:]
    assert "0764" not in out
    assert "USB ids 051d:0002 (given" in out
    # a serial UPS: a port, no ids
    done = install(
        node, "--check", "--diff", HECATE_NUT_DRIVER="blazer_ser", HECATE_NUT_PORT="/dev/ttyS0"
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert "+\tport = /dev/ttyS0" in out and "vendorid" not in out, out[-4000:]
    assert fingerprint(node) == files  # check mode: nothing changed
