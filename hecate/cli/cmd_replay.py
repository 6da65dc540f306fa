"""`hecate replay`: run a recorded UPS trace through the policy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from hecate.adapters.statedir.store import StateStore
from hecate.cli.cmd_outage import SvgOpt, write_svg
from hecate.cli.common import JsonOpt, strict_json
from hecate.cli.feed_text import feed_lines, trace_feed_loss
from hecate.config.model import DEFAULT_CONFIG_PATH, HecateConfig, default_config, load_config
from hecate.core.budget import budget_from_config
from hecate.core.policy.values import params_from_config
from hecate.core.replay import replay_with_state
from hecate.core.trace import bundled_traces, find_trace, load_trace
from hecate.errors import ConfigError, StateError, TraceError

NO_CONFIG = "no config: using the defaults"


def _config(path: Path | None, use_defaults: bool) -> HecateConfig:
    """The config replay decides with. Only the policy and budget settings matter, so without
    a config (none given and none at the default path) it runs on the defaults and says so;
    a config named with --config must load."""
    if use_defaults:
        return default_config()
    if path is None:
        try:
            present = DEFAULT_CONFIG_PATH.exists()
        except OSError as exc:
            # /etc/hecate is 0750: a config that is there but unreadable is not "no config";
            # replaying on the defaults would silently decide with other settings
            why = exc.strerror or type(exc).__name__
            raise ConfigError(
                f"cannot read {DEFAULT_CONFIG_PATH} ({why.lower()}): pass --config or "
                "--default-config"
            ) from None
        if not present:
            typer.echo(f"{NO_CONFIG} ({DEFAULT_CONFIG_PATH} does not exist)", err=True)
            return default_config()
        path = DEFAULT_CONFIG_PATH
    return load_config(path)


def _list_traces(as_json: bool) -> None:
    shipped = bundled_traces()
    if as_json:
        for t in shipped:
            typer.echo(json.dumps({"name": t.name, "about": t.about, "path": str(t.path)}))
        return
    width = max((len(t.name) for t in shipped), default=0)
    for t in shipped:
        typer.echo(f"{t.name:<{width}}  {t.about}".rstrip())


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
    if list_traces:
        _list_traces(as_json)
        return
    if trace is None:
        raise TraceError("give a TRACE: a file, or a shipped trace's name (hecate replay --list)")
    trace_path = find_trace(trace)
    cfg = _config(config, use_default_config)
    try:
        runs = StateStore(cfg.state_dir).load_runs(move=False)  # a read-only command
    except StateError as exc:
        typer.echo(f"warning: {exc}; using the fallback budget", err=True)
        runs = []
    budget = budget_from_config(cfg, runs)
    points = load_trace(trace_path)
    params = params_from_config(cfg, budget.threshold_s)
    events, final = replay_with_state(points, params)
    loss = trace_feed_loss(cfg, feed)  # a partial episode: the trigger stops some nodes only
    if svg is not None:
        write_svg(svg, points, events, budget.threshold_s, f"Replay of {trace_path.name}")
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
                        | (
                            {"feeds": loss.to_json(cfg.nodes.all)}
                            if loss is not None and ev.event == "trigger_shutdown"
                            else {}
                        )
                    ),
                    allow_nan=False,
                )
            )
        else:
            typer.echo(f"t={ev.t:>8.1f}s  {ev.event:<20} {ev.reason}")
            if loss is not None and ev.event == "trigger_shutdown":
                typer.echo("\n".join(f"{'':12}{line}" for line in feed_lines(loss)))
    if not as_json and final.startup_pending:
        typer.echo(f"end: startup still pending; waits for {final.startup_wait or 'mains'}")
