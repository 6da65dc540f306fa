"""Owner-only files and directories, whatever the umask.

The state directory holds what nobody else should read: the intent and run history, outage
traces, and Ansible's private data (its environment, inventory, and the nodes' output). The unit
runs the daemon with `UMask=0077`, but an operator may run it (or `hecate shutdown --execute`)
from a shell with 022 or even 000, so every directory under it is made 0700 and every file 0600
by mode, not by umask. ansible-runner writes some of its artifacts with the process umask, so a
run holds :func:`private_umask` around it.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
_PRIVATE_UMASK = 0o077

_umask_lock = threading.Lock()
_umask_holders = 0
_umask_saved = 0


def private_dir(path: Path) -> Path:
    """Make `path` and any missing parent 0700 (umask notwithstanding); existing ones are left
    as they are (the operator's). Raises OSError as mkdir does."""
    missing: list[Path] = []
    for each in (path, *path.parents):
        if each.is_dir():
            break
        missing.append(each)
    for each in reversed(missing):
        try:
            each.mkdir(mode=DIR_MODE)
        except FileExistsError:
            if not each.is_dir():
                raise
            continue  # made meanwhile by another thread or process: theirs
        each.chmod(DIR_MODE)  # mkdir's mode is masked: an odd umask (0277) would lock us out
    return path


def open_private(path: Path, flags: int) -> int:
    """os.open with O_CREAT and mode 0600 (a new file is owner-only whatever the umask)."""
    return os.open(path, flags | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)


def write_private_text(path: Path, text: str) -> None:
    """Create or replace `path`'s content as an owner-only file (not atomic: for new files)."""
    fd = open_private(path, os.O_WRONLY | os.O_TRUNC)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """Hold the process umask at (at least) 077 while code we do not own writes files (and
    starts children that do). Process-wide: nested and concurrent holders share it, the last
    one out restores the umask it found. Other threads meanwhile only create narrower files."""
    global _umask_holders, _umask_saved  # noqa: PLW0603 - the umask is process state
    with _umask_lock:
        if _umask_holders == 0:
            _umask_saved = os.umask(_PRIVATE_UMASK)
            os.umask(_umask_saved | _PRIVATE_UMASK)
        _umask_holders += 1
    try:
        yield
    finally:
        with _umask_lock:
            _umask_holders -= 1
            if _umask_holders == 0:
                os.umask(_umask_saved)
