"""`hecate replay`: run a recorded UPS trace through the policy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from hecate.adapters.statedir.store import StateStore
from hecate.cli.cmd_outage import SvgOpt, write_svg
from hecate.cli.common import ConfigOpt, JsonOpt, strict_json
from hecate.config.model import DEFAULT_CONFIG_PATH, HecateConfig, load_config
from hecate.core.budget import budget_from_config
from hecate.core.policy.values import params_from_config
from hecate.core.replay import replay_with_state
from hecate.core.trace import load_trace
from hecate.errors import StateError


def replay_command(
    trace: Annotated[Path, typer.Argument(help="JSON-lines UPS trace (see README).")],
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
    as_json: JsonOpt = False,
    use_default_config: Annotated[
        bool, typer.Option("--default-config", help="Ignore --config; use built-in defaults.")
    ] = False,
    svg: SvgOpt = None,
) -> None:
    """Feed a recorded UPS trace through the shutdown policy and print each decision change.

    The budget comes from the state_dir's run history when there is one, else from
    default_budget_seconds. Time is the trace's monotonic `mono` field when it has one (the
    daemon's traces do), else `t`. With --json each line is an object with t, event, reason,
    threshold_s, runtime_s, charge_pct and count; the event names are listed in the README
    ("Replaying traces").
    """
    cfg = HecateConfig() if use_default_config else load_config(config)
    try:
        runs = StateStore(cfg.state_dir).load_runs()
    except StateError as exc:
        typer.echo(f"warning: {exc}; using the fallback budget", err=True)
        runs = []
    budget = budget_from_config(cfg, runs)
    points = load_trace(trace)
    params = params_from_config(cfg, budget.threshold_s)
    events, final = replay_with_state(points, params)
    if svg is not None:
        write_svg(svg, points, events, budget.threshold_s, f"Replay of {trace.name}")
    if not as_json:
        typer.echo(
            f"budget {budget.estimate_s:.0f}s ({budget.source}, {budget.samples} sample(s)), "
            f"threshold {budget.threshold_s:.0f}s, debounce {params.debounce_polls} critical polls"
            f" in {params.critical_window_s:.0f}s (LB: {params.lb_confirm_polls}), FSD "
            f"{'honoured' if params.honor_fsd else 'ignored'}"
        )
    for ev in events:
        if as_json:
            typer.echo(
                json.dumps(
                    strict_json(
                        {
                            "t": ev.t,
                            "event": ev.event,
                            "reason": ev.reason,
                            "threshold_s": ev.threshold_s,
                            "runtime_s": ev.runtime_s,
                            "charge_pct": ev.charge_pct,
                            "count": ev.count,
                        }
                    ),
                    allow_nan=False,
                )
            )
        else:
            typer.echo(f"t={ev.t:>8.1f}s  {ev.event:<20} {ev.reason}")
    if not as_json and final.startup_pending:
        typer.echo(f"end: startup still pending; waits for {final.startup_wait or 'mains'}")
