"""The drill history file, `state_dir/drills.json`: read by the drills and by the metrics.

It lives outside `hecate.drills` so that the metrics (imported by the daemon) do not pull in the
drills, which import the daemon.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from hecate.adapters.statedir.files import load_state
from hecate.errors import StateCorruptError

DRILLS_FILE = "drills.json"

# The drills Hecate ships (hecate.drills.catalog defines them; a unit test keeps both in step).
# Metrics create their counters at 0 for these names.
KNOWN_DRILLS: tuple[str, ...] = (
    "flux-gitea-deadlock",
    "foundation-recovery",
    "reconciliation-resume",
    "power-outage",
    "second-outage-during-startup",
    "power-race",
    "clock-skew",
    "storage-scaled-to-zero",
    "probe-failing",
    "partial-feed-loss",
    "shed-and-restore",
    "etcd-member-lost",
    "etcd-quorum-lost",
)


def _decode_history(data: object) -> list[dict[str, Any]]:
    if not isinstance(data, dict) or not isinstance(data.get("drills"), list):
        raise StateCorruptError("expected an object with a 'drills' list")
    return [d for d in data["drills"] if isinstance(d, dict)]


def load_history(state_dir: Path) -> list[dict[str, Any]]:
    """The drill history; StateCorruptError (the file set aside) when it cannot be read."""
    return load_state(state_dir / DRILLS_FILE, _decode_history) or []


def last_runs(history: list[dict[str, Any]]) -> dict[str, float]:
    """Each drill's latest start time (unix seconds) in the history; entries without a usable
    name or time are left out."""
    found: dict[str, float] = {}
    for entry in history:
        name, started = entry.get("drill"), entry.get("started_at")
        if not isinstance(name, str) or isinstance(started, bool):
            continue
        if isinstance(started, int | float) and math.isfinite(started):
            found[name] = max(found.get(name, float(started)), float(started))
    return found
