"""Atomic, locked JSON state files under `state_dir` (the imperative shell around intent and runs).

Writes go to a temp file in the same directory, are fsynced, then renamed over the target, so a
reader (or a crash) sees either the old or the new content, never half of it. A file that does not
parse is renamed aside with a timestamp and reported, never silently replaced.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hecate.errors import IntentLockedError, StateCorruptError, StateError

LOCK_NAME = "hecate.lock"


def atomic_write_json(path: Path, data: Any) -> None:
    """Write JSON to `path` atomically: temp file, fsync, rename, fsync of the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            Path(tmp).unlink()
        raise StateError(f"cannot write {path}: {exc.strerror}") from None


def set_aside(path: Path, now: float | None = None) -> Path:
    """Rename a corrupt file to `NAME.corrupt-YYYYmmddTHHMMSSZ` and return the new path."""
    stamp = datetime.fromtimestamp(now if now is not None else time.time(), UTC)
    target = path.with_name(f"{path.name}.corrupt-{stamp:%Y%m%dT%H%M%SZ}")
    counter = 1
    while target.exists():
        target = path.with_name(f"{path.name}.corrupt-{stamp:%Y%m%dT%H%M%SZ}.{counter}")
        counter += 1
    path.rename(target)
    return target


def read_json(path: Path) -> Any | None:
    """Parsed JSON content, None when the file is absent.

    A file that is not valid JSON is set aside and StateCorruptError names both paths.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        kept = set_aside(path)
        raise StateCorruptError(
            f"{path} is corrupt ({exc.msg} at line {exc.lineno}); it was moved to {kept} "
            "for inspection and a fresh file will be started"
        ) from None


@contextlib.contextmanager
def exclusive_lock(state_dir: Path, purpose: str) -> Iterator[None]:
    """Hold the state directory's exclusive lock for the duration of a flow.

    Non-blocking: when another process holds it, IntentLockedError names the holder, so two
    Hecate processes never run startup or shutdown at the same time.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    lock_path = state_dir / LOCK_NAME
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o640)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = Path(lock_path).read_text(encoding="utf-8", errors="replace").strip()
            raise IntentLockedError(
                f"another hecate process holds {lock_path} ({holder or 'holder unknown'}); "
                "wait for it to finish, or check it with `hecate status`"
            ) from None
        info = f"pid={os.getpid()} host={socket.gethostname()} purpose={purpose}"
        os.ftruncate(fd, 0)
        os.pwrite(fd, info.encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
