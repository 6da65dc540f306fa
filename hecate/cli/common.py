"""Shared CLI pieces: exit codes, common options, output and the injectable UPS source."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from hecate.budget import Budget, estimate_budget
from hecate.config import DEFAULT_CONFIG_PATH, HecateConfig, load_config
from hecate.nut import client_from_config, poll
from hecate.policy import PolicyParams
from hecate.readings import Poll
from hecate.runs import RunRecord

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3

EXIT_CODES_HELP = (
    "Exit codes: 0 ok, 1 run failed, 2 bad usage or config, 3 refused by a safety guard."
)

ConfigOpt = Annotated[
    Path,
    typer.Option("--config", "-c", help="Hecate config file.", show_default=True),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def default_config_path() -> Path:
    return DEFAULT_CONFIG_PATH


def load(path: Path) -> HecateConfig:
    return load_config(path)


def emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def budget_for(config: HecateConfig, runs: list[RunRecord]) -> Budget:
    return estimate_budget(
        runs,
        fallback_s=config.default_budget_seconds,
        safety_factor=config.runtime_safety_factor,
        window=config.shutdown.history_window,
        min_samples=config.shutdown.min_samples,
        percentile=config.shutdown.budget_percentile,
        mode=config.shutdown.ups_mode,
    )


def policy_params(config: HecateConfig, budget: Budget) -> PolicyParams:
    return PolicyParams(
        threshold_s=budget.threshold_s,
        debounce_polls=config.ups.debounce_polls,
        comm_loss_dead_s=config.ups.comm_loss_dead_seconds,
        power_stable_s=config.startup.power_stable_seconds,
        min_charge_pct=config.startup.min_battery_charge,
    )


def _read_ups_from_nut(config: HecateConfig) -> Poll:
    return poll(client_from_config(config))


# The UPS source is injectable so guards can be tested without a NUT server.
ups_reader: Callable[[HecateConfig], Poll] = _read_ups_from_nut


def read_ups(config: HecateConfig) -> Poll:
    return ups_reader(config)


def now() -> float:
    return time.time()
