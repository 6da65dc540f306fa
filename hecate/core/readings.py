"""Typed UPS readings: what the NUT adapter and traces produce and the decision core consumes.

`parse_reading` is the one parser of raw readings: the NUT adapter (`hecate.adapters.nut`) and the
trace reader (`hecate.core.trace`) both call it, so a replay sees exactly what the daemon saw.
Nothing downstream parses again.

Numbers are made sane at this boundary, each rule from real device dumps (NUT's DDL): charges
over 100, runtime sentinels, loads of 1e126, values that are not UTF-8. The rules and why are
written once, in docs/design/policy.md ("Readings are made sane once"); the functions below
(`sane_charge`, `sane_runtime`, `sane_load`, `parse_number`) implement them.

`ups.status` flags are classified from NUT's documentation (the developer guide's "status data"
and docs/new-names): see `STATUS_FLAGS` and `UpsReading.power_source`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Final


class PowerSource(Enum):
    """Where the load's power comes from, as far as the status flags say."""

    LINE = "line"  # mains present (OL, or a flag that needs mains: CHRG, TRIM, BOOST, BYPASS)
    BATTERY = "battery"  # OB: the load runs from the battery
    UNKNOWN = "unknown"  # the flags say nothing about it (OFF, ALARM, RB, HB, ... alone)
    NO_DATA = "no_data"  # empty status or WAIT: the driver has no data yet; like silence


# Every flag NUT documents, what it means, and what it says about the power source:
# "line" = implies mains is present; "battery" = the load is on battery; "none" = says nothing.
STATUS_FLAGS: Final[Mapping[str, tuple[str, str]]] = {
    "OL": ("on line (mains present)", "line"),
    "OB": ("on battery", "battery"),
    "LB": ("low battery (critical on battery)", "none"),
    "HB": ("high battery", "none"),
    "RB": ("battery needs replacing", "none"),
    "CHRG": ("battery charging (needs mains)", "line"),
    "DISCHRG": ("battery discharging (also during a test or calibration on line)", "none"),
    "BYPASS": ("on bypass: mains feeds the load directly", "line"),
    "CAL": ("runtime calibration: battery drained on purpose, mains present", "none"),
    "OFF": ("UPS output off (offline), not a loss of contact", "none"),
    "OVER": ("overloaded", "none"),
    "TRIM": ("trimming high mains voltage (AVR)", "line"),
    "BOOST": ("boosting low mains voltage (AVR)", "line"),
    "FSD": ("forced shutdown: a primary orders every client down now", "none"),
    "ALARM": ("an alarm is active (see ups.alarm)", "none"),
    "WAIT": ("the driver waits for data (no reading yet)", "none"),
    "TEST": ("a battery test runs", "none"),
    "HE": ("high-efficiency (ECO) mode, mains present", "line"),
    "ECO": ("ECO mode, mains present", "line"),
    "NOCOMM": ("the driver cannot talk to the UPS", "none"),
}

MAX_CHARGE_OVERSHOOT: Final = 110.0
MAX_RUNTIME_S: Final = 7 * 24 * 3600.0
RUNTIME_SENTINELS: Final = frozenset({0.0, 65534.0, 65535.0})
MAX_LOAD_PCT: Final = 1000.0

STATUS_VAR: Final = "ups.status"
RUNTIME_VAR: Final = "battery.runtime"
CHARGE_VAR: Final = "battery.charge"
LOAD_VAR: Final = "ups.load"
PARSED_VARS: Final = frozenset({STATUS_VAR, RUNTIME_VAR, CHARGE_VAR, LOAD_VAR})


@dataclass(frozen=True)
class UpsReading:
    """One successful poll of a UPS.

    `status` holds NUT's `ups.status` flags (OL, OB, LB, FSD, CHRG, DISCHRG, ...).
    Numeric values are None when the UPS does not report them or reports garbage.
    """

    status: frozenset[str]
    runtime_s: float | None = None
    charge_pct: float | None = None
    load_pct: float | None = None
    extra: dict[str, str] = field(default_factory=dict, compare=False)
    # The flags in the order upsd sent them ("OB DISCHRG"), for people: `status` is a set.
    flag_order: tuple[str, ...] = field(default=(), compare=False, repr=False)

    @property
    def status_text(self) -> str:
        """The flags as NUT shows them: upsd's order, else the order NUT documents them in."""
        if self.flag_order:
            return " ".join(self.flag_order)
        known = [flag for flag in STATUS_FLAGS if flag in self.status]
        return " ".join([*known, *sorted(self.status - set(known))])

    @property
    def power_source(self) -> PowerSource:
        """OB means battery (even with OL: a contradiction is resolved towards protection);
        OL, or without OB a flag that needs mains, means line; an empty status or WAIT means
        no data; anything else says nothing."""
        if "OB" in self.status:
            return PowerSource.BATTERY
        if any(STATUS_FLAGS.get(flag, ("", "none"))[1] == "line" for flag in self.status):
            return PowerSource.LINE
        if not self.status or "WAIT" in self.status or "NOCOMM" in self.status:
            return PowerSource.NO_DATA
        return PowerSource.UNKNOWN

    @property
    def on_battery(self) -> bool:
        return "OB" in self.status

    @property
    def on_mains(self) -> bool:
        return self.power_source is PowerSource.LINE

    @property
    def low_battery(self) -> bool:
        return "LB" in self.status

    @property
    def forced_shutdown(self) -> bool:
        return "FSD" in self.status

    @property
    def calibrating(self) -> bool:
        return "CAL" in self.status


@dataclass(frozen=True)
class CommError:
    """A poll that failed: the UPS (or upsd) could not be read."""

    message: str
    kind: str = "unreachable"  # unreachable | driver_down | auth | timeout


Poll = UpsReading | CommError


def parse_status(raw: str) -> frozenset[str]:
    """Split NUT's space-separated `ups.status` into upper-case flags."""
    return frozenset(flag.upper() for flag in raw.split() if flag)


def status_order(raw: str) -> tuple[str, ...]:
    """`parse_status`'s flags in the order they came, each once."""
    return tuple(dict.fromkeys(flag.upper() for flag in raw.split() if flag))


def parse_number(raw: object) -> float | None:
    """A NUT numeric value, or None when missing or garbage (NaN, negative, non-numeric, bytes
    that are not UTF-8)."""
    if raw is None or isinstance(raw, bool):
        return None
    if isinstance(raw, bytes):
        raw = _text(raw)
        if raw is None:
            return None
    try:
        value = float(str(raw).strip())
    except ValueError:
        return None
    if not math.isfinite(value) or value < 0:  # NaN, inf or impossible negative readings
        return None
    return value


def sane_charge(value: float | None) -> float | None:
    """A charge percentage: a small overshoot reads as 100, larger values as unknown."""
    if value is None or value > MAX_CHARGE_OVERSHOOT:
        return None
    return min(value, 100.0)


def sane_runtime(value: float | None) -> float | None:
    """A runtime in seconds: sentinels (0, 65534, 65535) and values over 7 days are unknown."""
    if value is None or value in RUNTIME_SENTINELS or value > MAX_RUNTIME_S:
        return None
    return value


def sane_load(value: float | None) -> float | None:
    return None if value is None or value > MAX_LOAD_PCT else value


def _text(raw: object) -> str | None:
    """A value as text; None when it is missing or bytes that are not UTF-8 (unknown)."""
    if raw is None:
        return None
    if isinstance(raw, bytes):
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return str(raw)


def parse_reading(values: Mapping[str, object], *, keep_extra: bool = True) -> UpsReading:
    """The one parser: NUT variables (`ups.status`, `battery.runtime`, `battery.charge`,
    `ups.load`; values as text, bytes or numbers) to an UpsReading. Never raises on odd values.

    Every other variable lands in `extra` (as text) when `keep_extra` is true. A value in bytes
    that are not UTF-8 is unknown: as if the variable were absent (see the module doc).
    """
    extra: dict[str, str] = {}
    if keep_extra:
        for key, value in values.items():
            name, text = _text(key), _text(value)
            if name is not None and text is not None and name not in PARSED_VARS:
                extra[name] = text
    status_raw = _text(values.get(STATUS_VAR)) or ""
    return UpsReading(
        status=parse_status(status_raw),
        flag_order=status_order(status_raw),
        runtime_s=sane_runtime(parse_number(values.get(RUNTIME_VAR))),
        charge_pct=sane_charge(parse_number(values.get(CHARGE_VAR))),
        load_pct=sane_load(parse_number(values.get(LOAD_VAR))),
        extra=extra,
    )
