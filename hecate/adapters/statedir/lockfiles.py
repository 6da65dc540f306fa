"""The lock files under the flow and write locks (hecate.adapters.statedir.save): a flock
under the runtime directory and `state_dir/hecate.lock`, each opened read-only when it cannot be
opened for writing; None (and why) when the file cannot be had, IntentLockedError naming the
holder when another process has it."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path

from hecate.adapters.statedir import unsaved
from hecate.adapters.statedir.files import LOCK_NAME
from hecate.adapters.statedir.private_files import FILE_MODE, private_dir
from hecate.errors import IntentLockedError


def error_text(exc: BaseException) -> str:
    return exc.strerror or str(exc) if isinstance(exc, OSError) else str(exc)


def runtime_flock(name: str, *, wait_s: float) -> int | None:
    """An fd holding an exclusive flock on runtime_dir/name; None when the file cannot be
    had. IntentLockedError when another process holds it past `wait_s`. Made for the runtime
    directory's owner when root; opened read-only when it cannot be opened for writing (a
    lock file another user made can still be locked)."""
    path = unsaved.runtime_dir() / name
    fd: int | None = None
    with contextlib.suppress(OSError):
        path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
    for flags in (os.O_RDWR | os.O_CREAT, os.O_RDONLY):
        try:
            fd = os.open(path, flags | os.O_CLOEXEC, 0o640)
            break
        except OSError:
            continue
    if fd is None:
        return None
    unsaved.own(fd)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                try:
                    holder = path.read_text(encoding="utf-8", errors="replace").strip()
                except OSError:
                    holder = ""
                raise IntentLockedError(
                    f"another hecate process holds {path} ({holder or 'holder unknown'}); "
                    "wait for it to finish, or check it with `hecate status`"
                ) from None
            time.sleep(0.02)
        except OSError:
            os.close(fd)
            return None


def release(fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def state_flock(state_dir: Path) -> tuple[int | None, str]:
    """An fd holding state_dir/hecate.lock (opened read-only when it cannot be opened for
    writing: a read-only disk can still be locked); None and why when it cannot be had.
    IntentLockedError names the holder when another process has it. A missing state_dir is
    made (0700) and the lock file is owner-only (hecate.adapters.statedir.private_files)."""
    lock_path = state_dir / LOCK_NAME
    fd: int | None = None
    why = ""
    with contextlib.suppress(OSError):  # a disk that refuses it: the open below says why
        private_dir(state_dir)
    for flags in (os.O_RDWR | os.O_CREAT, os.O_RDONLY):
        try:
            fd = os.open(lock_path, flags | os.O_CLOEXEC, FILE_MODE)
            break
        except OSError as exc:
            why = why or error_text(exc)
    if fd is None:
        return None, f"cannot open {lock_path}: {why}"
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        try:
            holder = lock_path.read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            holder = ""
        raise IntentLockedError(
            f"another hecate process holds {lock_path} ({holder or 'holder unknown'}); "
            "wait for it to finish, or check it with `hecate status`"
        ) from None
    except OSError as exc:
        os.close(fd)
        return None, f"cannot lock {lock_path}: {error_text(exc)}"
    return fd, ""
