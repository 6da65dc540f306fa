"""Atomic, locked JSON state files under `state_dir` (the imperative shell around intent and runs).

Every file under `state_dir` (intent, runs, ledger, drills, bootstrap cache) goes through here:

- writes go to a temp file in the same directory, are fsynced, then renamed over the target, so
  a reader (or a crash) sees either the old or the new content, never half of it; only strict
  JSON is written (no NaN, no Infinity);
- read-modify-write happens under one short lock (`write_lock`), flows under one long one
  (`exclusive_lock`);
- one reader (`load_state`) turns any unreadable content (bad bytes, bad JSON, wrong shape,
  too large, not a regular file) into StateCorruptError, with the file set aside as
  `NAME.corrupt-TIMESTAMP`, logged, and counted for the `hecate_state_corrupt_files_total`
  metric. Nothing is ever silently replaced.

A file the disk refuses is kept (hecate.adapters.statedir.unsaved) and read from there first; the
flows write
through hecate.adapters.statedir.save, which keeps instead of raising (protection before
bookkeeping).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import logging
import os
import socket
import stat
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from hecate.adapters.statedir import unsaved
from hecate.adapters.statedir.private_files import open_private, private_dir
from hecate.errors import IntentLockedError, StateBusyError, StateCorruptError, StateError

LOCK_NAME = "hecate.lock"


MAX_STATE_BYTES = 16 << 20  # far above any real state file (runs.json with 1000 runs is ~1 MB)
WRITE_LOCK_NAME = ".write.lock"

log = logging.getLogger(__name__)

T = TypeVar("T")

# How many files this process set aside, by file name: exposed as a metric.
_corrupt_counts: Counter[str] = Counter()
_counts_lock = threading.Lock()


def corrupt_counts() -> dict[str, int]:
    """Files set aside since this process started, by file name (for /metrics)."""
    with _counts_lock:
        return dict(_corrupt_counts)


def _dumps(data: Any) -> str:
    try:
        return json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n"
    except ValueError as exc:  # NaN or Infinity: never write JSON that is not JSON
        raise StateError(f"refusing to write non-standard JSON: {exc}") from None


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` atomically: temp file, fsync, rename, fsync of the directory."""
    # tempfile (with shutil, bz2, lzma, random) only for a write: `hecate status` only reads
    import tempfile  # noqa: PLC0415

    try:
        private_dir(path.parent)  # 0700 whatever the umask; mkstemp's file is 0600
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise StateError(f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
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


def atomic_write_json(path: Path, data: Any) -> None:
    """Write strict JSON (no NaN/Infinity) to `path` atomically."""
    atomic_write_text(path, _dumps(data))


def set_aside(path: Path, now: float | None = None, *, label: str = "corrupt") -> Path:
    """Rename a corrupt file to `NAME.corrupt-YYYYmmddTHHMMSSZ` and return the new path."""
    stamp = datetime.fromtimestamp(now if now is not None else time.time(), UTC)
    target = path.with_name(f"{path.name}.{label}-{stamp:%Y%m%dT%H%M%SZ}")
    counter = 1
    while target.exists():
        target = path.with_name(f"{path.name}.{label}-{stamp:%Y%m%dT%H%M%SZ}.{counter}")
        counter += 1
    path.rename(target)
    return target


def corrupt(
    path: Path,
    reason: str,
    *,
    move: bool = True,
    before_move: Callable[[str], bool] | None = None,
) -> StateCorruptError:
    """Set `path` aside (unless `move` is False), count and log it; the error to raise.

    `before_move(reason)` runs first and may keep the file in place (False): the intent's
    block marker must be recorded before the corrupt intent leaves (hecate.adapters.statedir.store).
    Logged at error level: the daemon's log, and stderr for a CLI command (logging's last
    resort handler prints errors when nothing else is configured).
    """
    kept: Path | None = None
    held = False
    if move and before_move is not None and not before_move(reason):
        move, held = False, True
    if move:
        try:
            kept = set_aside(path)
        except OSError as exc:
            reason = f"{reason}; it could not be moved aside ({exc.strerror})"
    with _counts_lock:
        _corrupt_counts[path.name] += 1
    if kept is not None:
        message = f"{path} is unreadable ({reason}); it was moved to {kept} for inspection"
    elif held:
        message = f"{path} is unreadable ({reason}); left in place until it can be recorded"
    elif move:
        message = f"{path} is unreadable ({reason})"
    else:
        message = f"{path} is unreadable ({reason}); left in place (dry run: nothing moved)"
    log.error("state file %s", message)
    return StateCorruptError(message, kept=kept, reason=reason)


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _read_bytes(path: Path) -> bytes | None:
    """The file's bytes; None when absent. Never blocks on a FIFO, never reads a huge file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise _UnreadableError("a directory, not a file") from None
    except OSError as exc:
        raise StateError(f"cannot read {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _UnreadableError("not a regular file")
        if info.st_size > MAX_STATE_BYTES:
            raise _UnreadableError(f"larger than {MAX_STATE_BYTES} bytes")
        chunks = []
        size = 0
        while size <= MAX_STATE_BYTES:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_STATE_BYTES:
            raise _UnreadableError(f"larger than {MAX_STATE_BYTES} bytes")
        return b"".join(chunks)
    except OSError as exc:
        raise StateError(f"cannot read {path}: {exc.strerror}") from None
    finally:
        os.close(fd)


class _UnreadableError(Exception):
    """Internal: content that can never be read (set aside by the caller)."""


def load_state(
    path: Path,
    decode: Callable[[Any], T],
    *,
    move: bool = True,
    before_move: Callable[[str], bool] | None = None,
) -> T | None:
    """The one reader of state files: None when absent, else `decode(parsed JSON)`.

    Bad bytes, bad JSON (NaN and Infinity included), a wrong shape (`decode` raising
    StateCorruptError, ValueError, KeyError or TypeError) or a file that is too large or not a
    regular file: the file is set aside as `NAME.corrupt-TIMESTAMP` (not with move=False, for
    dry runs; see `corrupt` for `before_move`), counted, logged, and StateCorruptError says
    where it went. A kept copy (hecate.adapters.statedir.unsaved) is read first; one that cannot be
    read is
    StateCorruptError too (set aside; the disk file, older, is not read in its place).
    """
    try:
        kept = _kept(path, decode)
    except StateCorruptError as exc:
        log.error("state file %s: the unsaved copy is unreadable (%s)", path, exc.reason)
        unsaved.set_copy_aside(path)
        with _counts_lock:
            _corrupt_counts[path.name] += 1
        raise StateCorruptError(
            f"{path}: its unsaved copy is unreadable ({exc.reason})", reason=exc.reason
        ) from None
    if kept is not None:
        return kept
    fail = functools.partial(corrupt, path, move=move, before_move=before_move)
    try:
        raw = _read_bytes(path)
        if raw is None:
            return None
        text = raw.decode("utf-8")
        data = json.loads(text, parse_constant=_refuse_constant)
    except _UnreadableError as exc:
        raise fail(str(exc)) from None
    except UnicodeDecodeError as exc:
        raise fail(f"not UTF-8: bad byte at offset {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise fail(f"not JSON: {exc.msg} at line {exc.lineno}") from None
    except (ValueError, RecursionError) as exc:
        raise fail(f"not JSON: {exc}") from None
    try:
        return decode(data)
    except (StateCorruptError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise fail(f"wrong shape: {exc}") from None


def _kept(path: Path, decode: Callable[[Any], T]) -> T | None:
    """What the disk refused for `path` and is kept until it is saved
    (hecate.adapters.statedir.unsaved), while
    newer than the file on disk. StateCorruptError when it cannot be read."""
    text = unsaved.kept_text(path)
    if text is None:
        return None
    try:
        return decode(json.loads(text, parse_constant=_refuse_constant))
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise StateCorruptError(str(exc), reason=f"not valid: {exc}") from None


def read_json(path: Path, *, move: bool = True) -> Any | None:
    """Parsed JSON content, None when the file is absent (see load_state)."""
    return load_state(path, lambda data: data, move=move)


_held = threading.local()


@contextlib.contextmanager
def write_lock(state_dir: Path, timeout_s: float = 10.0) -> Iterator[None]:
    """The short lock around every read-modify-write of a state file (flows hold the long one).

    Re-entrant within a thread, so a helper that takes it can call another that does.
    """
    key = str(state_dir.resolve(strict=False))
    depth: dict[str, int] = getattr(_held, "depth", None) or {}
    _held.depth = depth
    if depth.get(key):
        depth[key] += 1
        try:
            yield
        finally:
            depth[key] -= 1
        return
    try:
        private_dir(state_dir)
        fd = open_private(state_dir / WRITE_LOCK_NAME, os.O_RDWR)
    except OSError as exc:
        raise StateError(f"cannot lock {state_dir}: {exc.strerror}") from None
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StateBusyError(
                        f"{state_dir}: state files stayed locked for {timeout_s:.0f}s"
                    ) from None
                time.sleep(0.05)
        depth[key] = 1
        try:
            yield
        finally:
            depth[key] = 0
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def exclusive_lock(state_dir: Path, purpose: str) -> Iterator[None]:
    """Hold the state directory's exclusive lock for the duration of a flow.

    Non-blocking: when another process holds it, IntentLockedError names the holder, so two
    Hecate processes never run startup or shutdown at the same time.
    """
    private_dir(state_dir)
    lock_path = state_dir / LOCK_NAME
    fd = open_private(lock_path, os.O_RDWR)
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
