"""state_dir/shed.json: what load shedding changed (issue 28), until it is restored.

Written atomically under the state dir's write lock BEFORE the changes it names are made
(a shed that cannot record refuses to change anything), rewritten when the shed is complete
or a restore leaves something behind, removed when everything is restored. Read at the
daemon's start (a restart restores, or carries a shed on), by the startup's `shed_restore`
stage and by `hecate status` (which never moves anything).

A record that cannot be read is set aside (`shed.json.corrupt-TIMESTAMP`) and replaced by a
marker (hecate.core.shed.ShedBlocked): nothing is shed or restored automatically until an
operator restores by hand from the set-aside file and removes `shed.json` (fail closed: a
new shed over an unknown one would record the shed workloads at 0 and never restore them).
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path

from hecate.adapters.statedir.files import load_state
from hecate.adapters.statedir.save import save_json_strict, state_write_lock
from hecate.core.shed import ShedBlocked, ShedRecord, parse_shed_file
from hecate.errors import StateCorruptError, StateError

SHED_FILE = "shed.json"
log = logging.getLogger("hecate.shed")


def load_shed(
    state_dir: Path, *, move: bool = True, now: float | None = None
) -> ShedRecord | ShedBlocked | None:
    """The record, the marker a corrupt one left, or None (nothing shed). A corrupt record
    (moved aside unless `move` is False) becomes a marker, written in its place when moved.
    StateError when the file cannot be read at all (a failing disk: unknown, not nothing)."""
    path = state_dir / SHED_FILE
    try:
        return load_state(path, lambda data: parse_shed_file(data, str(path)), move=move)
    except StateCorruptError as exc:
        kept = str(exc.kept) if exc.kept is not None else f"{path} (left in place)"
        blocked = ShedBlocked(time.time() if now is None else now, kept, exc.reason or str(exc))
    if move:
        log.error(
            "the shed record was unreadable (%s): kept as %s; nothing is shed or restored "
            "automatically until it is restored by hand and %s removed",
            blocked.problem,
            blocked.kept,
            path,
        )
        with contextlib.suppress(StateError):  # the marker is in memory: the daemon holds it
            save_json_strict(path, blocked.to_json())
    return blocked


def save_shed(state_dir: Path, record: ShedRecord) -> None:
    """On disk, or StateError: nothing is changed that is not recorded first."""
    save_json_strict(state_dir / SHED_FILE, record.to_json())


def clear_shed(state_dir: Path) -> None:
    """Everything is restored: the record goes (StateError when the disk refuses)."""
    try:
        with state_write_lock(state_dir):
            (state_dir / SHED_FILE).unlink(missing_ok=True)
    except OSError as exc:
        raise StateError(f"cannot remove {state_dir / SHED_FILE}: {exc.strerror}") from None
