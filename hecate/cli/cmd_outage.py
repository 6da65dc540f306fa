"""`hecate outage` (recorded outages, drawn as SVG) and `hecate ups report` (battery truth)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from hecate.adapters.statedir.outages import find_outage, load_recorded, outage_id
from hecate.cli.common import emit_json, load
from hecate.cli.options import ConfigOpt, JsonOpt
from hecate.cli.outage_report import threshold_for, ups_report_data, ups_report_lines, write_svg
from hecate.config.load import DEFAULT_CONFIG_PATH
from hecate.core.battery import battery_truth
from hecate.core.policy.values import params_from_config
from hecate.core.replay import replay
from hecate.core.trace import load_trace

outage_app = typer.Typer(
    help="Recorded outages (state_dir/traces): list them, show one, draw it as SVG.",
    no_args_is_help=True,
)
ups_app = typer.Typer(help="What the UPS claims against what it delivered.", no_args_is_help=True)

SvgOpt = Annotated[
    Path | None,
    typer.Option(
        "--svg",
        help="Also draw the outage to this SVG file: runtime and threshold over time, charge, "
        "status bands (mains, battery, lost contact) and the decisions, numbered.",
        dir_okay=False,
    ),
]


@outage_app.command("list")
def list_command(config: ConfigOpt = DEFAULT_CONFIG_PATH, as_json: JsonOpt = False) -> None:
    """List the recorded outages, oldest first, with their length and battery ratio."""
    cfg = load(config)
    rows = []
    for name, points in load_recorded(cfg.state_dir):
        truths = battery_truth([(name, points)]).outages
        rows.append(
            {
                "id": name,
                "polls": len(points),
                "duration_s": points[-1].t - points[0].t,
                "ratio": round(truths[0].ratio, 3) if truths else None,
            }
        )
    if as_json:
        emit_json(rows)
        return
    if not rows:
        typer.echo(f"no recorded outage under {cfg.state_dir / 'traces'}")
    for row in rows:
        ratio = f"delivered/claimed {row['ratio']}" if row["ratio"] is not None else ""
        typer.echo(f"{row['id']}  {row['polls']:>4} polls  {row['duration_s']:>7.0f}s  {ratio}")


@outage_app.command("show")
def show_command(
    outage: Annotated[
        str | None,
        typer.Argument(help="Outage id (or a unique prefix, or a trace file); default the last."),
    ] = None,
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
    svg: SvgOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Replay a recorded outage through the policy and show its decisions and battery truth.

    With --svg FILE the outage is also drawn (open the file in a browser).
    """
    cfg = load(config)
    path = find_outage(cfg.state_dir, outage)
    points = load_trace(path)
    threshold = threshold_for(cfg)
    events = replay(points, params_from_config(cfg, threshold))
    truths = battery_truth([(outage_id(path), points)]).outages
    if svg is not None:
        write_svg(svg, points, events, threshold, f"Outage {outage_id(path)}")
    report: dict[str, Any] = {
        "id": outage_id(path),
        "file": str(path),
        "threshold_s": threshold,
        "events": [
            {"t": e.t, "event": e.event, "reason": e.reason, "runtime_s": e.runtime_s}
            for e in events
        ],
        "battery": [t.to_json() for t in truths],
    }
    if as_json:
        emit_json(report)
        return
    typer.echo(f"outage {report['id']}: {len(points)} polls, threshold {threshold:.0f}s")
    for e in events:
        typer.echo(f"t={e.t:>8.1f}s  {e.event:<18} {e.reason}")
    for t in truths:
        typer.echo(
            f"battery: claimed {t.claimed_start_s:.0f}s at the start, "
            f"{t.on_battery_s:.0f}s on battery, delivered/claimed {t.ratio:.2f}"
        )


@ups_app.command("report")
def report_command(config: ConfigOpt = DEFAULT_CONFIG_PATH, as_json: JsonOpt = False) -> None:
    """Compare the runtime the UPS claimed with what it delivered in the recorded outages.

    Shows, per outage, the claimed runtime, the time on battery, the load and the ratio
    delivered/claimed; the correction factor from the last outages; and whether, at the current
    load, the battery covers the shutdown threshold.
    """
    data = ups_report_data(load(config))
    if as_json:
        emit_json(data)
        return
    for line in ups_report_lines(data):
        typer.echo(line)
