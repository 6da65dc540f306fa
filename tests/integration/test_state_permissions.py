"""The state directory and everything under it are owner-only (0700/0600) whatever the umask
the daemon was started with: a real daemon process, a real upsd, a real shutdown through
Ansible (silent SSH nodes), its warm-up, trace, intent, runs, ledger and Ansible's private data."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tests.integration.daemon_process import (
    DaemonProcess,
    SilentSsh,
    daemon_config_data,
    write_yaml,
)
from tests.testbed.nut import NutServer

pytestmark = pytest.mark.integration


def loose(root: Path) -> list[str]:
    """Every path under `root` (itself included) that is not a 0700 dir or a 0600 file."""
    found = []
    for path in [root, *root.rglob("*")]:
        info = path.lstat()
        mode = stat.S_IMODE(info.st_mode)
        if stat.S_ISDIR(info.st_mode):
            want = 0o700
        elif stat.S_ISREG(info.st_mode):
            want = 0o600
        else:
            continue  # sockets and links: none expected, judged by what they point at
        if mode & ~want:
            found.append(f"{mode:04o} {path.relative_to(root.parent)}")
    return found


@pytest.mark.parametrize("umask", [0o022, 0o000], ids=["umask022", "umask000"])
def test_everything_the_daemon_writes_is_owner_only(
    tmp_path: Path, nut_server: NutServer, umask: int
) -> None:
    agent, server = SilentSsh(), SilentSsh()
    data = daemon_config_data(
        tmp_path,
        nut_server,
        {"a1": agent.port, "s1": server.port},
        ssh_connect_timeout_seconds=2,
        ups={"debounce_polls": 2},
    )
    state = Path(data["state_dir"])
    daemon = DaemonProcess(write_yaml(tmp_path / "hecate.yaml", data), umask=umask)
    try:
        nut_server.set_reading(status="OB DISCHRG", runtime=1500, charge=90)
        daemon.wait_for("ssh warm-up", timeout=60)  # it ran its playbook
        nut_server.set_reading(status="OB DISCHRG LB", runtime=60, charge=10)
        daemon.wait_for("shutdown finished", timeout=120)
        code, _ = daemon.stop()
    finally:
        daemon.kill()
        agent.close()
        server.close()
    assert code == 0
    written = {p.name for p in state.rglob("*")}
    # what this test is about: the daemon's own files and Ansible's private data
    for name in ("intent.json", "runs.json", "hecate.lock", "envvars", "ansible.cfg", "stderr"):
        assert name in written, sorted(written)
    assert any(name.startswith("outage-") for name in written)
    assert loose(state) == []
