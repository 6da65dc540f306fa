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
import uuid
from collections.abc import Iterator
from pathlib import Path

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
    # a different UPS name is shown with both names before anything changes
    renamed = run(
        host,
        f"cd {SRC} && scripts/install.sh --check",
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

    doctor = run(host, "hecate doctor --json", timeout=180, check=False)
    result = json.loads(doctor.stdout)
    failures = [f for f in result["findings"] if f["status"] == "fail"]
    assert failures == [], failures
    assert doctor.returncode == 0
    checks = {f["check"] for f in result["findings"]}
    assert {f"node.{n.name}.sudo" for n in twin.nodes} <= checks
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
