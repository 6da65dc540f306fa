"""Protection before bookkeeping: state writes and locks that never stop a flow.

- `save_json` writes a state file atomically (hecate.adapters.statedir.files); when the disk
refuses (full,
  read-only, deleted, EIO), or another process holds the write lock past a short wait, the
  content is kept (hecate.adapters.statedir.unsaved: memory and the runtime directory), logged
  once, counted,
  and written at the next write, at the end of the flow, or by a retry every
  RETRY_INTERVAL_S while anything is kept: no stage waits for it. A kept copy is written only
  while the disk file is the one it was kept over (hecate.adapters.statedir.unsaved): never over
  another
  process's newer write.
- `state_write_lock` is this process's lock, then a flock under the runtime directory, then
  statefiles.write_lock, each waited for briefly: contention is StateBusyError (never a
  weaker lock); a lock file that cannot be opened is skipped (logged once).
- `flow_lock` is the flow's exclusive lock: held in this process AND, wherever each can be
  taken, as a flock under the runtime directory and as `state_dir/hecate.lock`. Every flow
  takes all it can, the runtime one first, so two Hecate processes never run flows at once
  while either file is shared. A shutdown runs with whatever could be taken; a startup
  (`required=True`) needs one lock file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hecate.adapters.statedir import unsaved
from hecate.adapters.statedir.files import (
    LOCK_NAME,
    _dumps,
    atomic_write_text,
    set_aside,
    write_lock,
)
from hecate.adapters.statedir.lockfiles import error_text, release, runtime_flock, state_flock
from hecate.errors import IntentLockedError, StateBusyError, StateError

log = logging.getLogger("hecate.statefiles")

RETRY_INTERVAL_S = 30.0
LOCK_WAIT_S = 0.5  # a save waits no longer for another process's write: it is kept instead
STRICT_LOCK_WAIT_S = 5.0  # what must be on disk (a startup's intent, a reset) is not urgent


# --- writes ---------------------------------------------------------------------------------


def _try_write(path: Path, text: str) -> str | None:
    """Write `path`; None when it is on disk, else why not."""
    try:
        atomic_write_text(path, text)
    except StateError as exc:
        return str(exc)
    except OSError as exc:  # nothing below should let one through; a flow must not see it
        return f"cannot write {path}: {error_text(exc)}"
    unsaved.saved(path)
    return None


def _flush_locked(state_dir: Path) -> None:
    for path, text in unsaved.to_flush(state_dir).items():
        _try_write(path, text)


def flush(state_dir: Path) -> bool:
    """Write what this process keeps for `state_dir` (what is still newer than the disk);
    True when nothing is left to write."""
    if not unsaved.pending(state_dir):
        return True
    try:
        with state_write_lock(state_dir):
            _flush_locked(state_dir)
    except StateBusyError:
        return False
    return not unsaved.to_flush(state_dir)


def take_over(state_dir: Path) -> list[str]:
    """Adopt and write the copies processes that ended left under the runtime directory (the
    daemon: nobody else would), now and at every retry from then on (a root CLI run that
    ended while the daemon runs). The names adopted now; never raises for the disk."""
    with _retry_lock:
        _owned.add(state_dir)
    names = _adopt(state_dir)
    if names:
        log.warning("took over unsaved state files: %s", ", ".join(names))
    _retry_later()
    return names


def _adopt(state_dir: Path) -> list[str]:
    if not unsaved.leftovers(state_dir):
        return []
    try:
        with state_write_lock(state_dir):
            names = unsaved.adopt(state_dir)
            _flush_locked(state_dir)
    except StateError as exc:
        log.warning("cannot take over the unsaved state files now: %s", exc)
        return []
    return names


def keep_unlocked(path: Path, text: str, base: str, why: str) -> None:
    """A read-modify-write that could not have its lock (StateBusyError): kept over the disk
    file as it was read (`base`), written by the retry while that file is unchanged."""
    unsaved.keep(path, text, why, base=base)
    _retry_later()


def save_text(path: Path, text: str) -> bool:
    """Write `text` to the state file `path`, or keep it until the disk allows (logged once,
    counted). True when it is on disk. Earlier kept files of the same directory go first."""
    try:
        with state_write_lock(path.parent):
            _flush_locked(path.parent)
            if unsaved.is_held(path):  # the file there could not be read: never written over
                unsaved.keep(path, text, "the file on disk could not be read", hold=True)
                return False
            error = _try_write(path, text)
            if error is None:
                return True
            unsaved.keep(path, text, error)
    except StateBusyError as exc:
        unsaved.keep(path, text, str(exc))
    _retry_later()
    return False


def save_json(path: Path, data: Any) -> bool:
    """save_text of strict JSON (StateError for NaN or Infinity: never written, never kept)."""
    return save_text(path, _dumps(data))


def save_json_strict(path: Path, data: Any) -> None:
    """Write `path` or raise StateError (nothing kept): for what must be on disk before it is
    acted on (a startup's intent, the operator's reset). A kept copy of `path` is superseded.
    StateBusyError when another process holds the write lock."""
    text = _dumps(data)
    with state_write_lock(path.parent):
        _flush_locked(path.parent)
        error = _try_write(path, text)
    if error is not None:
        raise StateError(error)


def replace_unreadable(path: Path, text: str, error: str) -> bool:
    """`path` exists but could not be read (EIO, not corrupt): it is never written over. It
    is renamed aside and `text` saved in its place; when even the rename fails, `text` is
    kept (held: read by every process, written only once nothing is there). True on disk."""
    try:
        aside = set_aside(path, label="unreadable")
    except OSError as exc:
        log.error("%s cannot be read (%s) nor moved aside: kept apart", path, error)
        unsaved.keep(path, text, f"{error}; {error_text(exc)}", hold=True)
        return False
    log.error("%s cannot be read (%s): moved to %s, a new one is started", path, error, aside)
    return save_text(path, text)


_retry_lock = threading.Lock()
_retry_thread: threading.Thread | None = None
_retry_wake = threading.Event()
_retry_stop = threading.Event()
_owned: set[Path] = set()  # state dirs whose leftover copies this process takes over


def _retry_later() -> None:
    """One daemon thread retries every kept file until all are written (never raises)."""
    global _retry_thread  # noqa: PLW0603 - one retry thread per process
    with _retry_lock:
        if _retry_thread is not None or _retry_stop.is_set():
            return
        _retry_thread = threading.Thread(target=_retry_loop, name="hecate-state-retry")
        _retry_thread.daemon = True  # a CLI run ends without waiting for the disk
        _retry_thread.start()


def reset_for_tests() -> None:
    with _retry_lock:
        _owned.clear()


def retry_now() -> None:
    """Wake the retry thread (a test; a caller that knows the disk is back)."""
    _retry_wake.set()


def stop_retries() -> None:
    """The retry thread ends at its next wake-up; nobody waits for it (it is a daemon
    thread: a disk that hangs keeps only it)."""
    _retry_stop.set()
    _retry_wake.set()


def _retry_loop() -> None:
    global _retry_thread  # noqa: PLW0603
    while True:
        _retry_wake.wait(RETRY_INTERVAL_S)
        _retry_wake.clear()
        if not _retry_stop.is_set():
            with _retry_lock:
                owned = sorted(_owned)
            for state_dir in owned:
                with contextlib.suppress(Exception):  # tried again at the next round
                    _adopt(state_dir)
            for state_dir in unsaved.pending_dirs():
                try:
                    flush(state_dir)
                except Exception as exc:  # a retry never dies: it tries again later
                    log.debug("retrying the state files of %s: %s", state_dir, exc)
        # Decided under the lock _retry_later takes: a file kept after this check finds no
        # thread and starts one; one kept before it is seen here.
        with _retry_lock:
            if _retry_stop.is_set() or not (_owned or unsaved.pending_dirs()):
                _retry_thread = None
                return


# --- the short write lock -------------------------------------------------------------------

_process_write_locks: dict[str, threading.RLock] = {}
_registry_lock = threading.Lock()


def _process_lock(table: dict[str, threading.RLock], state_dir: Path) -> threading.RLock:
    with _registry_lock:
        return table.setdefault(unsaved.dir_key(state_dir), threading.RLock())


_held = threading.local()


@contextlib.contextmanager
def state_write_lock(state_dir: Path, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
    """The short lock around a read-modify-write: this process's, the runtime directory's
    flock, statefiles.write_lock, in that order (as flow_lock), each waited for at most
    `wait_s`. StateBusyError when another thread or process holds one (never a weaker lock
    instead); a lock file that cannot be opened (a disk that refuses it) is skipped.
    Re-entrant within a thread."""
    key = unsaved.dir_key(state_dir)
    held: set[str] = getattr(_held, "keys", None) or set()
    _held.keys = held
    if key in held:
        yield
        return
    busy = f"{state_dir}: state files locked by another hecate process"
    inner = _process_lock(_process_write_locks, state_dir)
    if not inner.acquire(timeout=wait_s):
        raise StateBusyError(f"{busy} (this one)")
    with contextlib.ExitStack() as stack:
        stack.callback(inner.release)
        try:
            fd = runtime_flock(f"write-{key}.lock", wait_s=wait_s)
        except IntentLockedError as exc:
            raise StateBusyError(str(exc)) from None
        stack.callback(release, fd)
        try:
            stack.enter_context(write_lock(state_dir, wait_s))
        except StateBusyError:
            raise StateBusyError(f"{busy} ({state_dir / '.write.lock'})") from None
        except StateError as exc:  # cannot be opened: the disk refuses it
            unsaved.note_failure(state_dir / ".write.lock", str(exc))
        held.add(key)
        stack.callback(held.discard, key)
        yield


# --- the flow lock --------------------------------------------------------------------------

_flow_locks: dict[str, threading.Lock] = {}  # not re-entrant: one flow per state dir


@contextlib.contextmanager
def flow_lock(state_dir: Path, purpose: str, *, required: bool = False) -> Iterator[None]:
    """Hold the flow lock for a flow's whole run (see the module's docstring).

    IntentLockedError when another flow holds it (in this process or another). With
    `required`, StateError when no lock file could be taken (a startup: not urgent, so never
    without the other processes kept out); without, the flow goes on, logged once."""
    with _registry_lock:
        inner = _flow_locks.setdefault(unsaved.dir_key(state_dir), threading.Lock())
    if not inner.acquire(blocking=False):
        raise IntentLockedError(f"a {purpose} cannot start: another flow runs in this process")
    with contextlib.ExitStack() as stack:
        stack.callback(inner.release)
        runtime_fd = runtime_flock(f"flow-{unsaved.dir_key(state_dir)}.lock", wait_s=0.0)
        stack.callback(release, runtime_fd)
        state_fd, why = state_flock(state_dir)
        stack.callback(release, state_fd)
        if state_fd is None:
            unsaved.note_failure(state_dir / LOCK_NAME, why)
        if state_fd is None and runtime_fd is None:
            if required:
                raise StateError(f"{why}, and no lock under {unsaved.runtime_dir()}")
            log.error("no lock file could be taken (%s); the %s goes on", why, purpose)
        info = f"pid={os.getpid()} host={socket.gethostname()} purpose={purpose}".encode()
        for fd in (runtime_fd, state_fd):
            if fd is not None:
                with contextlib.suppress(OSError):  # who holds it: a help, never a condition
                    os.ftruncate(fd, 0)
                    os.pwrite(fd, info, 0)
                stack.callback(_clear_holder, fd)
        yield


def _clear_holder(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)


def flow_running(state_dir: Path) -> str | None:
    """Who runs a flow now over `state_dir` (None: nobody seen), WITHOUT taking the flow lock:
    bookkeeping (load shedding's restore) asks before it acts and so never makes a flow's
    `flow_lock` fail. This process's flows by its in-process lock; another process's by
    /proc/locks, the kernel's list of flock holders (a holder that died is never seen)."""
    with _registry_lock:
        inner = _flow_locks.get(unsaved.dir_key(state_dir))
    if inner is not None and inner.locked():
        return "a flow runs in this process"
    paths = [
        unsaved.runtime_dir() / f"flow-{unsaved.dir_key(state_dir)}.lock",
        state_dir / LOCK_NAME,
    ]
    return flock_holder(paths)


def flock_holder(paths: list[Path], locks: Path = Path("/proc/locks")) -> str | None:
    """`pid N holds PATH` when another process holds a flock on one of `paths`; None when
    none does or when that cannot be seen (no /proc: the caller's intent check remains)."""
    ids: dict[tuple[int, int, int], Path] = {}
    for path in paths:
        with contextlib.suppress(OSError):
            info = path.stat()
            ids[(os.major(info.st_dev), os.minor(info.st_dev), info.st_ino)] = path
    try:
        lines = locks.read_text(encoding="ascii", errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) < 6 or fields[1] != "FLOCK" or not fields[4].isdigit():
            continue  # a waiter ("->"), a POSIX lock, or a line of another shape
        try:
            major, minor, inode = fields[5].split(":")
            key = (int(major, 16), int(minor, 16), int(inode))
        except ValueError:
            continue
        if key in ids and int(fields[4]) != os.getpid():
            return f"pid {fields[4]} holds {ids[key]}"
    return None
