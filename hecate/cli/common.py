"""Shared CLI pieces: exit codes, common options, output and reading the UPS.

Without typer: the read commands' lean path (hecate.cli.read_run) imports this module and never
typer. The typer option types are in hecate.cli.options.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hecate.cli.failure import note_json_printed
from hecate.cli.out import echo
from hecate.core.readings import CommError, Poll
from hecate.errors import HecateError

if TYPE_CHECKING:
    from hecate.config.model import HecateConfig
    from hecate.config.view import ConfigLike


def load(path: Path) -> HecateConfig:
    # pydantic and the config models: not for the read commands, which import this module for
    # its JSON helpers and read the config through hecate.config.view
    from hecate.config.model import load_config  # noqa: PLC0415

    return load_config(path)


def strict_json(data: Any) -> Any:
    """`data` with every non-finite float (inf, nan) turned into null: strict JSON only."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: strict_json(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [strict_json(value) for value in data]
    return data


# Wall-clock times the CLI's JSON carries as epoch seconds (documented field names scripts
# and tests read). Each also gets an ISO 8601 twin, `<name>_iso` (UTC, "Z"), for people and
# for tools that want a calendar time; the epoch field itself is unchanged.
EPOCH_KEYS = frozenset({"since", "started_at", "ended_at", "checked_at", "start_t"})
_EARLIEST_EPOCH = 1e9  # 2001: smaller numbers are offsets (a replayed trace's t), not times


def iso_time(epoch: float) -> str:
    return (
        datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def with_iso_times(data: Any) -> Any:
    """`data` with an ISO 8601 `<key>_iso` beside every epoch time in EPOCH_KEYS."""
    if isinstance(data, dict):
        out = {key: with_iso_times(value) for key, value in data.items()}
        for key, value in data.items():
            if (
                key in EPOCH_KEYS
                and isinstance(value, int | float)
                and not isinstance(value, bool)
                and math.isfinite(value)
                and _EARLIEST_EPOCH <= value < 1e11
            ):
                out.setdefault(f"{key}_iso", iso_time(float(value)))
        return out
    if isinstance(data, list | tuple):
        return [with_iso_times(value) for value in data]
    return data


def emit_json(data: Any) -> None:
    """Print strict JSON (RFC 8259: no Infinity, no NaN), times also in ISO 8601."""
    text = json.dumps(
        strict_json(with_iso_times(data)), indent=2, sort_keys=True, default=str, allow_nan=False
    )
    echo(text)
    note_json_printed()  # the command's own JSON: no error object after it


def read_ups(config: ConfigLike) -> Poll:
    """The UPS the config names, read once through the NUT port (`Ups.from_config`)."""
    # the NUT client (socket, its protocol): only for the commands that read the UPS, not for
    # `config check` or `replay`, which import this module for its JSON helpers
    from hecate.adapters.nut.port import Ups  # noqa: PLC0415

    return Ups.from_config(config).poll()


def read_ups_or_error(config: ConfigLike) -> Poll:
    """A reading, or the reason there is none (config problems included) as a CommError."""
    try:
        return read_ups(config)
    except HecateError as exc:
        return CommError(str(exc))


def now() -> float:
    return time.time()


def flat_help(command: Callable[..., object]) -> str:
    """A command's docstring as help text with each paragraph on one line (the terminal wraps
    it; rich would otherwise keep the source's line breaks inside a paragraph)."""
    import inspect  # noqa: PLC0415

    text = inspect.getdoc(command) or ""
    return "\n\n".join(" ".join(part.split()) for part in text.split("\n\n"))
