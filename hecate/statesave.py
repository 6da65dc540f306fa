"""Protection before bookkeeping: state writes and locks that never stop a flow.

- `save_json` writes a state file atomically (hecate.statefiles); when the disk refuses (full,
  read-only, deleted, EIO) the content is kept (hecate.unsaved: memory and the runtime
  directory), logged once, counted, and written at the next write, at the end of the flow, or
  by a retry every RETRY_INTERVAL_S while anything is kept. A refused write costs a few failed
  system calls: no stage waits for it.
- `state_write_lock` is statefiles.write_lock when it can be taken; otherwise a lock under the
  runtime directory, else one inside this process: a read-modify-write never fails for it.
- `flow_lock` is the flow's exclusive lock: held in this process AND, wherever each can be
  taken, as a flock under the runtime directory and as `state_dir/hecate.lock`. Every flow
  takes all it can, the runtime one first, so two Hecate processes never run flows at once
  while either file is shared. A shutdown runs with whatever could be taken; a startup
  (`required=True`) needs one lock file.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hecate import unsaved
from hecate.errors import IntentLockedError, StateError
from hecate.statefiles import LOCK_NAME, _dumps, atomic_write_text, write_lock

log = logging.getLogger("hecate.statefiles")

RETRY_INTERVAL_S = 30.0


def _error_text(exc: BaseException) -> str:
    return exc.strerror or str(exc) if isinstance(exc, OSError) else str(exc)


# --- writes ---------------------------------------------------------------------------------


def _try_write(path: Path, text: str) -> str | None:
    """Write `path`; None when it is on disk, else why not."""
    try:
        atomic_write_text(path, text)
    except StateError as exc:
        return str(exc)
    except OSError as exc:  # nothing below should let one through; a flow must not see it
        return f"cannot write {path}: {_error_text(exc)}"
    unsaved.saved(path)
    return None


def flush(state_dir: Path) -> bool:
    """Write what this process keeps for `state_dir`; True when nothing is left kept."""
    if not unsaved.pending(state_dir):
        return True
    with state_write_lock(state_dir):
        left = False
        for path, text in unsaved.pending(state_dir).items():
            left = _try_write(path, text) is not None or left
    return not left


def save_text(path: Path, text: str) -> bool:
    """Write `text` to the state file `path`, or keep it until the disk allows (logged once,
    counted). True when it is on disk. Earlier kept files of the same directory go first."""
    with state_write_lock(path.parent):
        flush(path.parent)
        error = _try_write(path, text)
        if error is None:
            return True
        unsaved.keep(path, text, error)
    _retry_later()
    return False


def save_json(path: Path, data: Any) -> bool:
    """save_text of strict JSON (StateError for NaN or Infinity: never written, never kept)."""
    return save_text(path, _dumps(data))


def save_json_strict(path: Path, data: Any) -> None:
    """Write `path` or raise StateError (nothing kept): for what must be on disk before it is
    acted on (a startup's intent, the operator's reset). A kept copy of `path` is superseded."""
    text = _dumps(data)
    with state_write_lock(path.parent):
        flush(path.parent)
        error = _try_write(path, text)
    if error is not None:
        raise StateError(error)


_retry_lock = threading.Lock()
_retry_thread: threading.Thread | None = None


def _retry_later() -> None:
    """One daemon thread retries every kept file until all are written (never raises)."""
    global _retry_thread  # noqa: PLW0603 - one retry thread per process
    with _retry_lock:
        if _retry_thread is not None and _retry_thread.is_alive():
            return
        _retry_thread = threading.Thread(target=_retry_loop, name="hecate-state-retry")
        _retry_thread.daemon = True  # a CLI run ends without waiting for the disk
        _retry_thread.start()


def _retry_loop() -> None:
    while True:
        time.sleep(RETRY_INTERVAL_S)
        dirs = unsaved.pending_dirs()
        if not dirs:
            return
        for state_dir in dirs:
            try:
                flush(state_dir)
            except Exception as exc:  # a retry never dies: it tries again later
                log.debug("retrying the state files of %s: %s", state_dir, exc)


# --- the short write lock -------------------------------------------------------------------

_process_write_locks: dict[str, threading.RLock] = {}
_registry_lock = threading.Lock()


def _process_lock(table: dict[str, threading.RLock], state_dir: Path) -> threading.RLock:
    with _registry_lock:
        return table.setdefault(unsaved.dir_key(state_dir), threading.RLock())


def _runtime_flock(name: str, *, wait_s: float) -> int | None:
    """An fd holding an exclusive flock on runtime_dir/name; None when the file cannot be
    had. IntentLockedError when another process holds it past `wait_s`."""
    path = unsaved.runtime_dir() / name
    try:
        path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return None
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
            time.sleep(0.05)
        except OSError:
            os.close(fd)
            return None


def _release(fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


_fallback_held = threading.local()


@contextlib.contextmanager
def state_write_lock(state_dir: Path, timeout_s: float = 10.0) -> Iterator[None]:
    """statefiles.write_lock, or (when the state directory refuses it) the same lock under
    the runtime directory, or this process's: a read-modify-write always gets a lock.
    Re-entrant within a thread, as write_lock is."""
    key = unsaved.dir_key(state_dir)
    held: set[str] = getattr(_fallback_held, "keys", None) or set()
    _fallback_held.keys = held
    if key in held:
        yield
        return
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(write_lock(state_dir, timeout_s))
        except StateError as exc:
            unsaved.note_failure(state_dir / ".write.lock", str(exc))
            stack.enter_context(_process_lock(_process_write_locks, state_dir))
            try:
                fd = _runtime_flock(f"write-{key}.lock", wait_s=timeout_s)
            except IntentLockedError as locked:
                raise StateError(f"{state_dir}: state files stayed locked ({locked})") from None
            stack.callback(_release, fd)
            held.add(key)
            stack.callback(held.discard, key)
        yield


# --- the flow lock --------------------------------------------------------------------------

_flow_locks: dict[str, threading.Lock] = {}  # not re-entrant: one flow per state dir


def _state_flock(state_dir: Path) -> tuple[int | None, str]:
    """An fd holding state_dir/hecate.lock (opened read-only when it cannot be opened for
    writing: a read-only disk can still be locked); None and why when it cannot be had.
    IntentLockedError names the holder when another process has it."""
    lock_path = state_dir / LOCK_NAME
    fd: int | None = None
    why = ""
    for flags in (os.O_RDWR | os.O_CREAT, os.O_RDONLY):
        try:
            fd = os.open(lock_path, flags | os.O_CLOEXEC, 0o640)
            break
        except OSError as exc:
            why = why or _error_text(exc)
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
        return None, f"cannot lock {lock_path}: {_error_text(exc)}"
    return fd, ""


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
        runtime_fd = _runtime_flock(f"flow-{unsaved.dir_key(state_dir)}.lock", wait_s=0.0)
        stack.callback(_release, runtime_fd)
        state_fd, why = _state_flock(state_dir)
        stack.callback(_release, state_fd)
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
