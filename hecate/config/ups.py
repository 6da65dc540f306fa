"""The `ups` section of the config (split from `hecate.config.model`, which imports it)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from hecate.config.addresses import UpsTarget
from hecate.config.strict import NutUser
from hecate.config.strict import StrictModel as _Strict


class UpsConfig(_Strict):
    """The UPS, read from NUT's upsd. The policy: README, "What Hecate decides, and how"."""

    # No default: a config must name its UPS (README, "Upgrading").
    target: UpsTarget = Field(
        description="The UPS as upsc takes it: UPSNAME@HOST[:PORT]. Required: it has no default "
        "(`upsc -l HOST` lists the names upsd serves)."
    )
    user: NutUser = Field("monuser", description="The upsd user (see upsd.users).")
    password_file: Path | None = Field(
        None,
        description="File holding that user's password (mode 0600); never put the password in "
        "the config.",
    )
    poll_interval_seconds: float = Field(5.0, gt=0, le=300, description="Time between polls.")
    debounce_polls: int = Field(
        3,
        ge=1,
        le=100,
        description="Critical polls needed within critical_window_seconds before a shutdown "
        "triggers; they need not be consecutive, so a chattering LB or a flickering mains cannot "
        "reset the count.",
    )
    comm_loss_dead_seconds: float = Field(
        30.0,
        gt=0,
        description="A UPS last seen on battery that stays silent this long counts as critical.",
    )
    timeout_seconds: float = Field(
        5.0, gt=0, le=60, description="Timeout for one conversation with upsd."
    )
    auth_check: Literal["primary", "login", "none"] = Field(
        "primary",
        description="How the credentials are checked on each read: primary (PRIMARY: the user "
        "needs `upsmon primary` in upsd.users; no log noise), login (LOGIN: any upsmon user; "
        "upsd logs every poll) or none (anonymous reads).",
    )
    honor_fsd: bool = Field(
        True,
        description="FSD (forced shutdown) set by the UPS's primary shuts down at once, on "
        "battery or on mains.",
    )
    critical_window_seconds: float | None = Field(
        None,
        gt=0,
        description="The window critical polls are counted in; debounce_polls of them in the "
        "window trigger (null: max(60, 2 x debounce_polls x poll_interval_seconds)).",
    )
    lb_confirm_polls: int = Field(
        2,
        ge=1,
        le=100,
        description="LB (low battery) on this many polls within the window triggers: a short "
        "confirmation of the UPS's own verdict (2: one poll interval).",
    )
    min_charge_on_battery: float = Field(
        50.0,
        ge=0,
        le=100,
        description="On battery without a runtime estimate, a charge (percent) below this is "
        "critical.",
    )
    outage_clear_seconds: float = Field(
        30.0,
        ge=0,
        description="An outage ends once mains has been seen stable this long (flickers inside "
        "it do not count).",
    )
    max_on_battery_seconds: float | None = Field(
        None,
        gt=0,
        description="A shutdown this long into an outage episode, whatever the runtime estimate "
        "says (apcupsd's TIMEOUT): for a battery whose estimate lies. Mains flickers shorter "
        "than outage_clear_seconds do not restart the count; calibration (CAL) does not count. "
        "At least poll_interval_seconds (null: off).",
    )
    max_poll_gap_seconds: float | None = Field(
        None,
        gt=0,
        description="Polls further apart than this mean the power was not observed, and the "
        "mains-stable clock restarts (null: 3 x poll_interval_seconds + timeout_seconds).",
    )
    runtime_correction: Literal["off", "learned"] = Field(
        "off",
        description="off: battery truth (runtime claimed vs delivered in recorded outages, "
        "`hecate ups report`) is advisory only; learned: the shutdown threshold is raised by the "
        "learned correction, so shutdowns start earlier (never later).",
    )

    @field_validator("critical_window_seconds")
    @classmethod
    def _window_fits_debounce(cls, window: float | None, info: ValidationInfo) -> float | None:
        polls, interval = info.data.get("debounce_polls"), info.data.get("poll_interval_seconds")
        if window is None or polls is None or interval is None:
            return window
        needed = (polls - 1) * interval
        if window <= needed:
            raise ValueError(
                f"critical_window_seconds ({window:g}) must be longer than (debounce_polls - 1)"
                f" x poll_interval_seconds ({needed:g}), or no shutdown could ever trigger"
            )
        return window

    @field_validator("max_on_battery_seconds")
    @classmethod
    def _cap_fits_polls(cls, cap: float | None, info: ValidationInfo) -> float | None:
        interval = info.data.get("poll_interval_seconds")
        if cap is None or interval is None:
            return cap
        if cap < interval:
            # The policy sees the battery only at polls: a shorter cap cannot be kept as written
            # (the earliest it can act is the second poll on battery, a transfer blip).
            raise ValueError(
                f"max_on_battery_seconds ({cap:g}) must be at least poll_interval_seconds "
                f"({interval:g}): the battery is only seen at polls"
            )
        return cap
