"""Asking the other Hecate instances: the port, and what an answer means once parsed.

Every instance serves its intent on the signed `/v1/intent` endpoint (hecate.adapters.peers.http).
An answer is parsed here once, at the boundary, into a `PeerIntent`; nothing downstream looks at the
raw JSON again. A malformed answer becomes an intent whose state is "unknown", which the startup
guard treats as busy (fail closed). The HTTP adapter is `hecate.adapters.peers.http.HttpPeers`;
tests pass any object with an `intents()` method.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class PeerUps:
    """What a peer says about its own UPS: back on mains and stable (its own startup gate is
    met), or what it still waits for."""

    name: str
    back: bool
    detail: str


@dataclass(frozen=True)
class PeerIntent:
    address: str  # as written in coordination.peer_hosts
    name: str  # the instance's coordination.peer_name (or host name); "" if it did not say
    state: str  # its intent state, or "unknown"
    since: float | None
    running: str | None  # the flow it runs right now ("startup", "shutdown")
    ups: PeerUps | None  # None: an older Hecate, or it did not say


class Peers(Protocol):
    """The instances in coordination.peer_hosts that answered (unreachable ones are left out:
    they may be down, and a down instance starts nothing)."""

    def intents(self) -> list[PeerIntent]: ...


class NoPeers:
    def intents(self) -> list[PeerIntent]:
        return []


def _text(data: Mapping[str, object], key: str, limit: int = 1000) -> str | None:
    value = data.get(key)
    return value[:limit] if isinstance(value, str) else None


def _ups(value: object) -> PeerUps | None:
    if not isinstance(value, Mapping):
        return None
    back = value.get("back")
    return PeerUps(
        name=_text(value, "name", 253) or "",
        back=back is True,  # anything but a real true is "not back"
        detail=_text(value, "detail") or "",
    )


def parse_peer_intent(address: str, data: Mapping[str, object]) -> PeerIntent:
    """The typed answer; anything malformed reads as state "unknown" (busy for the guard)."""
    state = _text(data, "state", 64) or "unknown"
    since_raw = data.get("since")
    since = None
    if isinstance(since_raw, int | float) and not isinstance(since_raw, bool):
        since = float(since_raw) if math.isfinite(since_raw) else None
    return PeerIntent(
        address=address,
        name=_text(data, "name", 253) or "",
        state=state,
        since=since,
        running=_text(data, "running", 64) or None,
        ups=_ups(data.get("ups")),
    )
