"""State files the disk refused: kept in memory and under the runtime directory until saved.

A shutdown never stops because its bookkeeping cannot be written (README, "State files"): when
`state_dir` is full, read-only, deleted or failing, the content of a state file is kept here,
in this process's memory and as a copy under the unit's runtime directory (`/run/hecate`,
`$RUNTIME_DIRECTORY` when systemd sets it), so another Hecate process (`hecate status`, a CLI
run, the daemon after a restart) reads what was meant to be written. hecate.adapters.statedir.save
writes,
keeps and retries; this module only holds what is kept, and says so once in the log.

A kept copy is newer than the disk only while the disk file is the one it was kept over: each
copy records the file's identity then (`base`: device, inode, size, mtime, ctime). Once another
process has written the file (a new identity), or removed or replaced this process's copy
under the runtime directory (a successful write removes it), the kept copy is stale: it is
never read and never written again (fail closed: an old `normal` never comes back over a newer
intent). A copy under the runtime directory is one JSON header line, then the file's text.

No import of hecate.adapters.statedir.files: it reads through here.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from hecate.adapters.statedir.runtime_dir import (
    ABSENT,
    RUNTIME_DIR_ENV,
    UNKNOWN,
    dir_key,
    identity,
    make_runtime_dirs,
    own,
    runtime_dir,
    set_runtime_dir,
)
from hecate.errors import StateCorruptError

__all__ = [
    "RUNTIME_DIR_ENV",
    "UNSAVED_DIR",
    "UnsavedFile",
    "adopt",
    "dir_key",
    "identity",
    "is_held",
    "keep",
    "kept_dir",
    "kept_text",
    "leftovers",
    "note_failure",
    "own",
    "pending",
    "pending_dirs",
    "reset_for_tests",
    "runtime_dir",
    "saved",
    "set_copy_aside",
    "set_runtime_dir",
    "to_flush",
    "unsaved_files",
    "write_failure_counts",
]

log = logging.getLogger("hecate.statefiles")

UNSAVED_DIR = "unsaved"


def kept_dir(state_dir: Path) -> Path:
    """Where the copies of `state_dir`'s unsaved files go."""
    return runtime_dir() / UNSAVED_DIR / dir_key(state_dir)


def _unchanged(base: str, now: str) -> bool:
    """The disk file is still the one a copy was kept over (UNKNOWN proves no change)."""
    return base == now or UNKNOWN in (base, now)


@dataclass(frozen=True)
class UnsavedFile:
    name: str
    error: str
    since: float  # wall time of the first refused write
    copy: Path | None  # the copy under the runtime directory, None when none could be made


@dataclass(frozen=True)
class _Kept:
    text: str
    error: str
    since: float
    base: str  # identity of the disk file when kept
    copy: Path | None
    copy_id: str  # identity of `copy` as written (ABSENT when none)
    hold: bool  # never written over its base (a file that could not be read)


_lock = threading.RLock()
_memory: dict[Path, _Kept] = {}  # absolute path -> what is kept
_failing: set[Path] = set()  # state dirs whose failure was logged and not yet recovered
_failures: Counter[str] = Counter()  # refused writes by file name, for /metrics


def write_failure_counts() -> dict[str, int]:
    """Writes the disk refused since this process started, by file name."""
    with _lock:
        return dict(_failures)


def _key(path: Path) -> Path:
    return path.absolute()


def _copy_path(path: Path) -> Path:
    return kept_dir(path.parent) / path.name


def _write_copy(path: Path, header: dict[str, object], text: str) -> tuple[Path | None, str]:
    """A copy under the runtime directory (tmpfs: no fsync) and its identity."""
    target = _copy_path(path)
    tmp = target.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        make_runtime_dirs(target.parent)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            own(handle.fileno())
            handle.write(json.dumps(header, sort_keys=True) + "\n" + text)
        tmp.replace(target)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        return None, ABSENT
    return target, identity(target)


def _read_copy(copy: Path) -> tuple[dict[str, object], str] | None:
    """(header, text) of a copy; None when there is none; StateCorruptError when unreadable."""
    try:
        raw = copy.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateCorruptError(f"{copy} cannot be read: {exc.strerror}") from None
    try:
        head, _, text = raw.decode("utf-8").partition("\n")
        header = json.loads(head)
        if not isinstance(header, dict) or not isinstance(header.get("base"), str):
            raise ValueError("no header")
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError included
        raise StateCorruptError(f"{copy} is unreadable ({exc})", reason=str(exc)) from None
    return header, text


def keep(
    path: Path,
    text: str,
    error: str,
    *,
    base: str | None = None,
    hold: bool = False,
    now: float | None = None,
) -> None:
    """The disk refused `text` for `path`: keep it over the disk file as it is now (`base`,
    when the caller read it earlier), count it; log once per state dir until saved again.
    `hold`: the disk file could not be read, so it is never written over (read instead)."""
    stamp = time.time() if now is None else now
    state_dir = _key(path.parent)
    base = identity(path) if base is None else base
    with _lock:
        old = _memory.get(_key(path))
        since = old.since if old is not None else stamp
        header: dict[str, object] = {"base": base, "error": error, "since": since, "hold": hold}
        copy, copy_id = _write_copy(path, header, text)
        _memory[_key(path)] = _Kept(text, error, since, base, copy, copy_id, hold)
        _failures[path.name] += 1
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
    """`path` is on disk: its kept copies (this process's, and any under the runtime
    directory: older than what was just written) are gone; say so when the last one is."""
    key = _key(path)
    state_dir = _key(path.parent)
    with _lock:
        had = _memory.pop(key, None) is not None
        copy = _copy_path(path)
        with contextlib.suppress(OSError):
            copy.unlink()
        if any(k.parent == state_dir for k in _memory):
            return
        recovered = state_dir in _failing
        _failing.discard(state_dir)
    if recovered or had:
        log.warning("state files in %s written again", state_dir)


def _valid(entry: _Kept, disk: str) -> bool:
    if not _unchanged(entry.base, disk) and not (entry.hold and disk == ABSENT):
        return False
    return entry.copy is None or identity(entry.copy) == entry.copy_id


def _current(path: Path) -> _Kept | None:
    """This process's kept copy while still newer than the disk; a stale one is dropped.
    The disk is asked outside the lock: a slow disk never holds up another thread here."""
    key = _key(path)
    with _lock:
        entry = _memory.get(key)
    if entry is None or _valid(entry, identity(path)):
        return entry
    with _lock:
        if _memory.get(key) is not entry:  # kept again meanwhile: that one is judged next time
            return _memory.get(key)
        del _memory[key]
    log.warning("%s was written by another process since: its kept copy is dropped", path)
    return None


def kept_text(path: Path) -> str | None:
    """What was meant to be in `path` and is not on disk yet: this process's copy, else one
    another process left under the runtime directory; None when nothing (still) is.
    StateCorruptError when a copy cannot be read (the caller decides: never the disk instead
    for the intent)."""
    entry = _current(path)
    if entry is not None:
        return entry.text
    found = _read_copy(_copy_path(path))
    if found is None:
        return None
    header, text = found
    return text if _unchanged(str(header["base"]), identity(path)) else None


def set_copy_aside(path: Path) -> None:
    """A copy that cannot be read: renamed aside (a dot name, kept for inspection)."""
    copy = _copy_path(path)
    with _lock:
        _memory.pop(_key(path), None)
    with contextlib.suppress(OSError):
        copy.rename(copy.with_name(f".{copy.name}.corrupt-{int(time.time())}"))


def to_flush(state_dir: Path) -> dict[Path, str]:
    """What this process should write now: its kept files still newer than the disk (stale
    ones are dropped, held ones wait). Call under the state directory's write lock."""
    directory = _key(state_dir)
    with _lock:
        keys = [key for key in _memory if key.parent == directory]
    out: dict[Path, str] = {}
    for key in keys:
        entry = _current(key)
        if entry is not None and (not entry.hold or identity(key) == ABSENT):
            out[key] = entry.text
    return out


def leftovers(state_dir: Path) -> list[str]:
    """Copies under the runtime directory for `state_dir` this process does not hold."""
    try:
        names = [c.name for c in kept_dir(state_dir).iterdir() if not c.name.startswith(".")]
    except OSError:
        return []
    with _lock:
        return sorted(n for n in names if _key(state_dir / n) not in _memory)


def adopt(state_dir: Path) -> list[str]:
    """Take over the copies other processes left for `state_dir` (a restarted daemon: nobody
    else would write them): still-current ones are kept by this process, stale ones removed.
    Call under the write lock. The names adopted."""
    folder = kept_dir(state_dir)
    try:
        copies = sorted(c for c in folder.iterdir() if not c.name.startswith("."))
    except OSError:
        return []
    adopted: list[str] = []
    for copy in copies:
        path = state_dir / copy.name
        try:
            found = _read_copy(copy)
        except StateCorruptError:
            continue  # left for the reader, who fails closed on it
        if found is None:
            continue
        header, text = found
        base = str(header["base"])
        if not _unchanged(base, identity(path)):
            with contextlib.suppress(OSError):
                copy.unlink()
            continue
        with _lock:
            if _key(path) in _memory:
                continue
            since = header.get("since")
            _memory[_key(path)] = _Kept(
                text,
                str(header.get("error", "")),
                float(since) if isinstance(since, int | float) else time.time(),
                base,
                copy,
                identity(copy),
                header.get("hold") is True,
            )
            _failing.add(_key(state_dir))
        adopted.append(copy.name)
    return adopted


def pending(state_dir: Path) -> dict[Path, str]:
    """This process's unsaved files under `state_dir` and what they should hold."""
    directory = _key(state_dir)
    with _lock:
        return {key: e.text for key, e in _memory.items() if key.parent == directory}


def pending_dirs() -> list[Path]:
    with _lock:
        return sorted({key.parent for key in _memory})


def is_held(path: Path) -> bool:
    """A copy is kept for `path` because the file there could not be read: not written over."""
    entry = _current(path)
    return entry is not None and entry.hold and identity(path) != ABSENT


def unsaved_files(state_dir: Path) -> list[UnsavedFile]:
    """The files of `state_dir` that are not on disk: this process's, and the current copies
    any process left under the runtime directory (for `hecate status`)."""
    directory = _key(state_dir)
    found: dict[str, UnsavedFile] = {}
    with _lock:
        for key, e in _memory.items():
            if key.parent == directory:
                found[key.name] = UnsavedFile(key.name, e.error, e.since, e.copy)
    folder = kept_dir(state_dir)
    with contextlib.suppress(OSError):
        for copy in sorted(folder.iterdir()):
            if copy.name.startswith(".") or copy.name in found:
                continue
            try:
                read = _read_copy(copy)
            except StateCorruptError as exc:
                found[copy.name] = UnsavedFile(copy.name, str(exc), copy.stat().st_mtime, copy)
                continue
            if read is None or not _unchanged(
                str(read[0]["base"]), identity(state_dir / copy.name)
            ):
                continue
            since = read[0].get("since")
            stamp = float(since) if isinstance(since, int | float) else copy.stat().st_mtime
            error = str(read[0].get("error") or "the disk refused it")
            found[copy.name] = UnsavedFile(copy.name, error, stamp, copy)
    return [found[name] for name in sorted(found)]


def reset_for_tests() -> None:
    with _lock:
        _memory.clear()
        _failing.clear()
        _failures.clear()
