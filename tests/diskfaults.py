"""Real state-disk faults for tests (root only): a full tmpfs, a read-only remount, a deleted
directory that cannot be made again, and an ext4 whose writes fail with EIO.

EIO: device-mapper is not available in this kernel (no error/flakey target), so the failing
disk is an ext4 on a loop device whose backing file lives on a second ext4 (itself on a loop
device); that lower filesystem is shut down (EXT4_IOC_SHUTDOWN, as `xfs_io -c shutdown`),
after which every write the upper filesystem sends to its disk fails: `write()` lands in the
page cache and `fsync()` returns EIO, exactly what a dying disk gives. Every fixture unmounts
and detaches in a `finally`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

EXT4_IOC_SHUTDOWN = 0x8004587D  # _IOR('X', 125, __u32)
EXT4_GOING_FLAGS_NOLOGFLUSH = 2


def _run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()


def need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("real disk faults need root (mount, losetup)")


def _umount(path: Path) -> None:
    done = subprocess.run(["umount", str(path)], capture_output=True, check=False)
    if done.returncode != 0:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "256k") -> Iterator[Path]:
    need_root()
    path.mkdir(parents=True, exist_ok=True)
    try:
        _run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path))
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    try:
        yield path
    finally:
        _umount(path)


def fill(path: Path) -> Path:
    """Fill the filesystem holding `path`; the filler file (delete it to free the space)."""
    filler = path / ".filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with contextlib.suppress(OSError):
            while os.write(fd, b"\0" * 4096):
                pass
    finally:
        os.close(fd)
    return filler


def remount(path: Path, mode: str) -> None:
    _run("mount", "-o", f"remount,{mode}", str(path))


@contextlib.contextmanager
def _loop_ext4(image: Path, mountpoint: Path, size: str) -> Iterator[Path]:
    _run("truncate", "-s", size, str(image))
    _run("mkfs.ext4", "-q", "-O", "^has_journal", "-E", "lazy_itable_init=0,nodiscard", str(image))
    device = _run("losetup", "-f", "--show", str(image))
    try:
        mountpoint.mkdir(parents=True, exist_ok=True)
        _run("mount", "-o", "errors=continue", device, str(mountpoint))
        try:
            yield mountpoint
        finally:
            _umount(mountpoint)
    finally:
        subprocess.run(["losetup", "-d", device], capture_output=True, check=False)


def shutdown_fs(mountpoint: Path) -> None:
    """Shut an ext4 down: from now on every operation on it fails with EIO."""
    fd = os.open(mountpoint, os.O_RDONLY)
    try:
        fcntl.ioctl(fd, EXT4_IOC_SHUTDOWN, EXT4_GOING_FLAGS_NOLOGFLUSH.to_bytes(4, "little"))
    finally:
        os.close(fd)


@contextlib.contextmanager
def failing_ext4(base: Path) -> Iterator[tuple[Path, Callable[[], None]]]:
    """(mountpoint, fail): an ext4 that works until `fail()`, then fails every write to its
    disk with EIO (see the module's docstring)."""
    need_root()
    if not (shutil.which("losetup") and shutil.which("mkfs.ext4")):
        pytest.skip("losetup and mkfs.ext4 are needed for the EIO disk")
    base.mkdir(parents=True, exist_ok=True)
    try:
        with contextlib.ExitStack() as stack:
            lower = stack.enter_context(_loop_ext4(base / "lower.img", base / "lower", "64M"))
            upper = stack.enter_context(_loop_ext4(lower / "upper.img", base / "upper", "16M"))

            def fail() -> None:
                os.sync()
                shutdown_fs(lower)

            yield upper, fail
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"no loop device here: {exc.stderr}")
