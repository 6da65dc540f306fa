"""state_dir/startup-awaits.json: the peers whose UPS the coordinator's pending startup waits for.

Written (atomically) by the daemon when a peer's trigger shuts the cluster down and when that
peer's UPS is back; read at the daemon's start (a restart keeps waiting) and by `hecate status`.
An unreadable file is an error in the log and means "wait for nobody": the startup guards
and the own UPS gate still apply, and the operator is told.
"""

from __future__ import annotations

import logging
from pathlib import Path

from hecate.errors import StateError
from hecate.statefiles import atomic_write_json, read_json

AWAITS_FILE = "startup-awaits.json"
log = logging.getLogger("hecate.daemon")


def load_awaiting(state_dir: Path, *, move: bool = True) -> frozenset[str]:
    try:
        data = read_json(state_dir / AWAITS_FILE, move=move)
    except StateError as exc:
        log.error("%s; the startup waits for no peer's UPS", exc)
        return frozenset()
    peers = data.get("peers") if isinstance(data, dict) else None
    if not isinstance(peers, list):
        return frozenset()
    return frozenset(p for p in peers if isinstance(p, str) and p)


def save_awaiting(state_dir: Path, names: frozenset[str]) -> None:
    atomic_write_json(state_dir / AWAITS_FILE, {"peers": sorted(names)})
