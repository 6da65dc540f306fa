"""The policy's values: its parameters (and how they follow from the config), what it remembers
between polls, and the events it emits. Pure."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hecate.config.view import ConfigLike


@dataclass(frozen=True)
class PolicyParams:
    threshold_s: float
    debounce_polls: int
    comm_loss_dead_s: float
    power_stable_s: float
    min_charge_pct: float
    critical_window_s: float = 60.0
    outage_clear_s: float = 30.0
    honor_fsd: bool = True
    lb_confirm_polls: int = 2
    min_charge_on_battery: float = 50.0
    charge_unknown_wait_s: float = 1800.0
    max_gap_s: float = math.inf
    max_on_battery_s: float | None = None  # ups.max_on_battery_seconds (None: no cap)


def max_gap_from_config(config: ConfigLike) -> float:
    """Polls further apart than this mean the power was not observed in between."""
    ups = config.ups
    if ups.max_poll_gap_seconds is not None:
        return ups.max_poll_gap_seconds
    return 3 * ups.poll_interval_seconds + ups.timeout_seconds


def critical_window_from_config(config: ConfigLike) -> float:
    """The evidence window: `ups.critical_window_seconds`, by default the larger of 60 s and
    twice the time `debounce_polls` polls take."""
    ups = config.ups
    if ups.critical_window_seconds is not None:
        return ups.critical_window_seconds
    return max(60.0, 2 * ups.debounce_polls * ups.poll_interval_seconds)


def params_from_config(config: ConfigLike, threshold_s: float) -> PolicyParams:
    ups, startup = config.ups, config.startup
    return PolicyParams(
        threshold_s=threshold_s,
        debounce_polls=ups.debounce_polls,
        comm_loss_dead_s=ups.comm_loss_dead_seconds,
        power_stable_s=startup.power_stable_seconds,
        min_charge_pct=startup.min_battery_charge,
        critical_window_s=critical_window_from_config(config),
        outage_clear_s=ups.outage_clear_seconds,
        honor_fsd=ups.honor_fsd,
        lb_confirm_polls=ups.lb_confirm_polls,
        min_charge_on_battery=ups.min_charge_on_battery,
        charge_unknown_wait_s=startup.charge_unknown_wait_seconds,
        max_gap_s=max_gap_from_config(config),
        max_on_battery_s=ups.max_on_battery_seconds,
    )


@dataclass(frozen=True)
class PolicyState:
    """What the policy remembers between polls. Times are on the monotonic clock."""

    on_battery: bool = False  # last known power source is the battery
    outage_start: float | None = None  # start of the open outage episode
    critical_count: int = 0  # critical polls in the current window
    latched: bool = False  # a shutdown was triggered during this episode
    startup_pending: bool = False  # the cluster was shut down and waits for the power gate
    mains_since: float | None = None  # start of the current stretch of observed mains
    last_ok_t: float | None = None
    comm_lost: bool = False
    last_charge: float | None = None
    critical_times: tuple[float, ...] = ()
    lb_times: tuple[float, ...] = ()
    was_critical: bool = False  # the previous poll on battery was critical
    battery_since: float | None = None  # start of the current stretch on battery
    drain_ref: tuple[float, float] | None = None  # (t, charge) first seen on battery
    last_poll_t: float | None = None
    source_unknown: bool = False  # the last reading said nothing about the power source
    startup_wait: str | None = None  # what a pending startup waits for (None: not pending)
    # First poll on battery outside calibration in the open outage episode: the clock of
    # ups.max_on_battery_seconds (flickers back to mains inside the episode do not restart it).
    cap_start: float | None = None


@dataclass(frozen=True)
class Event:
    t: float
    event: str
    reason: str
    threshold_s: float
    runtime_s: float | None
    charge_pct: float | None = None
    count: int = 0


# Every event name `step` can produce (the README lists them; `hecate replay --json` prints them).
EVENT_NAMES = (
    "on_battery",
    "calibration",
    "condition_met",
    "condition_cleared",
    "trigger_shutdown",
    "power_restored",
    "outage_over",
    "startup_allowed",
    "comm_lost",
    "comm_restored",
    "power_source_unknown",
    "observation_gap",
)


def initial_state(*, startup_pending: bool = False) -> PolicyState:
    """`startup_pending=True` when the cluster is known to be down (e.g. after a boot)."""
    return PolicyState(startup_pending=startup_pending)
