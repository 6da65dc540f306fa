"""The runtime directory (`/run/hecate`): where state the disk refused is kept, and the
fallback locks live (hecate.adapters.statedir.unsaved, hecate.adapters.statedir.save). Files made
here by root belong to the
directory's owner, the daemon's user: a root CLI run never locks the daemon out.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

DEFAULT_RUNTIME_DIR = Path("/run/hecate")
RUNTIME_DIR_ENV = "RUNTIME_DIRECTORY"  # systemd sets it for RuntimeDirectory=
ABSENT = "absent"
UNKNOWN = "unknown"  # the disk would not say (EIO): not proof of a change

# Tests (and a caller with its own layout) point the runtime directory elsewhere.
_runtime_override: Path | None = None


def runtime_dir() -> Path:
    """The runtime directory: set_runtime_dir's, else $RUNTIME_DIRECTORY's first, else
    /run/hecate (hecate.service's RuntimeDirectory=hecate)."""
    if _runtime_override is not None:
        return _runtime_override
    env = os.environ.get(RUNTIME_DIR_ENV, "").split(":")[0]
    return Path(env) if env else DEFAULT_RUNTIME_DIR


def set_runtime_dir(path: Path | None) -> None:
    """Use `path` as the runtime directory (None: back to the default)."""
    global _runtime_override  # noqa: PLW0603 - one process-wide setting, like the env var
    _runtime_override = path


def dir_key(state_dir: Path) -> str:
    """A stable name for a state directory under the runtime directory (the same path as
    statefiles.write_lock resolves, so every lock of one directory has one key)."""
    return hashlib.sha256(str(state_dir.resolve(strict=False)).encode()).hexdigest()[:16]


def identity(path: Path) -> str:
    """Which file `path` is now: ABSENT, UNKNOWN (the disk would not say), or its identity."""
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return ABSENT
    except OSError:
        return UNKNOWN
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def own(path: Path | int) -> None:
    """Root creates files under the runtime directory for its owner (the daemon's user):
    a root CLI run never leaves a copy or lock file the daemon cannot open or remove."""
    if os.geteuid() != 0:
        return
    with contextlib.suppress(OSError):
        st = runtime_dir().stat()
        if isinstance(path, int):
            os.fchown(path, st.st_uid, st.st_gid)
        else:
            os.chown(path, st.st_uid, st.st_gid)


def make_runtime_dirs(target: Path) -> None:
    """mkdir -p `target` under the runtime directory, each new level owned as by `own`."""
    base = runtime_dir()
    base.mkdir(mode=0o750, parents=True, exist_ok=True)
    current = base
    for part in target.relative_to(base).parts:
        current = current / part
        with contextlib.suppress(FileExistsError):
            current.mkdir(mode=0o700)
            own(current)
