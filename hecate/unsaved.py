"""State files the disk refused: kept in memory and under the runtime directory until saved.

A shutdown never stops because its bookkeeping cannot be written (README, "State files"): when
`state_dir` is full, read-only, deleted or failing, the content of a state file is kept here,
in this process's memory and as a copy under the unit's runtime directory (`/run/hecate`,
`$RUNTIME_DIRECTORY` when systemd sets it), so another Hecate process (`hecate status`, a CLI
run, the daemon after a restart) reads what was meant to be written. Readers see a kept copy
before the file on disk (hecate.statefiles.load_state). hecate.statesave writes, keeps and
retries; this module only holds what is kept, and says so once in the log.

No import of hecate.statefiles: it reads through here.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("hecate.statefiles")

DEFAULT_RUNTIME_DIR = Path("/run/hecate")
RUNTIME_DIR_ENV = "RUNTIME_DIRECTORY"  # systemd sets it for RuntimeDirectory=
UNSAVED_DIR = "unsaved"
ERROR_FILE = ".error"

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
    """A stable name for a state directory under the runtime directory."""
    return hashlib.sha256(str(state_dir.absolute()).encode()).hexdigest()[:16]


def kept_dir(state_dir: Path) -> Path:
    """Where the copies of `state_dir`'s unsaved files go."""
    return runtime_dir() / UNSAVED_DIR / dir_key(state_dir)


@dataclass(frozen=True)
class UnsavedFile:
    name: str
    error: str
    since: float  # wall time of the first refused write
    copy: Path | None  # the copy under the runtime directory, None when none could be made


_lock = threading.RLock()
_memory: dict[Path, tuple[str, str, float]] = {}  # absolute path -> (text, error, since)
_copies: dict[Path, Path | None] = {}
_failing: set[Path] = set()  # state dirs whose failure was logged and not yet recovered
_failures: Counter[str] = Counter()  # refused writes by file name, for /metrics


def write_failure_counts() -> dict[str, int]:
    """Writes the disk refused since this process started, by file name."""
    with _lock:
        return dict(_failures)


def _key(path: Path) -> Path:
    return path.absolute()


def _write_copy(path: Path, text: str) -> Path | None:
    """A copy under the runtime directory (tmpfs: no fsync); None when it cannot be made."""
    target = kept_dir(path.parent) / path.name
    tmp = target.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(target)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        return None
    return target


def keep(path: Path, text: str, error: str, *, now: float | None = None) -> None:
    """The disk refused `text` for `path`: keep it, count it; log it once per state dir
    until its files are saved again."""
    stamp = time.time() if now is None else now
    state_dir = _key(path.parent)
    with _lock:
        since = _memory.get(_key(path), ("", "", stamp))[2]
        _memory[_key(path)] = (text, error, since)
        _failures[path.name] += 1
        copy = _write_copy(path, text)
        _copies[_key(path)] = copy
        if copy is not None:
            with contextlib.suppress(OSError):
                (copy.parent / ERROR_FILE).write_text(f"{error}\n", encoding="utf-8")
        first = state_dir not in _failing
        _failing.add(state_dir)
    if first:
        where = f"in memory and in {copy.parent}" if copy is not None else "in memory only"
        log.error(
            "state files cannot be written (%s): kept %s and written when the disk allows; "
            "flows go on",
            error,
            where,
        )
    else:
        log.debug("kept unsaved: %s (%s)", path, error)


def note_failure(path: Path, error: str) -> None:
    """A refused file operation that keeps nothing (a lock file): counted, logged once."""
    state_dir = _key(path.parent)
    with _lock:
        _failures[path.name] += 1
        first = state_dir not in _failing
        _failing.add(state_dir)
    if first:
        log.error(
            "state files cannot be written (%s): what flows record is kept until the disk "
            "allows (under %s); flows go on",
            error,
            kept_dir(path.parent),
        )


def saved(path: Path) -> None:
    """`path` is on disk: forget its kept copy (and say so when the last one is saved)."""
    key = _key(path)
    state_dir = _key(path.parent)
    with _lock:
        had = _memory.pop(key, None) is not None
        copy = _copies.pop(key, None)
        copy = copy if copy is not None else kept_dir(path.parent) / path.name
        with contextlib.suppress(OSError):
            copy.unlink()
        if any(k.parent == state_dir for k in _memory):
            return
        with contextlib.suppress(OSError):
            if not any(not c.name.startswith(".") for c in copy.parent.iterdir()):
                (copy.parent / ERROR_FILE).unlink()
        recovered = state_dir in _failing
        _failing.discard(state_dir)
    if recovered or had:
        log.warning("state files in %s written again", state_dir)


def kept_text(path: Path) -> str | None:
    """What was meant to be in `path` and is not on disk yet: this process's copy, else one
    another process left under the runtime directory; None when nothing is kept."""
    with _lock:
        held = _memory.get(_key(path))
    if held is not None:
        return held[0]
    copy = kept_dir(path.parent) / path.name
    try:
        return copy.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def drop_copy(path: Path) -> None:
    """A kept copy that cannot be read is dropped (the file on disk is read instead)."""
    with _lock:
        _memory.pop(_key(path), None)
        _copies.pop(_key(path), None)
    with contextlib.suppress(OSError):
        (kept_dir(path.parent) / path.name).unlink()


def pending(state_dir: Path) -> dict[Path, str]:
    """This process's unsaved files under `state_dir` and what they should hold."""
    directory = _key(state_dir)
    with _lock:
        return {
            key: text for key, (text, _error, _since) in _memory.items() if key.parent == directory
        }


def pending_dirs() -> list[Path]:
    with _lock:
        return sorted({key.parent for key in _memory})


def unsaved_files(state_dir: Path) -> list[UnsavedFile]:
    """The files of `state_dir` that are not on disk: this process's, and the copies any
    process left under the runtime directory (for `hecate status`)."""
    directory = _key(state_dir)
    found: dict[str, UnsavedFile] = {}
    with _lock:
        for key, (_text, error, since) in _memory.items():
            if key.parent == directory:
                found[key.name] = UnsavedFile(key.name, error, since, _copies.get(key))
    folder = kept_dir(state_dir)
    try:
        error = (folder / ERROR_FILE).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        error = ""
    with contextlib.suppress(OSError):
        for copy in sorted(folder.iterdir()):
            if copy.name.startswith(".") or copy.name in found:
                continue
            since = copy.stat().st_mtime
            found[copy.name] = UnsavedFile(copy.name, error or "the disk refused it", since, copy)
    return [found[name] for name in sorted(found)]


def reset_for_tests() -> None:
    with _lock:
        _memory.clear()
        _copies.clear()
        _failing.clear()
        _failures.clear()
