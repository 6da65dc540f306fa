"""`hecate replay`: the typer face (help, usage errors) of hecate.cli.replay_run; a plain
`hecate replay` runs without typer (hecate.cli.read_run)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hecate.cli.cmd_outage import SvgOpt
from hecate.cli.options import JsonOpt
from hecate.cli.replay_run import run_replay
from hecate.config.load import DEFAULT_CONFIG_PATH


def replay_command(
    trace: Annotated[
        str | None,
        typer.Argument(
            help="A JSON-lines UPS trace file (see README), or the name of a shipped trace "
            "(hecate replay --list).",
            show_default=False,
            metavar="TRACE",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help=f"Hecate config file (default {DEFAULT_CONFIG_PATH}; without one, the "
            "built-in defaults, said on stderr).",
        ),
    ] = None,
    as_json: JsonOpt = False,
    use_default_config: Annotated[
        bool,
        typer.Option("--default-config", help="Ignore any config file; use the built-in defaults."),
    ] = False,
    list_traces: Annotated[
        bool, typer.Option("--list", help="List the shipped traces (names for TRACE) and exit.")
    ] = False,
    svg: SvgOpt = None,
    feed: Annotated[
        str | None,
        typer.Option(
            "--feed",
            help="The power feed whose UPS the trace is (power.feeds; default: the feed this "
            "instance watches): each trigger says whether it stops that feed's nodes only.",
        ),
    ] = None,
) -> None:
    """Feed a recorded UPS trace through the shutdown policy and print each decision change.

    TRACE is a file or the name of a shipped trace (`hecate replay --list`). The settings come
    from --config, else /etc/hecate/hecate.yaml, else (no config there) the built-in defaults,
    as --default-config asks outright. The budget comes from the state_dir's run history when
    there is one, else from default_budget_seconds. Time is the trace's monotonic `mono` field
    when it has one (the daemon's traces do), else `t`. With --json each line is an object with
    t, event, reason, threshold_s, runtime_s, charge_pct and count; the event names are listed
    in the README ("Replaying traces").
    """
    code = run_replay(
        trace,
        config=config,
        as_json=as_json,
        use_default_config=use_default_config,
        list_traces=list_traces,
        svg=svg,
        feed=feed,
    )
    if code:
        raise typer.Exit(code)
