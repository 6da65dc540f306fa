"""UPS traces: JSON lines of polls, as recorded by the daemon and read by `hecate replay`.

A line is `{"t": 12.0, "status": "OB DISCHRG", "runtime": 900, "charge": 71}` (load optional) or
`{"t": 14.0, "error": "connection refused"}`; `t` is in seconds and must not go backwards.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hecate.errors import TraceError
from hecate.readings import CommError, Poll, UpsReading, parse_number, parse_status


@dataclass(frozen=True)
class TracePoint:
    t: float
    poll: Poll


def parse_trace_lines(lines: Iterable[str], source: str = "<trace>") -> list[TracePoint]:
    points: list[TracePoint] = []
    last_t: float | None = None
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        where = f"{source}:{number}"
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TraceError(f"{where}: not JSON ({exc.msg})") from None
        point = parse_point(data, where)
        if last_t is not None and point.t < last_t:
            raise TraceError(f"{where}: t={point.t} goes back in time (previous {last_t})")
        last_t = point.t
        points.append(point)
    if not points:
        raise TraceError(f"{source}: the trace holds no polls")
    return points


def parse_point(data: Any, where: str) -> TracePoint:
    if not isinstance(data, dict):
        raise TraceError(f"{where}: each line must be a JSON object")
    if "t" not in data:
        raise TraceError(f"{where}: missing 't' (seconds)")
    t = parse_number(data["t"])
    if t is None:
        raise TraceError(f"{where}: 't' must be a non-negative number")
    if "error" in data:
        return TracePoint(t, CommError(str(data["error"]), str(data.get("kind", "unreachable"))))
    if "status" not in data:
        raise TraceError(f"{where}: needs 'status' or 'error'")
    reading = UpsReading(
        status=parse_status(str(data["status"])),
        runtime_s=parse_number(data.get("runtime")),
        charge_pct=parse_number(data.get("charge")),
        load_pct=parse_number(data.get("load")),
    )
    return TracePoint(t, reading)


def load_trace(path: Path) -> list[TracePoint]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TraceError(f"{path}: cannot read ({exc.strerror})") from None
    return parse_trace_lines(text.splitlines(), str(path))


def encode_point(t: float, poll: Poll) -> str:
    """One trace line for a poll (the daemon's recorder uses this)."""
    if isinstance(poll, CommError):
        return json.dumps({"t": round(t, 3), "error": poll.message, "kind": poll.kind})
    data: dict[str, Any] = {"t": round(t, 3), "status": " ".join(sorted(poll.status))}
    for key, value in (
        ("runtime", poll.runtime_s),
        ("charge", poll.charge_pct),
        ("load", poll.load_pct),
    ):
        if value is not None:
            data[key] = value
    return json.dumps(data)
