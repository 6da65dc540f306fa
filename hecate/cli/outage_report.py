"""What `hecate outage`, `hecate ups report`, `hecate status` and `hecate replay` share: the
shutdown threshold, the battery report and the SVG picture. Without typer (status and replay run
on the lean path, hecate.cli.read_run)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from hecate.adapters.statedir.outages import load_recorded, trace_paths
from hecate.adapters.statedir.store import StateStore
from hecate.cli.common import read_ups_or_error
from hecate.cli.out import echo
from hecate.core.battery import battery_truth, coverage
from hecate.core.budget import budget_from_config
from hecate.core.policy.values import Event
from hecate.core.readings import Poll, UpsReading
from hecate.core.trace import TracePoint
from hecate.errors import StateError

if TYPE_CHECKING:
    from hecate.config.view import ConfigLike


def threshold_for(cfg: ConfigLike) -> float:
    try:
        runs = StateStore(cfg.state_dir).load_runs(move=False)  # read-only: nothing moved
    except StateError as exc:
        echo(f"warning: {exc}; using the fallback budget", err=True)
        runs = []
    return budget_from_config(cfg, runs).threshold_s


def write_svg(
    path: Path, points: list[TracePoint], events: list[Event], threshold_s: float, title: str
) -> None:
    """Draw the trace to `path` (the CLI's one file write for pictures)."""
    from hecate.cli.outage_svg import render_outage_svg  # noqa: PLC0415 - xml.etree: not for status

    svg = render_outage_svg(points, events, threshold_s, title)
    try:
        path.write_text(svg, encoding="utf-8")
    except OSError as exc:
        raise StateError(f"cannot write {path}: {exc.strerror}") from None
    echo(f"picture written to {path}", err=True)


def ups_report_data(cfg: ConfigLike, poll: Poll | None = None) -> dict[str, Any]:
    """Claimed vs delivered for the last outages, and coverage now (status uses it too, with
    the reading it already has)."""
    truth = battery_truth(load_recorded(cfg.state_dir))
    threshold = threshold_for(cfg)
    if poll is None:
        poll = read_ups_or_error(cfg)
    cover = None
    if isinstance(poll, UpsReading) and poll.runtime_s is not None:
        cover = coverage(truth, poll.runtime_s, poll.load_pct, threshold)
    return {
        **truth.to_json(),
        "runtime_correction": cfg.ups.runtime_correction,
        "recorded_traces": len(trace_paths(cfg.state_dir)),
        "coverage": None if cover is None else {**cover.to_json(), "text": cover.sentence()},
    }


def ups_report_lines(data: dict[str, Any]) -> list[str]:
    lines = []
    outages = data["outages"]
    if not outages:
        lines.append(
            f"battery truth: no usable outage yet ({data['recorded_traces']} trace(s) recorded; "
            "one needs a minute or more on battery with a runtime reading)"
        )
    for o in outages:
        load = f"{o['load_pct']:.0f} %" if o["load_pct"] is not None else "?"
        how = "ran out" if o["ran_out"] else "claim burn rate"
        lines.append(
            f"  {o['source']}: claimed {o['claimed_start_s']:.0f}s, {o['on_battery_s']:.0f}s "
            f"on battery at {load} load, delivered/claimed {o['ratio']:.2f} ({how})"
        )
    if data["correction"] is not None:
        use = (
            "applied: shutdowns start earlier"
            if data["runtime_correction"] == "learned"
            else "advisory (ups.runtime_correction: learned applies it)"
        )
        lines.append(f"correction factor {data['correction']:.2f}, {use}")
    if data["coverage"] is not None:
        lines.append(data["coverage"]["text"])
    else:
        lines.append("coverage now: unknown (the UPS gives no runtime right now)")
    return lines
