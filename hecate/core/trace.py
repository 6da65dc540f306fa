"""UPS traces: JSON lines of polls, as recorded by the daemon and read by `hecate replay`.

A line is `{"t": 12.0, "mono": 12.0, "status": "OB DISCHRG", "runtime": 900, "charge": 71}`
(load optional) or `{"t": 14.0, "mono": 14.0, "error": "connection refused"}`.

`t` is wall-clock seconds, `mono` monotonic seconds (both counted from the trace's first poll in
the daemon's traces). The policy measures every interval on `mono`; `t` is for people. A wall
clock can step (NTP after a cold boot), so `t` may jump either way; `mono` must never go
backwards. `mono` is optional for hand-written traces: without it `t` is the clock and must not
go backwards. A trace has `mono` on every line or on none.

Readings go through `hecate.core.readings.parse_reading`, the parser the NUT adapter uses.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hecate.core.readings import (
    CHARGE_VAR,
    LOAD_VAR,
    RUNTIME_VAR,
    STATUS_VAR,
    CommError,
    Poll,
    parse_number,
    parse_reading,
)
from hecate.errors import TraceError


@dataclass(frozen=True)
class TracePoint:
    t: float  # wall-clock seconds
    poll: Poll
    mono: float | None = None  # monotonic seconds; None in hand-written traces without it

    @property
    def clock(self) -> float:
        """The time the policy measures intervals on: `mono`, else `t`."""
        return self.mono if self.mono is not None else self.t


def parse_trace_lines(lines: Iterable[str], source: str = "<trace>") -> list[TracePoint]:
    points: list[TracePoint] = []
    last: TracePoint | None = None
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
        if last is not None:
            _check_order(last, point, where)
        last = point
        points.append(point)
    if not points:
        raise TraceError(f"{source}: the trace holds no polls")
    return points


def _check_order(last: TracePoint, point: TracePoint, where: str) -> None:
    if (last.mono is None) != (point.mono is None):
        raise TraceError(f"{where}: 'mono' must be on every line of a trace or on none")
    if point.mono is not None and last.mono is not None:
        if point.mono < last.mono:
            raise TraceError(f"{where}: mono={point.mono} goes back in time (previous {last.mono})")
    elif point.t < last.t:
        raise TraceError(
            f"{where}: t={point.t} goes back in time (previous {last.t}); traces whose wall"
            " clock steps need a 'mono' field"
        )


def _signed(raw: object) -> float | None:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_point(data: Any, where: str) -> TracePoint:
    if not isinstance(data, dict):
        raise TraceError(f"{where}: each line must be a JSON object")
    if "t" not in data:
        raise TraceError(f"{where}: missing 't' (seconds)")
    mono: float | None = None
    if "mono" in data:
        mono = parse_number(data["mono"])
        if mono is None:
            raise TraceError(f"{where}: 'mono' must be a non-negative number")
        # With a monotonic clock, a wall clock stepped back before the first poll is fine.
        t = _signed(data["t"])
    else:
        t = parse_number(data["t"])
    if t is None:
        raise TraceError(f"{where}: 't' must be a non-negative number")
    if "error" in data:
        error = CommError(str(data["error"]), str(data.get("kind", "unreachable")))
        return TracePoint(t, error, mono)
    if "status" not in data:
        raise TraceError(f"{where}: needs 'status' or 'error'")
    reading = parse_reading(
        {
            STATUS_VAR: data["status"],
            RUNTIME_VAR: data.get("runtime"),
            CHARGE_VAR: data.get("charge"),
            LOAD_VAR: data.get("load"),
        },
        keep_extra=False,
    )
    return TracePoint(t, reading, mono)


# The traces shipped with Hecate (package data in hecate/data, one level up from hecate/core/),
# replayed by name: `hecate replay blip`.
BUNDLED_TRACES_DIR = Path(__file__).resolve().parents[1] / "data" / "traces"
TRACE_SUFFIX = ".jsonl"


@dataclass(frozen=True)
class BundledTrace:
    name: str  # the file name without .jsonl
    path: Path
    about: str  # the trace's first `#` comment line ("" when it has none)


def bundled_traces(directory: Path = BUNDLED_TRACES_DIR) -> list[BundledTrace]:
    """The shipped traces, by name (sorted)."""
    found = []
    for path in sorted(directory.glob(f"*{TRACE_SUFFIX}")):
        about = ""
        try:
            with path.open(encoding="utf-8") as handle:
                first = handle.readline().strip()
        except OSError:
            continue
        if first.startswith("#"):
            about = first.lstrip("#").strip()
        found.append(BundledTrace(path.name.removesuffix(TRACE_SUFFIX), path, about))
    return found


def find_trace(given: str, directory: Path = BUNDLED_TRACES_DIR) -> Path:
    """The trace `given` names: a file that exists, else a shipped trace of that name (with or
    without `.jsonl`). A file wins over a shipped trace of the same name, so a trace of one's
    own is never shadowed."""
    path = Path(given)
    if path.is_file():  # a directory of that name does not hide a shipped trace
        return path
    if "/" not in given:
        names = {t.name: t.path for t in bundled_traces(directory)}
        found = names.get(given.removesuffix(TRACE_SUFFIX))
        if found is not None:
            return found
    raise TraceError(
        f"{given}: no such file, and no shipped trace of that name (shipped: "
        f"{', '.join(t.name for t in bundled_traces(directory)) or 'none'}; "
        "`hecate replay --list` describes them)"
    )


def load_trace(path: Path) -> list[TracePoint]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TraceError(f"{path}: cannot read ({exc.strerror})") from None
    return parse_trace_lines(text.splitlines(), str(path))


def encode_point(t: float, poll: Poll, mono: float | None = None) -> str:
    """One trace line for a poll (the daemon's recorder uses this, always with `mono`)."""
    data: dict[str, Any] = {"t": round(t, 3)}
    if mono is not None:
        data["mono"] = round(mono, 3)
    if isinstance(poll, CommError):
        data.update(error=poll.message, kind=poll.kind)
        return json.dumps(data)
    data["status"] = " ".join(sorted(poll.status))
    for key, value in (
        ("runtime", poll.runtime_s),
        ("charge", poll.charge_pct),
        ("load", poll.load_pct),
    ):
        if value is not None:
            data[key] = value
    return json.dumps(data)
