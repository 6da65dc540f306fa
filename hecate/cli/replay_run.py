"""`hecate replay`: run a recorded UPS trace through the policy. Without typer: a plain `hecate
replay` runs on the lean path (hecate.cli.read_run); hecate.cli.cmd_replay is its typer face."""

from __future__ import annotations

import json
from pathlib import Path

from hecate.adapters.statedir.store import StateStore
from hecate.cli.common import strict_json
from hecate.cli.feed_text import feed_lines, trace_feed_loss
from hecate.cli.out import echo
from hecate.config.load import DEFAULT_CONFIG_PATH
from hecate.config.snapshot import default_view_kept, load_view_kept
from hecate.config.view import ReadView
from hecate.core.budget import budget_from_config
from hecate.core.policy.values import params_from_config
from hecate.core.replay import replay_with_state
from hecate.core.trace import bundled_traces, find_trace, load_trace
from hecate.errors import ConfigError, StateError, TraceError

NO_CONFIG = "no config: using the defaults"


def cap_words(cap: float | None) -> str:
    """`ups.max_on_battery_seconds` as the summary lines show it ("" when off)."""
    return "" if cap is None else f", shutdown after {cap:g}s on battery whatever the runtime"


def _config(path: Path | None, use_defaults: bool) -> ReadView:
    """The config replay decides with. Only the policy and budget settings matter, so without
    a config (none given and none at the default path) it runs on the defaults and says so;
    a config named with --config must load."""
    if use_defaults:
        return default_view_kept()
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
            echo(f"{NO_CONFIG} ({DEFAULT_CONFIG_PATH} does not exist)", err=True)
            return default_view_kept()
        path = DEFAULT_CONFIG_PATH
    return load_view_kept(path)


def _list_traces(as_json: bool) -> None:
    shipped = bundled_traces()
    if as_json:
        for t in shipped:
            echo(json.dumps({"name": t.name, "about": t.about, "path": str(t.path)}))
        return
    width = max((len(t.name) for t in shipped), default=0)
    for t in shipped:
        echo(f"{t.name:<{width}}  {t.about}".rstrip())


def run_replay(
    trace: str | None = None,
    *,
    config: Path | None = None,
    as_json: bool = False,
    use_default_config: bool = False,
    list_traces: bool = False,
    svg: Path | None = None,
    feed: str | None = None,
) -> int:
    """The replay (cmd_replay.replay_command's help says what it prints); the exit code."""
    if list_traces:
        _list_traces(as_json)
        return 0
    if trace is None:
        raise TraceError("give a TRACE: a file, or a shipped trace's name (hecate replay --list)")
    trace_path = find_trace(trace)
    cfg = _config(config, use_default_config)
    try:
        runs = StateStore(cfg.state_dir).load_runs(move=False)  # a read-only command
    except StateError as exc:
        echo(f"warning: {exc}; using the fallback budget", err=True)
        runs = []
    budget = budget_from_config(cfg, runs)
    points = load_trace(trace_path)
    params = params_from_config(cfg, budget.threshold_s)
    events, final = replay_with_state(points, params)
    loss = trace_feed_loss(cfg, feed)  # a partial episode: the trigger stops some nodes only
    if svg is not None:
        # the outage report's module (battery truth, recorded outages) only for a picture
        from hecate.cli.outage_report import write_svg  # noqa: PLC0415

        write_svg(svg, points, events, budget.threshold_s, f"Replay of {trace_path.name}")
    if not as_json:
        echo(
            f"budget {budget.estimate_s:.0f}s ({budget.source}, {budget.samples} sample(s)), "
            f"threshold {budget.threshold_s:.0f}s, debounce {params.debounce_polls} critical polls"
            f" in {params.critical_window_s:.0f}s (LB: {params.lb_confirm_polls}), FSD "
            f"{'honoured' if params.honor_fsd else 'ignored'}" + cap_words(params.max_on_battery_s)
        )
    for ev in events:
        if as_json:
            echo(
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
            echo(f"t={ev.t:>8.1f}s  {ev.event:<20} {ev.reason}")
            if loss is not None and ev.event == "trigger_shutdown":
                echo("\n".join(f"{'':12}{line}" for line in feed_lines(loss)))
    if not as_json and final.startup_pending:
        echo(f"end: startup still pending; waits for {final.startup_wait or 'mains'}")
    return 0
