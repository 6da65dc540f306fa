"""state_dir/startup-awaits.json: the peers whose UPS the coordinator's pending startup waits for.

Written (atomically; kept and retried when the disk refuses it) by the daemon when a peer's
trigger shuts the cluster down and when that peer's UPS is back; read at the daemon's start
(a restart keeps waiting) and by `hecate status`. An unreadable file fails closed: the daemon
then waits for every instance in coordination.peer_hosts (named "@host:port"), since it
cannot know whose trigger it was.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from hecate.adapters.statedir.files import read_json
from hecate.adapters.statedir.save import save_json
from hecate.errors import HecateError, StateError

AWAITS_FILE = "startup-awaits.json"
log = logging.getLogger("hecate.daemon")


def load_awaiting(state_dir: Path, *, move: bool = True) -> frozenset[str] | None:
    """The peers' names; None when the file is unreadable (absent is "nobody")."""
    try:
        data = read_json(state_dir / AWAITS_FILE, move=move)
    except StateError as exc:
        log.error("%s", exc)
        return None
    if data is None:
        return frozenset()
    peers = data.get("peers") if isinstance(data, dict) else None
    if not isinstance(peers, list) or not all(isinstance(p, str) and p for p in peers):
        log.error('%s: expected {"peers": [names]}', state_dir / AWAITS_FILE)
        return None
    return frozenset(peers)


def awaiting_at_start(state_dir: Path, peer_hosts: Iterable[object]) -> frozenset[str]:
    """What a starting daemon waits for: the recorded peers, or (unreadable) all of them."""
    recorded = load_awaiting(state_dir)
    if recorded is not None:
        return recorded
    everyone = frozenset(f"@{address}" for address in peer_hosts)
    if everyone:
        log.error("the startup waits for the UPS of every peer: %s", ", ".join(sorted(everyone)))
    # Written back: the unreadable file was set aside, and every other startup (the CLI, the
    # boot unit, through the peer_ups guard) must wait for the same peers, not for nobody.
    try:
        save_awaiting(state_dir, everyone)
    except HecateError as exc:
        log.error("cannot record the peers the startup waits for: %s", exc)
    return everyone


def save_awaiting(state_dir: Path, names: frozenset[str]) -> None:
    """Written, or kept until the disk allows (hecate.adapters.statedir.save: counted, retried)."""
    save_json(state_dir / AWAITS_FILE, {"peers": sorted(names)})
