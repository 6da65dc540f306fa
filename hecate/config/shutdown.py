"""The `shutdown` section of the config (split from `hecate.config.model`, which imports it)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from hecate.config.strict import NutCommand
from hecate.config.strict import StrictModel as _Strict


class ShutdownConfig(_Strict):
    """How the cluster is shut down, and how its budget is learned."""

    history_window: int = Field(
        10,
        ge=1,
        le=1000,
        description="How many recent successful shutdown runs the budget is learned from.",
    )
    min_samples: int = Field(
        3,
        ge=1,
        description="Successful runs needed before the history replaces default_budget_seconds.",
    )
    budget_percentile: float = Field(
        95.0,
        gt=0,
        le=100,
        description="Percentile of those durations used as the budget (nearest rank; 100: the "
        "maximum).",
    )
    ups_mode: Literal["poweroff", "cluster-only"] = Field(
        "poweroff",
        description="What a UPS trigger does: poweroff (stop k3s, then power the hosts off) or "
        "cluster-only (stop k3s only).",
    )
    drain: bool = Field(False, description="Drain agents before stopping them.")
    drain_timeout_seconds: float = Field(
        120.0,
        gt=0,
        description="Bound for the drain (also for load shedding's eviction-only drain of "
        "power.shed.agents).",
    )
    etcd_snapshot: bool = Field(
        True,
        description="Take `k3s etcd-snapshot save` on a server first; a failure is reported, "
        "never blocking.",
    )
    etcd_snapshot_timeout_seconds: float = Field(
        120.0, gt=0, description="Bound for the etcd snapshot."
    )
    use_killall: bool = Field(
        False,
        description="Use k3s-killall.sh for a full stop (containers too) instead of stopping the "
        "units only.",
    )
    stop_timeout_seconds: float = Field(
        120.0, gt=0, description="Bound for stopping the k3s units on a stage's nodes."
    )
    poweroff_method: Literal["poweroff", "marker"] = Field(
        "poweroff",
        description="poweroff: really power the nodes off; marker: only write a marker file "
        "(rehearsals, drills).",
    )
    poweroff_local_host: bool = Field(
        False, description="Power off the Hecate host itself at the end (poweroff mode)."
    )
    ups_kill_power: bool = Field(
        False,
        description="Ask the UPS to cut its output after the shutdown, so the hosts boot when "
        "mains returns (opt-in). Needs a NUT user with `instcmds`; the UPS waits its own "
        "ups.delay.shutdown before cutting.",
    )
    ups_kill_command: NutCommand = Field(
        "shutdown.return",
        description="The NUT instant command sent when ups_kill_power is on (shutdown.return: "
        "output back on when mains returns).",
    )
    poweroff_timeout_seconds: float = Field(
        120.0,
        gt=0,
        description="How long a node may take to be off after its poweroff (confirmed from its "
        "BMC where it has one, else by SSH no longer answering).",
    )
    bmc_hard_off: bool = Field(
        False,
        description="A node still on after poweroff_timeout_seconds is powered off hard through "
        "its BMC (power.nodes: ipmi or redfish).",
    )
    etcd_snapshots_kept: int = Field(
        5,
        ge=1,
        le=1000,
        description="How many of Hecate's own etcd snapshots (named hecate-*) to keep on the "
        "server; older ones are pruned after a verified snapshot. k3s's scheduled snapshots "
        "(etcd-snapshot-*) are left to k3s's own retention.",
    )
    runs_kept: int = Field(200, ge=1, description="Run records kept in runs.json.")

    @field_validator("min_samples")
    @classmethod
    def _samples_fit_window(cls, value: int, info: ValidationInfo) -> int:
        window = info.data.get("history_window")
        if window is not None and value > window:
            raise ValueError(
                f"min_samples ({value}) is larger than history_window ({window}): "
                "the budget could never learn from the history"
            )
        return value
