"""The test bed's node image: a small Debian bookworm with systemd, sshd, python3 and sudo.

Built without any container registry: ``debootstrap --variant=minbase`` from the host's own Debian
mirror, a few packages installed in a chroot, then ``podman import``. The image is tagged
``localhost/hecate-node:<hash12>`` where the hash covers this file and the files it bakes in
(``tests/testbed/node/image/``), so it is rebuilt only when its recipe changes; it is also tagged
``localhost/hecate-node:latest``.

The image is generic on purpose (the cluster twin, molecule scenarios and installer tests share
it): it holds no k3s stand-in, no SSH host keys (each container makes its own at first boot) and
no authorized keys (each user of the image injects its own). It has:

* ``root`` (SSH by key only) and ``hecate`` (uid 1000, no password), whose sudo rights are as
  limited as on real nodes (see ``node/image/sudoers-hecate``);
* ``pam_systemd`` removed from ``common-session``, so ``systemctl poweroff`` does not hang on
  ``user@.service`` of open SSH sessions;
* Debian's ``etcd`` and ``etcdctl`` (3.4), with the package's own ``etcd.service`` masked: the
  twin's k3s stand-in runs etcd itself, as k3s embeds it.

Every podman call goes through :func:`podman`, which sets ``CONTAINERS_CONF`` to the project's
``scripts/containers.conf`` (runc, no default ulimits) unless the caller set it already.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTAINERS_CONF = REPO_ROOT / "scripts" / "containers.conf"
NODE_DIR = Path(__file__).resolve().parent / "node"
IMAGE_FILES_DIR = NODE_DIR / "image"
IMAGE_REPO = "localhost/hecate-node"
SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "openssh-sftp-server",  # a Recommends of openssh-server; scp and Ansible need it
    "python3",
    "sudo",
    "iproute2",
    "procps",
    # The twin's servers run a real etcd, as k3s's embedded one (tests/testbed/node/etcd_member.py).
    "etcd-server",
    "etcd-client",
)
HECATE_UID = 1000
LOCK_PATH = Path(tempfile.gettempdir()) / "hecate-node-image.lock"
BUILD_TIMEOUT_S = 900.0

# (file under node/image/, path in the image, mode)
BAKED_FILES: tuple[tuple[str, str, int], ...] = (
    ("sudoers-hecate", "etc/sudoers.d/hecate", 0o440),
    ("ssh-hostkeys.service", "etc/systemd/system/ssh-hostkeys.service", 0o644),
    ("sshd-twin.conf", "etc/ssh/sshd_config.d/twin.conf", 0o644),
)


class ImageBuildError(RuntimeError):
    """The node image could not be built."""


def podman_env() -> dict[str, str]:
    """The environment for podman: the project's containers.conf unless one is set already."""
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(CONTAINERS_CONF))
    return env


def podman(
    *args: str, check: bool = True, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """Run ``podman ARGS`` with the project's containers.conf; text output captured.

    Raises CalledProcessError (with podman's stderr) on failure when ``check``.
    """
    proc = subprocess.run(
        ["podman", *args],
        env=podman_env(),
        capture_output=True,
        timeout=timeout,
        check=False,
        text=True,
    )
    if check and proc.returncode != 0:
        raise subprocess.CalledProcessError(
            proc.returncode, proc.args, output=proc.stdout, stderr=proc.stderr
        )
    return proc


def recipe_hash() -> str:
    """sha256 over this module's source and every file baked into the image."""
    digest = hashlib.sha256()
    digest.update(Path(__file__).read_bytes())
    for name, dest, mode in BAKED_FILES:
        digest.update(f"\0{name}\0{dest}\0{mode:o}\0".encode())
        digest.update((IMAGE_FILES_DIR / name).read_bytes())
    return digest.hexdigest()


def image_ref() -> str:
    """The content-addressed reference of the image for the current recipe."""
    return f"{IMAGE_REPO}:{recipe_hash()[:12]}"


def image_exists(ref: str) -> bool:
    return podman("image", "exists", ref, check=False).returncode == 0


def host_mirror() -> str:
    """The Debian mirror the host's apt uses (deb822 ``.sources`` or one-line ``sources.list``)."""
    candidates: list[Path] = [Path("/etc/apt/sources.list")]
    sources_d = Path("/etc/apt/sources.list.d")
    if sources_d.is_dir():
        candidates += sorted(sources_d.glob("*.list")) + sorted(sources_d.glob("*.sources"))
    for path in candidates:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            continue
        mirror = _mirror_from(text, deb822=path.suffix == ".sources")
        if mirror:
            return mirror
    return DEFAULT_MIRROR


def _mirror_from(text: str, *, deb822: bool) -> str | None:
    if deb822:
        for stanza in re.split(r"\n\s*\n", text):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line or line[:1].isspace():
                    continue
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.strip()
            suites = fields.get("suites", "").split()
            if (
                "deb" in fields.get("types", "").split()
                and SUITE in suites
                and fields.get("enabled", "yes").lower() != "no"
                and fields.get("uris")
            ):
                return fields["uris"].split()[0]
        return None
    for line in text.splitlines():
        parts = line.split("#", 1)[0].split()
        if len(parts) >= 3 and parts[0] == "deb":
            rest = [p for p in parts[1:] if not p.startswith("[") and not p.endswith("]")]
            if len(rest) >= 2 and rest[1] == SUITE:
                return rest[0]
    return None


@contextlib.contextmanager
def _build_lock() -> Iterator[None]:
    with LOCK_PATH.open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_image(*, log: bool = False) -> str:
    """Return the node image's reference, building it first if the recipe's tag is missing."""
    ref = image_ref()
    if not image_exists(ref):
        with _build_lock():
            if not image_exists(ref):
                build_image(ref, log=log)
                podman("tag", ref, f"{IMAGE_REPO}:latest")
                prune_old_images(keep=ref)
    podman("tag", ref, f"{IMAGE_REPO}:latest")
    return ref


def prune_old_images(keep: str) -> None:
    """Remove this repo's images of older recipes (those still used by containers stay)."""
    listing = podman("images", "--format", "{{.Repository}}:{{.Tag}}", IMAGE_REPO, check=False)
    for tagged in listing.stdout.split():
        if tagged not in (keep, f"{IMAGE_REPO}:latest") and tagged.startswith(IMAGE_REPO):
            podman("rmi", tagged, check=False)


def _run(argv: Sequence[str], *, log: bool, timeout: float = 600.0) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", LC_ALL="C.UTF-8")
    proc = subprocess.run(
        list(argv), env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if log and proc.stdout:
        print(proc.stdout[-2000:])
    if proc.returncode != 0:
        raise ImageBuildError(
            f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
            f"{proc.stderr[-3000:]}"
        )


def build_image(ref: str, *, log: bool = False) -> None:
    """Build the image from scratch and tag it ``ref`` (needs root, debootstrap and podman)."""
    for tool in ("debootstrap", "chroot", "tar", "podman"):
        if shutil.which(tool) is None:
            raise ImageBuildError(f"{tool} is not installed (apt-get install podman debootstrap)")
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="hecate-node-build-", dir="/var/tmp"))
    root = work / "rootfs"
    try:
        mirror = host_mirror()
        _run(["debootstrap", "--variant=minbase", SUITE, str(root), mirror], log=log)
        _prepare_chroot(root)
        chroot = ["chroot", str(root)]
        _run([*chroot, "apt-get", "update"], log=log)
        _run(
            [*chroot, "apt-get", "install", "-y", "--no-install-recommends", *PACKAGES],
            log=log,
        )
        _run(
            [
                *chroot,
                "useradd",
                "--create-home",
                "--shell",
                "/bin/bash",
                "--uid",
                str(HECATE_UID),
                "--user-group",
                "hecate",
            ],
            log=log,
        )
        _customise(root)
        _run([*chroot, "apt-get", "clean"], log=log)
        _finish_chroot(root)
        tar = subprocess.Popen(
            ["tar", "--numeric-owner", "-C", str(root), "-c", "."], stdout=subprocess.PIPE
        )
        try:
            imported = subprocess.run(
                ["podman", "import", "--change", 'CMD ["/sbin/init"]', "-", ref],
                stdin=tar.stdout,
                env=podman_env(),
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT_S,
                check=False,
            )
        finally:
            if tar.stdout is not None:
                tar.stdout.close()
            tar.wait(timeout=60)
        if imported.returncode != 0 or tar.returncode != 0:
            raise ImageBuildError(f"podman import failed: {imported.stderr[-2000:]}")
        if log:
            print(f"built {ref} in {time.monotonic() - started:.0f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _prepare_chroot(root: Path) -> None:
    etc = root / "etc"
    resolv = etc / "resolv.conf"
    if resolv.is_symlink() or resolv.exists():
        resolv.unlink()
    shutil.copyfile("/etc/resolv.conf", resolv)
    policy = root / "usr" / "sbin" / "policy-rc.d"
    policy.write_text("#!/bin/sh\n# no daemons started while building the image\nexit 101\n")
    policy.chmod(0o755)
    # The host's mirror may be a dated snapshot whose Release files have expired.
    (etc / "apt" / "apt.conf.d" / "99hecate-build").write_text(
        'Acquire::Check-Valid-Until "false";\nAcquire::Languages "none";\n'
    )


def _customise(root: Path) -> None:
    for name, dest, mode in BAKED_FILES:
        target = root / dest
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(IMAGE_FILES_DIR / name, target)
        target.chmod(mode)
    # Enable the host-key unit (what `systemctl enable` would do, without a running systemd).
    wants = root / "etc" / "systemd" / "system" / "ssh.service.requires"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / "ssh-hostkeys.service"
    if not link.is_symlink():
        link.symlink_to("/etc/systemd/system/ssh-hostkeys.service")
    # No pam_systemd: a logged-in session's user@.service would hold `systemctl poweroff` ~2 min.
    session = root / "etc" / "pam.d" / "common-session"
    lines = session.read_text().splitlines()
    session.write_text("".join(f"{ln}\n" for ln in lines if "pam_systemd" not in ln))
    for key in (root / "etc" / "ssh").glob("ssh_host_*"):
        key.unlink()
    for home, uid in ((root / "root", 0), (root / "home" / "hecate", HECATE_UID)):
        ssh_dir = home / ".ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        os.chown(ssh_dir, uid, uid)
    # Units that make no sense in a container.
    masks = root / "etc" / "systemd" / "system"
    (masks / "multi-user.target.wants" / "etcd.service").unlink(missing_ok=True)
    for unit in (
        "getty@tty1.service",
        "console-getty.service",
        "systemd-udevd.service",
        "systemd-udevd-kernel.socket",
        "systemd-udevd-control.socket",
        "systemd-remount-fs.service",
        "apt-daily.timer",
        "apt-daily-upgrade.timer",
        "etcd.service",  # the package's own unit; the twin's k3s runs etcd itself
    ):
        mask = masks / unit
        if not mask.is_symlink() and not mask.exists():
            mask.symlink_to("/dev/null")
    # A machine-id per container (systemd makes a transient one when the file is empty).
    (root / "etc" / "machine-id").write_text("")
    dbus_id = root / "var" / "lib" / "dbus" / "machine-id"
    if dbus_id.is_symlink() or dbus_id.exists():
        dbus_id.unlink()


def _finish_chroot(root: Path) -> None:
    for leftover in (
        root / "usr" / "sbin" / "policy-rc.d",
        root / "etc" / "apt" / "apt.conf.d" / "99hecate-build",
        root / "etc" / "resolv.conf",
    ):
        if leftover.is_symlink() or leftover.exists():
            leftover.unlink()
    lists = root / "var" / "lib" / "apt" / "lists"
    for entry in lists.iterdir() if lists.is_dir() else ():
        if entry.is_file():
            entry.unlink()
    for pattern in ("var/cache/apt/*.bin", "var/log/*.log", "var/cache/debconf/*-old"):
        for path in root.glob(pattern):
            path.unlink()


def main() -> int:
    print(ensure_image(log=bool(os.environ.get("HECATE_IMAGE_LOG"))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
