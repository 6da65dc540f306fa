"""Typed UPS readings: what the NUT adapter returns and the decision core consumes."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


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

    @property
    def on_battery(self) -> bool:
        return "OB" in self.status

    @property
    def on_mains(self) -> bool:
        return "OL" in self.status and "OB" not in self.status

    @property
    def low_battery(self) -> bool:
        return "LB" in self.status

    @property
    def forced_shutdown(self) -> bool:
        return "FSD" in self.status


@dataclass(frozen=True)
class CommError:
    """A poll that failed: the UPS (or upsd) could not be read."""

    message: str
    kind: str = "unreachable"  # unreachable | driver_down | auth | timeout


Poll = UpsReading | CommError


def parse_status(raw: str) -> frozenset[str]:
    """Split NUT's space-separated `ups.status` into upper-case flags."""
    return frozenset(flag.upper() for flag in raw.split() if flag)


def parse_number(raw: object) -> float | None:
    """A NUT numeric value, or None when missing or garbage (NaN, negative, non-numeric)."""
    if raw is None:
        return None
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", "replace")
    try:
        value = float(str(raw).strip())
    except ValueError:
        return None
    if not math.isfinite(value) or value < 0:  # NaN, inf or impossible negative readings
        return None
    return value
