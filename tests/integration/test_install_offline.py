"""From zero to a protected cluster, offline: scripts/make-wheelhouse here, then in a node with apt
switched off: scripts/install.sh from the wheelhouse, `hecate config init` from the twin's API,
the node side, and `hecate doctor` exiting 0 against the twin.

The Hecate host is a test-bed node sharing the twin server's network namespace (podman
`--network container:`): the twin's API answers there on 127.0.0.1:6443 (its certificate is for
127.0.0.1) and the twin's nodes on their InternalIP addresses, as a real cluster's would on the
LAN. Only the packages an offline host needs first are installed with apt, before apt is cut off.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_install import (
    CHECKOUT,
    REPO,
    SRC,
    copy_in,
    exists,
    recap,
    run,
    tar_bytes,
)
from tests.testbed.image import ensure_image, podman
from tests.testbed.twin import LABEL, LABEL_OWNER, LABEL_RUN, Twin, owner_label, wait_until

pytestmark = pytest.mark.integration

WHEELS = "/root/wheels"
CONFIG = "/etc/hecate/hecate.yaml"
STATE = "/var/lib/hecate"
UPS_DEV = "/etc/nut/pyrphoros.dev"  # the installer's dummy-ups readings
PREREQUISITES = "openssh-client python3-venv nut-client nut-server git"
APT_OFF = (
    'Acquire::http::Proxy "http://127.0.0.1:9/";\n'
    'Acquire::https::Proxy "http://127.0.0.1:9/";\n'
    'Acquire::Retries "0";\n'
)


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wheels = tmp_path_factory.mktemp("offline") / "wheels"
    done = subprocess.run(
        [str(REPO / "scripts/make-wheelhouse"), str(wheels)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    names = {p.name.split("-")[0].lower() for p in wheels.glob("*.whl")}
    # the build backend is in it: the cause of "Could not find ... setuptools>=68" offline
    assert {"setuptools", "wheel", "hecate", "pydantic", "ansible_core"} <= names
    return wheels


@pytest.fixture(scope="module")
def host(twin: Twin, wheelhouse: Path) -> Iterator[str]:
    name = f"hecate-offline-{uuid.uuid4().hex[:8]}"
    podman(
        "run",
        "--detach",
        "--name",
        name,
        "--label",
        f"{LABEL}=1",
        "--label",
        f"{LABEL_RUN}={name}",
        "--label",
        f"{LABEL_OWNER}={owner_label()}",
        "--network",
        f"container:{twin.servers[0].container}",
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
            "systemd in the host",
        )
        run(
            name,
            "DEBIAN_FRONTEND=noninteractive apt-get update -q && DEBIAN_FRONTEND=noninteractive "
            f"apt-get install -y -q --no-install-recommends {PREREQUISITES}",
            timeout=600,
        )
        run(name, f"printf %s {shlex.quote(APT_OFF)} > /etc/apt/apt.conf.d/99offline")
        run(name, "rm -rf /var/lib/apt/lists/* && mkdir -p /var/lib/apt/lists/partial")
        copy_in(name, tar_bytes(REPO, CHECKOUT), SRC)
        copy_in(name, tar_bytes(wheelhouse), WHEELS)
        yield name
    finally:
        podman("rm", "--force", "--time", "0", name, check=False, timeout=120)


def test_offline_install_then_config_init_and_doctor_protect_the_twin(
    host: str, twin: Twin
) -> None:
    # apt really is off
    update = run(host, "timeout 60 apt-get update -q", check=False, timeout=90)
    assert "Connection refused" in update.stdout + update.stderr
    install_kubectl = "timeout 60 apt-get install -y -q kubernetes-client"
    assert run(host, install_kubectl, check=False, timeout=90).returncode != 0

    first = run(
        host,
        f"cd {SRC} && scripts/install.sh",
        env={"HECATE_WHEELHOUSE": WHEELS, "HECATE_NUT_DRIVER": "dummy-ups"},
        timeout=900,
    )
    out = first.stdout + first.stderr
    assert recap(first.stdout)[1:] == (0, 0), out[-4000:]
    assert "offline install (HECATE_WHEELHOUSE): apt is not used" in out
    # no git checkout on a branch here: the updater is not enabled, and says why
    assert "hecate-update.timer NOT enabled" in out
    enabled = run(host, "systemctl is-enabled hecate-update.timer", check=False).stdout.strip()
    assert enabled != "enabled"
    # the next steps: doctor ran and named what is missing (the example's placeholders)
    assert "== next steps: hecate doctor" in out
    assert "NOT protected yet" in out
    assert "config.placeholders" in out
    assert run(host, "systemctl is-active hecate").stdout.strip() == "active"

    # A re-run without knobs keeps the recorded ones (and says so): nothing would change.
    again = run(host, f"cd {SRC} && scripts/install.sh --check", timeout=900)
    assert "reusing the knobs of the last run" in again.stdout
    assert "HECATE_NUT_DRIVER=dummy-ups" in again.stdout
    assert f"HECATE_WHEELHOUSE={WHEELS}" in again.stdout
    assert recap(again.stdout) == (0, 0, 0), again.stdout[-3000:]
    # a different UPS name is shown with both names before anything changes (install.sh says
    # so before the playbook: --syntax-check stops there, without a minute's check-mode run)
    renamed = run(
        host,
        f"cd {SRC} && scripts/install.sh --check -- --syntax-check",
        env={"HECATE_NUT_UPS_NAME": "eaton"},
        timeout=900,
        check=False,
    )
    assert "HECATE_NUT_UPS_NAME: recorded 'pyrphoros', this run 'eaton'" in renamed.stderr
    assert "WARNING: the UPS is renamed in NUT (pyrphoros -> eaton)" in renamed.stderr

    # After install (README): the kubeconfig from a server, config init, the node side.
    kubeconfig = twin.kubeconfig.read_text().replace(twin.api_url, "https://127.0.0.1:6443")
    run(
        host,
        f"umask 077 && printf %s {shlex.quote(kubeconfig)} > /etc/hecate/kubeconfig.yaml",
    )
    init = run(
        host,
        "hecate config init --kubeconfig /etc/hecate/kubeconfig.yaml --force --json",
        timeout=120,
    )
    report = json.loads(init.stdout)
    assert report["values"]["nodes.servers"] == [n.name for n in twin.servers]
    hosts = report["values"]["ssh_node_hosts"]
    assert sorted(hosts) == sorted(n.name for n in twin.nodes)
    assert report["values"]["ups.target"] == "pyrphoros@localhost"
    # the node side: the key Hecate logs in with (the twin's nodes already trust it; on a real
    # cluster: ssh-keygen + ssh-copy-id) and the nodes' host keys, learnt once
    key = twin.ssh_key.read_text()
    run(host, f"umask 077 && printf %s {shlex.quote(key)} > /etc/hecate/id_ed25519")
    addresses = " ".join(sorted(hosts.values()))
    run(host, f"ssh-keyscan -T 5 {addresses} > /var/lib/hecate/ssh_known_hosts", timeout=60)
    # Run as root, every probe can use the root-only key and kubeconfig; hecate.service, as
    # hecate-daemon, could not open them: doctor names both and what to do.
    doctor = run(host, "hecate doctor --json", timeout=180, check=False)
    result = json.loads(doctor.stdout)
    failing = {f["check"]: f["fix"] for f in result["findings"] if f["status"] == "fail"}
    assert doctor.returncode == 1
    assert failing == {
        "daemon.reads.kubeconfig": "chgrp hecate-daemon /etc/hecate/kubeconfig.yaml && "
        "chmod 640 /etc/hecate/kubeconfig.yaml",
        # the daemon's own (0600): ssh, run by root for doctor, refuses a key its group reads
        "daemon.reads.ssh_identity_file": "chown hecate-daemon: /etc/hecate/id_ed25519 && "
        "chmod 600 /etc/hecate/id_ed25519",
    }, failing
    run(host, " && ".join(failing.values()))  # README, After install: readable by the daemon

    doctor = run(host, "hecate doctor --json", timeout=180, check=False)
    result = json.loads(doctor.stdout)
    failures = [f for f in result["findings"] if f["status"] == "fail"]
    assert failures == [], failures
    assert doctor.returncode == 0
    checks = {f["check"] for f in result["findings"]}
    assert {f"node.{n.name}.sudo" for n in twin.nodes} <= checks
    assert "daemon.reads" in checks
    assert exists(host, "/var/lib/hecate/doctor.json")
    status = run(host, "hecate status").stdout
    assert "doctor:  protected" in status

    # hecate-update cannot update a checkout that is not on main: it fails, visibly.
    started = run(host, "systemctl start hecate-update.service", check=False, timeout=120)
    assert started.returncode != 0
    assert run(host, "systemctl is-failed hecate-update.service", check=False).stdout.strip() == (
        "failed"
    )
    journal = run(host, "journalctl -u hecate-update.service --no-pager -o cat").stdout
    # either reason is a visible failure: no trusted keys (REFUSED), or no branch (FAILED)
    assert re.search(r"hecate-update: (FAILED|REFUSED): ", journal), journal
    shown = run(host, "hecate status", check=False)
    assert "hecate-update.service failed" in shown.stderr


def dummy_ups(host: str, status: str, charge: int, runtime: int) -> None:
    """New readings for the host's dummy-ups: rewrite the .dev file the installer made (the
    driver rereads it within its pollinterval of 1 s)."""
    readings = {
        "device.mfr": "Hecate",
        "device.model": "dummy-ups",
        "ups.status": status,
        "battery.charge": charge,
        "battery.runtime": runtime,
        "ups.load": 20,
    }
    text = "".join(f"{key}: {value}\n" for key, value in readings.items())
    run(host, f"printf %s {shlex.quote(text)} > {UPS_DEV}")


def status_json(host: str) -> dict[str, Any]:
    """`hecate status --json` (it exits 1 while it names a problem, such as the failed
    hecate-update.service of the test above: the JSON is what counts here)."""
    done = run(host, "hecate status --json", timeout=60, check=False)
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def recorded_runs(host: str) -> list[dict[str, Any]]:
    done = run(host, f"cat {STATE}/runs.json", check=False)
    if done.returncode != 0:
        return []
    data = json.loads(done.stdout)
    runs = data["runs"] if isinstance(data, dict) else data
    return list(runs)


def finished(host: str, kind: str, after: int) -> list[dict[str, Any]]:
    return [r for r in recorded_runs(host)[after:] if r["kind"] == kind]


def test_the_hardened_daemon_runs_the_shutdown_and_the_startup_of_the_twin(
    host: str, twin: Twin
) -> None:
    """The power is cut on the host's dummy-ups: hecate.service (hecate-daemon, CapBnd 0, the
    sandbox) stops the twin by itself (cluster-only: nothing is powered off); power returns and
    its startup brings the twin back, as it was for any later test."""
    # the test above left the host protected: its config, the key, the known hosts
    assert "doctor:  protected" in run(host, "hecate status", check=False).stdout
    # `hecate config init` (as root) kept the group the daemon reads the config through
    assert run(host, f"stat -c '%a %U %G' {CONFIG}").stdout.split() == [
        "640",
        "root",
        "hecate-daemon",
    ]
    # the key and the kubeconfig, as doctor had them fixed: readable by the daemon only
    for path, mode in (("/etc/hecate/id_ed25519", "600"), ("/etc/hecate/kubeconfig.yaml", "640")):
        assert run(host, f"stat -c '%a %G' {path}").stdout.split() == [mode, "hecate-daemon"]
    # Fast decisions and a fast startup for the test (live through `systemctl reload`);
    # cluster-only: the shutdown stops k3s and powers no node (nor this host) off.
    patch = {
        "ups": {"poll_interval_seconds": 1, "debounce_polls": 2, "outage_clear_seconds": 3},
        "shutdown": {
            "ups_mode": "cluster-only",
            "poweroff_local_host": False,
            "etcd_snapshot": False,
            "stop_timeout_seconds": 60,
        },
        "startup": {
            "power_stable_seconds": 3,
            "api_timeout_seconds": 90,
            "nodes_ready_timeout_seconds": 90,
            "flux_ready_timeout_seconds": 60,
            "time_sync_timeout_seconds": 30,
        },
    }
    edit = (
        "import json, sys, yaml; from pathlib import Path; p = Path(sys.argv[1]); "
        "d = yaml.safe_load(p.read_text()); patch = json.loads(sys.argv[2]); "
        "[d.setdefault(k, {}).update(v) for k, v in patch.items()]; "
        "p.write_text(yaml.safe_dump(d))"  # in place: owner, group and mode stay
    )
    run(
        host,
        f"/opt/hecate/bin/python -c {shlex.quote(edit)} {CONFIG} {shlex.quote(json.dumps(patch))}",
    )
    since = run(host, "date '+%Y-%m-%d %H:%M:%S'").stdout.strip()
    run(host, "systemctl reload hecate", timeout=60)
    journal_cmd = f"journalctl -u hecate.service --since {shlex.quote(since)} --no-pager -o cat"
    wait_until(
        lambda: (
            re.search("configuration reloaded|reload refused", run(host, journal_cmd).stdout)
            is not None
        ),
        30,
        "the daemon's reload line",
    )
    reloaded = run(host, journal_cmd).stdout
    assert "configuration reloaded" in reloaded, reloaded[-3000:]
    # the installer's root:hecate-daemon 0640 password file is how the daemon reads it: no
    # advice to chmod it 600 (which would lock the daemon out)
    assert "nut-password is accessible" not in reloaded, reloaded[-3000:]
    pid = run(host, "systemctl show --property=MainPID --value hecate").stdout.strip()
    proc = run(host, f"cat /proc/{pid}/status").stdout
    uid = run(host, "id -u hecate-daemon").stdout.strip()
    assert re.search(rf"^Uid:\s+{uid}\s+{uid}\s+{uid}\s+{uid}$", proc, re.M), proc
    assert re.search(r"^CapBnd:\s+0+$", proc, re.M), proc
    assert re.search(r"^NoNewPrivs:\s+1$", proc, re.M), proc
    before = len(recorded_runs(host))
    assert all(twin.unit_active(n) for n in twin.nodes)
    started = time.monotonic()

    try:
        # On battery above the threshold (1.10 x 300 s): nothing yet; then LB with 120 s left.
        dummy_ups(host, "OB DISCHRG", 80, 1500)
        time.sleep(3)
        assert finished(host, "shutdown", before) == []
        dummy_ups(host, "OB DISCHRG LB", 20, 120)
        wait_until(
            lambda: bool(finished(host, "shutdown", before)),
            150,
            "the daemon's shutdown run recorded in runs.json",
        )
        shutdown_s = time.monotonic() - started
        [shutdown] = finished(host, "shutdown", before)
        journal = run(host, journal_cmd).stdout
        assert shutdown["outcome"] == "success", (shutdown, journal[-4000:])
        assert shutdown["mode"] == "cluster-only", shutdown
        for node in twin.nodes:  # the agents' k3s-agent and the server's k3s are stopped
            assert not twin.unit_active(node), f"{node.name}: {node.unit} still active"
        assert all(twin.is_running(n) for n in twin.nodes)  # cluster-only: none powered off
        assert exists(host, f"{STATE}/last-shutdown-report.json")
        report = json.loads(run(host, f"cat {STATE}/last-shutdown-report.json").stdout)
        assert report["outcome"] == "success", report
        shown = status_json(host)
        assert any(
            r["run_id"] == shutdown["run_id"] and r["outcome"] == "success" for r in shown["runs"]
        ), shown["runs"]
        assert shown["intent"]["state"] == "shutdown_complete", shown["intent"]
        # the narrow poweroff mechanism was not asked for (poweroff_local_host is off)
        assert not exists(host, "/run/hecate/poweroff")
    finally:
        # Power returns (and the twin is put back even when an assertion above failed).
        dummy_ups(host, "OL CHRG", 100, 1800)

    wait_until(
        lambda: bool(finished(host, "startup", before)),
        180,
        "the daemon's startup run after the power returned",
    )
    total_s = time.monotonic() - started
    [startup] = finished(host, "startup", before)
    journal = run(host, journal_cmd).stdout
    assert startup["outcome"] == "success", (startup, journal[-4000:])
    for node in twin.nodes:
        assert twin.unit_active(node), f"{node.name}: {node.unit} not active after the startup"
    wait_until(
        lambda: all(twin.nodes_ready().values()) and len(twin.nodes_ready()) == len(twin.nodes),
        60,
        "every Node Ready",
    )
    assert exists(host, f"{STATE}/last-startup-report.json")
    # All of it done by the sandboxed daemon, without a permission error on the way.
    denied = [
        line
        for line in journal.splitlines()
        if re.search(r"permission denied|PermissionError|operation not permitted", line, re.I)
    ]
    assert denied == [], denied
    assert run(host, "systemctl show --property=MainPID --value hecate").stdout.strip() == pid
    owners = run(host, f"find {STATE} -maxdepth 1 -newer {CONFIG} -printf '%u %p\\n'").stdout
    assert all(line.startswith("hecate-daemon ") for line in owners.splitlines()), owners
    print(f"hardened daemon: shutdown {shutdown_s:.0f} s, shutdown + startup {total_s:.0f} s")
