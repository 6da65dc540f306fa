"""Recorded outage traces under `state_dir/traces/` (written by the daemon's TraceRecorder)."""

from __future__ import annotations

import logging
from pathlib import Path

from hecate.core.battery import BatteryTruth, battery_truth
from hecate.core.trace import TracePoint, load_trace
from hecate.errors import StateError, TraceError

log = logging.getLogger("hecate.outages")
TRACES_DIR = "traces"


def trace_paths(state_dir: Path) -> list[Path]:
    """Recorded outages, oldest first (the names sort by their UTC start)."""
    return sorted((state_dir / TRACES_DIR).glob("outage-*.jsonl"))


def outage_id(path: Path) -> str:
    return path.stem.removeprefix("outage-")


def find_outage(state_dir: Path, wanted: str | None) -> Path:
    """The outage named `wanted` (its id, a unique prefix, or a path); the last one for None."""
    paths = trace_paths(state_dir)
    if wanted is None:
        if not paths:
            raise StateError(f"no recorded outage under {state_dir / TRACES_DIR}")
        return paths[-1]
    as_path = Path(wanted)
    if as_path.suffix == ".jsonl" and as_path.exists():
        return as_path
    matches = [p for p in paths if outage_id(p).startswith(wanted)]
    if len(matches) != 1:
        known = ", ".join(outage_id(p) for p in paths[-5:]) or "none"
        how = "matches several" if matches else "matches none"
        raise StateError(f"outage {wanted!r} {how}; recent: {known} (`hecate outage list`)")
    return matches[0]


def load_recorded(state_dir: Path) -> list[tuple[str, list[TracePoint]]]:
    """Every readable recorded trace; a damaged one is skipped with a warning."""
    traces: list[tuple[str, list[TracePoint]]] = []
    for path in trace_paths(state_dir):
        try:
            traces.append((outage_id(path), load_trace(path)))
        except TraceError as exc:
            log.warning("outage trace skipped: %s", exc)
    return traces


def load_battery_truth(state_dir: Path) -> BatteryTruth:
    return battery_truth(load_recorded(state_dir))
