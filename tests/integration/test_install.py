"""scripts/install.sh for real, in a systemd node of the test bed (the Hecate host).

One node for the module (``--cap-add SYS_ADMIN``, so that systemd really applies the units'
sandboxing; without it systemd silently skips namespacing inside a container). The checkout is
copied in (with a git history, for the self-update) and so is a wheelhouse built here, because pip
cannot reach an index from inside the node; apt reaches the Debian mirror. The installer runs
with ``HECATE_NUT_DRIVER=dummy-ups``: upsd and a dummy-ups driver inside the node are the UPS, and
``hecate.service`` watches it. Nothing is published: the node is reached with ``podman exec``.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import pytest

from tests.testbed.image import ensure_image, podman, podman_env
from tests.testbed.twin import LABEL, LABEL_OWNER, LABEL_RUN, owner_label, wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SRC = "/opt/hecate-src"
WHEELS = "/var/cache/hecate-wheelhouse"
REMOTE = "/srv/hecate.git"
CONFIG = "/etc/hecate/hecate.yaml"
# What a checkout holds that the installer uses (plus .gitignore: the node's checkout is a repo).
CHECKOUT = (
    ".gitignore",
    "pyproject.toml",
    "README.md",
    "ansible.cfg",
    "hecate",
    "configs",
    "playbooks",
    "roles",
    "scripts",
)
RELEASE_KEY = "/root/release-key"  # signs the commits hecate-update may install
TRUSTED = "/root/trusted-signers"
INSTALL_ENV = {
    "HECATE_NUT_DRIVER": "dummy-ups",
    "HECATE_WHEELHOUSE": WHEELS,
    # apt installs the system packages here, the wheelhouse only the Python ones (a wheelhouse
    # alone means an offline install, apt off: tests/integration/test_install_offline.py)
    "HECATE_INSTALL_PACKAGES": "1",
    "HECATE_UPDATE_TRUSTED_KEYS": TRUSTED,
}
INSTALL_TIMEOUT_S = 900.0
RECAP = re.compile(
    r"^localhost\s*:\s*ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M
)
HARDENING = (
    "NoNewPrivileges",
    "ProtectSystem",
    "ReadWritePaths",
    "ProtectHome",
    "PrivateTmp",
    "ProtectKernelTunables",
    "ProtectControlGroups",
    "RestrictSUIDSGID",
    "LockPersonality",
)


# ------------------------------------------------------------------------------------------------
# Helpers


def run(
    node: str,
    command: str,
    *,
    timeout: float = 60.0,
    env: dict[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """``sh -c COMMAND`` as root in the node."""
    argv = ["exec"]
    for key, value in (env or {}).items():
        argv += ["--env", f"{key}={value}"]
    done = podman(*argv, node, "sh", "-c", command, check=False, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(
            f"{command!r} exited {done.returncode}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        )
    return done


def install(
    node: str, *args: str, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    command = " ".join(["scripts/install.sh", *map(shlex.quote, args)])
    return run(
        node,
        f"cd {SRC} && {command}",
        timeout=INSTALL_TIMEOUT_S,
        env={**INSTALL_ENV, **(env or {})},
        check=check,
    )


def changed_tasks(output: str) -> list[str]:
    """The TASK headers followed by a `changed:` line (what a re-run should not have done)."""
    tasks, current = [], ""
    for line in output.splitlines():
        if line.startswith("TASK ["):
            current = line
        elif line.startswith("changed:") and current:
            tasks.append(current)
    return tasks


def recap(output: str) -> tuple[int, int, int]:
    """(changed, unreachable, failed) from ansible-playbook's PLAY RECAP."""
    found = RECAP.findall(output)
    assert found, f"no PLAY RECAP in:\n{output[-3000:]}"
    changed, unreachable, failed = found[-1]
    return int(changed), int(unreachable), int(failed)


def exists(node: str, path: str) -> bool:
    return run(node, f"test -e {shlex.quote(path)}", check=False).returncode == 0


def metrics(node: str) -> str:
    script = (
        "import urllib.request; "
        "print(urllib.request.urlopen('http://127.0.0.1:9560/metrics', timeout=3).read().decode())"
    )
    done = run(node, f"python3 -c {shlex.quote(script)}", timeout=15, check=False)
    return done.stdout if done.returncode == 0 else ""


def unit_property(node: str, unit: str, prop: str) -> str:
    return run(node, f"systemctl show --property={prop} --value {unit}").stdout.strip()


def tar_bytes(root: Path, names: tuple[str, ...] | None = None) -> bytes:
    buffer = BytesIO()

    def skip_bytecode(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        parts = Path(info.name).parts
        return None if "__pycache__" in parts or info.name.endswith(".pyc") else info

    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in names if names is not None else tuple(p.name for p in root.iterdir()):
            tar.add(root / name, arcname=name, filter=skip_bytecode)
    return buffer.getvalue()


def copy_in(node: str, data: bytes, dest: str) -> None:
    """Unpack a .tar.gz into ``dest`` in the node."""
    done = subprocess.run(
        ["podman", "exec", "-i", node, "sh", "-c", f"mkdir -p {dest} && tar -xzf - -C {dest}"],
        input=data,
        env=podman_env(),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")


# ------------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Hecate's dependencies (and the build backend) as wheels, built from a copy of the checkout
    (pip builds a local project in place)."""
    work = tmp_path_factory.mktemp("install-wheels")
    source = work / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(
        REPO / "hecate", source / "hecate", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    wheels = work / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    for argv in (
        [*pip, "wheel", "--wheel-dir", str(wheels), str(source)],
        [*pip, "download", "--only-binary=:all:", "--dest", str(wheels), "setuptools>=68", "wheel"],
    ):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
    return wheels


@pytest.fixture(scope="module")
def node(wheelhouse: Path) -> Iterator[str]:
    """A fresh node with the checkout (a git repo with a bare "origin") and the wheelhouse."""
    image = ensure_image()
    name = f"hecate-install-{uuid.uuid4().hex[:8]}"
    podman(
        "run",
        "--detach",
        "--name",
        name,
        "--hostname",
        "hecate-host",
        "--label",
        f"{LABEL}=1",
        "--label",
        f"{LABEL_RUN}={name}",
        "--label",
        f"{LABEL_OWNER}={owner_label()}",
        # systemd applies ProtectSystem= & co. only with CAP_SYS_ADMIN in a container
        "--cap-add",
        "SYS_ADMIN",
        image,
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
        copy_in(name, tar_bytes(REPO, CHECKOUT), SRC)
        copy_in(name, tar_bytes(wheelhouse), WHEELS)
        yield name
    finally:
        podman("rm", "--force", "--time", "0", name, check=False, timeout=120)


@dataclass(frozen=True)
class Installed:
    node: str
    refused: subprocess.CompletedProcess[str]
    left_alone: dict[str, bool]
    first: subprocess.CompletedProcess[str]
    config_sha: str


@pytest.fixture(scope="module")
def installed(node: str) -> Installed:
    """Bad knobs first (must change nothing), then the real install."""
    run(
        node,
        f"ssh-keygen -q -t ed25519 -N '' -C release -f {RELEASE_KEY} && "
        f'echo "release@hecate $(cat {RELEASE_KEY}.pub)" > {TRUSTED}',
    )
    refused = install(
        node, env={"HECATE_ENABLE_BOOTSTRAP": "maybe", "HECATE_NUT_VENDOR_ID": "07G4"}, check=False
    )
    left_alone = {
        path: not exists(node, path)
        for path in ("/etc/hecate", "/opt/hecate", f"{SRC}/.venv", "/etc/nut", "/usr/bin/git")
    }
    # An operator's config, already there: the installer must keep it as it is. Metrics on
    # 127.0.0.1 (the example's default).
    run(
        node,
        f"install -d -m 750 /etc/hecate && cp {SRC}/configs/hecate.example.yaml {CONFIG} && "
        f"echo '# kept by the installer' >> {CONFIG} && grep -q 127.0.0.1:9560 {CONFIG}",
    )
    config = run(node, f"sha256sum {CONFIG}").stdout
    first = install(node)
    return Installed(node, refused, left_alone, first, config)


# ------------------------------------------------------------------------------------------------
# Tests


def test_bad_knobs_are_refused_before_anything_changes(installed: Installed) -> None:
    assert installed.refused.returncode == 2, installed.refused.stderr
    assert "HECATE_ENABLE_BOOTSTRAP must be auto, 1 or 0, not 'maybe'" in installed.refused.stderr
    assert "HECATE_NUT_VENDOR_ID must be 4 hex digits" in installed.refused.stderr
    assert "nothing changed" in installed.refused.stderr
    assert all(installed.left_alone.values()), installed.left_alone


def test_install_starts_the_daemon_on_the_dummy_ups(installed: Installed) -> None:
    node = installed.node
    changed, unreachable, failed = recap(installed.first.stdout)
    assert (unreachable, failed) == (0, 0)
    assert changed > 10
    wait_until(
        lambda: unit_property(node, "hecate.service", "ActiveState") == "active",
        60,
        "hecate.service active",
    )
    assert run(node, "systemctl is-active hecate").stdout.strip() == "active"
    assert run(node, "systemctl is-active nut-server").stdout.strip() == "active"
    # the UPS name comes from the example config's ups.target (pyrphoros@localhost)
    assert run(node, "upsc pyrphoros@localhost ups.status 2>/dev/null").stdout.strip() == "OL"
    # the daemon logged in to upsd with the generated password (ups.password_file) and serves
    # what dummy-ups reads
    # (the first poll may come while dummy-ups is still loading its readings)
    wait_until(
        lambda: 'hecate_ups_runtime_seconds{ups="pyrphoros"} 1800.0' in metrics(node),
        60,
        "the UPS's readings",
    )
    served = metrics(node)
    assert 'hecate_ups_readable{ups="pyrphoros"} 1.0' in served
    assert 'hecate_ups_status{flag="OL",ups="pyrphoros"} 1.0' in served
    # the daemon's playbooks and roles come with the package, not from the checkout
    where = "from hecate.adapters.ansible.port import assets_dir; print(assets_dir())"
    assets = run(node, f"/opt/hecate/bin/python -c {shlex.quote(where)}").stdout.strip()
    assert assets.startswith("/opt/hecate/lib/") and assets.endswith("/hecate/data"), assets
    assert exists(node, f"{assets}/playbooks/k3s_service.yml")
    assert exists(node, f"{assets}/roles/hecate_privilege/defaults/main.yml")
    shown = run(node, f"hecate status --config {CONFIG}", check=False)
    # 4: not protected yet, as the installer's own `hecate doctor` found (no kubeconfig, no SSH
    # key on a fresh host); the report is printed all the same
    assert shown.returncode in (0, 4), shown.stderr
    status = shown.stdout
    assert re.search(r"^ups:\s+OL runtime=1800", status, re.M), status
    # trusted keys, but the checkout is an unpacked tarball, not a git checkout on its branch:
    # hecate-update could never update it, so the installer leaves the timer off and says why
    assert "update:  off: the timer is not enabled" in status, status
    assert "hecate-update.timer NOT enabled" in installed.first.stdout
    assert run(node, f"sha256sum {CONFIG}").stdout == installed.config_sha
    assert (
        "hecate_nut_errors_total" not in served
        or re.search(r"^hecate_nut_errors_total\{[^}]*\} [1-9]", served, re.M) is None
    )
    assert run(node, "systemctl is-enabled hecate-bootstrap").stdout.strip() == "enabled"
    assert unit_property(node, "hecate-bootstrap.service", "ActiveState") == "inactive"
    assert run(node, "systemctl is-enabled hecate-update.timer", check=False).stdout.strip() == (
        "disabled"
    )
    assert run(node, "systemctl is-enabled nut-monitor", check=False).stdout.strip() == "masked"
    mode = run(node, "stat -c '%a %U %G' /etc/hecate/nut-password").stdout.split()
    assert mode == ["640", "root", "hecate-daemon"]  # root and the daemon's group only
    # the generated password is nowhere else: not in the output, the journal or a temp file
    password = run(node, "head -n1 /etc/hecate/nut-password").stdout.strip()
    assert len(password) == 32
    assert password not in installed.first.stdout + installed.first.stderr
    assert password in run(node, "cat /etc/nut/upsd.users").stdout
    leaks = run(
        node,
        f"journalctl --no-pager -o cat | grep -c -F {password}; "
        f"grep -rlF {password} /tmp /var/tmp /root /var/log",
        check=False,
    ).stdout
    assert leaks.split() == ["0"], leaks


def test_daemon_runs_sandboxed_and_ssh_still_works(installed: Installed) -> None:
    node = installed.node
    pid = unit_property(node, "hecate.service", "MainPID")
    assert pid not in ("", "0")
    status = run(node, f"cat /proc/{pid}/status").stdout
    assert re.search(r"^NoNewPrivs:\s+1$", status, re.M), status
    # An unprivileged user with no capabilities at all (issue #13).
    uid = run(node, "id -u hecate-daemon").stdout.strip()
    assert re.search(rf"^Uid:\s+{uid}\s+{uid}\s+{uid}\s+{uid}$", status, re.M), status
    assert re.search(r"^CapBnd:\s+0+$", status, re.M), status
    assert re.search(r"^CapEff:\s+0+$", status, re.M), status
    assert run(node, "stat -c %U /var/lib/hecate").stdout.strip() == "hecate-daemon"
    assert unit_property(node, "hecate-poweroff.path", "ActiveState") == "active"
    mounts = {}
    for line in run(node, f"cat /proc/{pid}/mountinfo").stdout.splitlines():
        fields = line.split()
        mounts[fields[4]] = fields[5].split(",")
    assert "ro" in mounts["/"], mounts["/"]
    assert "rw" in mounts["/var/lib/hecate"], mounts.get("/var/lib/hecate")
    # What the daemon's Ansible needs from ssh, under the unit's own sandbox: read a key under
    # /etc/hecate, learn the host key into the state dir, a control socket in the private /tmp.
    unit = run(node, "systemctl cat hecate.service").stdout
    props = [
        f"--property={line.strip()}"
        for line in unit.splitlines()
        if line.split("=", 1)[0] in HARDENING
    ]
    assert len(props) == len(HARDENING), props
    run(
        node,
        "test -f /etc/hecate/id_ed25519 || ssh-keygen -q -t ed25519 -N '' "
        "-f /etc/hecate/id_ed25519 && install -d -m 700 -o hecate -g hecate "
        "/home/hecate/.ssh && install -m 600 -o hecate -g hecate "
        "/etc/hecate/id_ed25519.pub /home/hecate/.ssh/authorized_keys && "
        # the daemon's user reads the key through its group (README, least privilege)
        "chgrp hecate-daemon /etc/hecate/id_ed25519 && chmod 640 /etc/hecate/id_ed25519",
    )
    ssh = (
        "/usr/bin/ssh -F /dev/null -i /etc/hecate/id_ed25519 -o BatchMode=yes "
        "-o StrictHostKeyChecking=accept-new "
        "-o UserKnownHostsFile=/var/lib/hecate/ssh_known_hosts "
        "-o ControlMaster=auto -o ControlPath=/tmp/cp-%C -o ControlPersist=5 "
        "-o ConnectTimeout=5 hecate@127.0.0.1 echo ssh-ok"
    )
    done = run(
        node,
        "systemd-run --quiet --wait --pipe --collect --uid=hecate-daemon --gid=hecate-daemon "
        + " ".join(props)
        + f" {ssh}",
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ssh-ok"
    assert "127.0.0.1" in run(node, "cat /var/lib/hecate/ssh_known_hosts").stdout


def test_second_run_and_check_mode_change_nothing(installed: Installed) -> None:
    node = installed.node
    password = run(node, "sha256sum /etc/hecate/nut-password").stdout
    started = unit_property(node, "hecate.service", "ExecMainStartTimestamp")
    again = install(node)
    assert recap(again.stdout) == (0, 0, 0), changed_tasks(again.stdout) or again.stdout[-3000:]
    check = install(node, "--check")
    assert recap(check.stdout) == (0, 0, 0), changed_tasks(check.stdout) or check.stdout[-3000:]
    assert run(node, "sha256sum /etc/hecate/nut-password").stdout == password
    assert unit_property(node, "hecate.service", "ExecMainStartTimestamp") == started


def test_the_role_checks_knobs_too(installed: Installed) -> None:
    """Bypassing install.sh: the role's argument specs and asserts refuse before any change."""
    node = installed.node
    ups_conf = run(node, "sha256sum /etc/nut/ups.conf").stdout
    playbook = (
        f"cd {SRC} && ANSIBLE_ROLES_PATH={SRC}/roles .venv/bin/ansible-playbook -i localhost, "
        f"-c local playbooks/install.yml -e "
    )
    base = {"hecate_install_source": SRC, "hecate_install_pip_wheelhouse": WHEELS}
    for extra, message in (
        ({"hecate_install_nut_vendor_id": "07G4"}, "must be 4 hex digits"),
        ({"hecate_install_enable_bootstrap": "maybe"}, "hecate_install_enable_bootstrap"),
    ):
        done = run(
            node, playbook + shlex.quote(json.dumps({**base, **extra})), timeout=120, check=False
        )
        assert done.returncode != 0
        assert message in done.stdout + done.stderr, (done.stdout + done.stderr)[-3000:]
        assert recap(done.stdout) == (0, 0, 1)
    assert run(node, "sha256sum /etc/nut/ups.conf").stdout == ups_conf


def test_update_fast_forwards_and_reinstalls(installed: Installed) -> None:
    node = installed.node
    git = "git -c user.name=test -c user.email=test@example.invalid"
    run(
        node,
        f"set -e; git init -q --bare -b main {REMOTE}; cd {SRC}; git init -q -b main; "
        f"git add -A; {git} commit -q -m base; git remote add origin {REMOTE}; "
        "git push -q -u origin main",
    )
    head = run(node, f"git -C {SRC} rev-parse HEAD").stdout.strip()
    clone = "/tmp/hecate-clone"  # in the node
    # An unsigned commit is refused: nothing changes.
    run(
        node,
        f"set -e; git clone -q {REMOTE} {clone}; cd {clone}; "
        "echo 'Unsigned.' >> README.md; "
        f"{git} commit -q -am unsigned; git push -q origin main",
    )
    daemon_pid = unit_property(node, "hecate.service", "MainPID")
    run(node, "systemctl start hecate-update.service", timeout=120, check=False)
    assert run(node, f"git -C {SRC} rev-parse HEAD").stdout.strip() == head
    assert unit_property(node, "hecate-update.service", "Result") == "exit-code"
    log = run(node, "journalctl -u hecate-update.service --no-pager -o cat").stdout
    assert "REFUSED: commit" in log and "not signed by a trusted ssh key" in log, log[-2000:]
    # A signed one, in place of it, is installed.
    signed = f"{git} -c gpg.format=ssh -c user.signingkey={RELEASE_KEY} -c commit.gpgsign=true"
    run(
        node,
        f"set -e; cd {clone}; git reset -q --hard HEAD~1; "
        "echo 'Updated by the test.' >> README.md; "
        f"{signed} commit -q -am update; git push -q -f origin main",
    )
    new = run(node, f"git -C {clone} rev-parse HEAD").stdout.strip()

    # Never during a shutdown: the intent says so, the checkout stays where it is.
    run(node, 'echo \'{"state": "shutting_down"}\' > /var/lib/hecate/intent.json')
    try:
        run(node, "systemctl start hecate-update.service", timeout=120)
    finally:
        run(node, "rm -f /var/lib/hecate/intent.json")
    assert run(node, f"git -C {SRC} rev-parse HEAD").stdout.strip() == head
    assert "postponed" in run(node, "journalctl -u hecate-update.service --no-pager -o cat").stdout

    started = time.monotonic()
    run(node, "systemctl start hecate-update.service", timeout=INSTALL_TIMEOUT_S)
    log = run(node, "journalctl -u hecate-update.service --no-pager -o cat").stdout
    assert run(node, f"git -C {SRC} rev-parse HEAD").stdout.strip() == new, log[-3000:]
    assert "re-running the installer" in log
    assert "signed by a trusted ssh key" in log
    assert unit_property(node, "hecate-update.service", "Result") == "success"
    # README.md is part of the package: the fingerprint changed, Hecate was reinstalled and
    # the daemon restarted onto it.
    assert (
        "Updated by the test."
        in run(
            node,
            "/opt/hecate/bin/python -c 'import importlib.metadata as m; "
            'print(m.metadata("hecate").get_payload())\'',
        ).stdout
    )
    wait_until(
        lambda: unit_property(node, "hecate.service", "ActiveState") == "active",
        60,
        "hecate.service active after the update",
    )
    assert unit_property(node, "hecate.service", "MainPID") != daemon_pid
    assert time.monotonic() - started < INSTALL_TIMEOUT_S


def test_knobs_switch_the_timer_bootstrap_and_nut_off(installed: Installed) -> None:
    node = installed.node
    nut_files = run(node, "sha256sum /etc/nut/*").stdout
    off = {"HECATE_ENABLE_UPDATE": "0", "HECATE_ENABLE_BOOTSTRAP": "0", "HECATE_MANAGE_NUT": "0"}
    done = install(node, env=off)
    changed, unreachable, failed = recap(done.stdout)
    assert (changed > 0, unreachable, failed) == (True, 0, 0)
    assert run(node, "systemctl is-enabled hecate-update.timer", check=False).stdout.strip() == (
        "disabled"
    )
    assert unit_property(node, "hecate-update.timer", "ActiveState") == "inactive"
    assert run(node, "systemctl is-enabled hecate-bootstrap", check=False).stdout.strip() == (
        "disabled"
    )
    # NUT left as it was; the daemon no longer orders itself after upsd
    assert run(node, "sha256sum /etc/nut/*").stdout == nut_files
    assert "nut-server" not in unit_property(node, "hecate.service", "After")
    knobs = run(node, "cat /etc/hecate/install.env").stdout
    for line in ("HECATE_ENABLE_UPDATE=0", "HECATE_ENABLE_BOOTSTRAP=0", "HECATE_MANAGE_NUT=0"):
        assert re.search(rf"^{line}$", knobs, re.M), knobs
    wait_until(
        lambda: unit_property(node, "hecate.service", "ActiveState") == "active",
        60,
        "hecate.service active with the new knobs",
    )
    assert recap(install(node, env=off).stdout) == (0, 0, 0)
