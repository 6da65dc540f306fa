"""`hecate status`: intent, budget, recent runs and the UPS (the typer face of
hecate.cli.status_show: its help and usage errors; a plain `hecate status` runs without typer,
hecate.cli.read_run)."""

from __future__ import annotations

import typer

from hecate.cli.options import ConfigOpt, JsonOpt
from hecate.cli.status_show import show_status
from hecate.config.load import DEFAULT_CONFIG_PATH


def status_command(config: ConfigOpt = DEFAULT_CONFIG_PATH, as_json: JsonOpt = False) -> None:
    """Show the intent, the shutdown budget, the last runs and the UPS.

    Intent: state, since, reason, whether it is stale; during a startup, the stage (gate) it is
    in and since when (startup_progress). Budget: estimate_s, threshold_s, source, samples, and
    max_on_battery_s (`ups.max_on_battery_seconds`, null when off).
    Startup: whether the automatic startup is pending (the cluster is down) and what it waits
    for, judged from the current UPS reading (mains stability is timed by the daemon), and,
    when a peer's trigger shut the cluster down, that peer's UPS (waits_for_peers). Reports:
    the last startup's and shutdown's outcome and their stages that were not ok (the full --json
    reports are state_dir/last-startup-report.json and last-shutdown-report.json).
    """
    code = show_status(config, as_json)
    if code:
        raise typer.Exit(code)
