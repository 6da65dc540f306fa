"""A picture of an outage as SVG: runtime against the threshold, charge, status bands, decisions.

Pure: a trace and its replayed events in, SVG text out. Written with the standard library's
ElementTree rather than a plotting library: the picture needs bands, markers and a numbered
event list that a chart library would fight, ElementTree escapes every text (reasons come from
traces), and the output is deterministic and small, so tests can read it back.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

from hecate.core.policy.values import Event
from hecate.core.readings import CommError, UpsReading
from hecate.core.trace import TracePoint

WIDTH = 1000
PLOT_LEFT, PLOT_RIGHT, PLOT_TOP, PLOT_HEIGHT = 80, 920, 60, 340
FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
COLORS = {
    "runtime": "#1f6fb4",
    "threshold": "#c62828",
    "charge": "#2e7d32",
    "mains": "#e8f5e9",
    "battery": "#fff3e0",
    "lost": "#eceff1",
    "event": "#6a1b9a",
}
# Decision markers: circles of radius MARKER_R in a row just above the plot; markers too close
# to tell apart stack upwards one MARKER_PITCH apart (marker_rows), and the chart moves down
# to make room.
MARKER_R = 9
MARKER_PITCH = 2 * MARKER_R + 2
MARKER_Y = PLOT_TOP - 10
BAND_NAMES = {"mains": "on mains", "battery": "on battery", "lost": "lost contact"}


@dataclass(frozen=True)
class Band:
    kind: str  # mains | battery | lost
    start: float
    end: float


def bands(points: Sequence[TracePoint]) -> list[Band]:
    """Status stretches: each poll's status holds until the next poll (on the policy's clock,
    TracePoint.clock, as the decisions are)."""
    found: list[Band] = []
    for here, after in zip(points, [*points[1:], None], strict=True):
        end = after.clock if after is not None else here.clock
        poll = here.poll
        if isinstance(poll, CommError):
            kind = "lost"
        elif poll.on_battery:
            kind = "battery"
        else:
            kind = "mains"
        if found and found[-1].kind == kind:
            found[-1] = Band(kind, found[-1].start, end)
        else:
            found.append(Band(kind, here.clock, end))
    return found


def nice_ticks(low: float, high: float, count: int = 6, *, cover: bool = False) -> list[float]:
    """Round tick values inside [low, high]; with `cover`, the last one is at or above high."""
    span = max(high - low, 1e-9)
    raw = span / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step) * step
    if cover:
        high = math.ceil(high / step - 1e-9) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        if value >= low - step * 1e-9:
            ticks.append(round(value, 10))
        value += step
    return ticks


TIME_STEPS = (1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 21600)


def time_ticks(span: float, count: int = 8) -> list[float]:
    """Offsets from the start at a clock-friendly step (1 s ... 6 h)."""
    step = next((s for s in TIME_STEPS if s >= span / count), TIME_STEPS[-1])
    return [float(i * step) for i in range(int(span // step) + 1)]


def fmt_time(seconds: float, span: float) -> str:
    """`42s` on short traces, `m:ss` (or `h:mm:ss`) on longer ones: one format per axis."""
    if span < 120:
        return f"{seconds:g}s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    if span >= 3600:
        return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
    return f"{whole // 60}:{whole % 60:02d}"


def _text(parent: ET.Element, x: float, y: float, text: str, **attrs: str) -> ET.Element:
    element = ET.SubElement(
        parent, "text", {"x": f"{x:.1f}", "y": f"{y:.1f}", "font-family": FONT, **attrs}
    )
    element.text = text
    return element


def render_outage_svg(
    points: Sequence[TracePoint],
    events: Sequence[Event],
    threshold_s: float,
    title: str,
) -> str:
    """The SVG document for a trace and the decisions replayed from it. The time axis is the
    policy's clock (`mono`, else `t`: TracePoint.clock), the one the decisions' times are on: a
    wall clock that steps would put the polls and the decisions at different places."""
    t0 = points[0].clock
    t1 = max(points[-1].clock, t0 + 1.0)
    runtime_at = [
        (p.clock, p.poll.runtime_s if isinstance(p.poll, UpsReading) else None) for p in points
    ]
    charge_at = [
        (p.clock, p.poll.charge_pct if isinstance(p.poll, UpsReading) else None) for p in points
    ]
    runtimes = [(t, v) for t, v in runtime_at if v is not None]
    top = max([threshold_s * 1.2, *(v for _, v in runtimes)]) if runtimes else threshold_s * 2
    y_ticks = nice_ticks(0, top, cover=True)
    y_max = y_ticks[-1] if y_ticks[-1] > 0 else 1.0
    list_top = PLOT_TOP + PLOT_HEIGHT + 110

    def x_of(t: float) -> float:
        return PLOT_LEFT + (t - t0) / (t1 - t0) * (PLOT_RIGHT - PLOT_LEFT)

    def y_of(value: float, scale: float) -> float:
        return PLOT_TOP + PLOT_HEIGHT - min(value, scale) / scale * PLOT_HEIGHT

    xs = [x_of(e.t) for e in events]
    rows = marker_rows(xs)
    lift = MARKER_PITCH * max(rows, default=0)  # room above the plot for stacked markers
    height = lift + list_top + 22 * max(len(events), 1) + 30
    svg = ET.Element(
        "svg",
        {
            "xmlns": "http://www.w3.org/2000/svg",
            "width": str(WIDTH),
            "height": str(height),
            "viewBox": f"0 0 {WIDTH} {height}",
            "font-size": "13",
        },
    )
    ET.SubElement(svg, "title").text = title
    ET.SubElement(svg, "rect", {"width": "100%", "height": "100%", "fill": "white"})
    _text(svg, PLOT_LEFT, 30, title, **{"font-size": "18", "font-weight": "bold"})
    # Everything under the title, moved down by the room the stacked markers need.
    chart = ET.SubElement(svg, "g", {"class": "chart", "transform": f"translate(0 {lift})"})

    band_group = ET.SubElement(chart, "g", {"class": "bands"})
    for band in bands(points):
        x = x_of(band.start)
        ET.SubElement(
            band_group,
            "rect",
            {
                "class": f"band band-{band.kind}",
                "x": f"{x:.1f}",
                "y": str(PLOT_TOP),
                "width": f"{max(x_of(band.end) - x, 1.0):.1f}",
                "height": str(PLOT_HEIGHT),
                "fill": COLORS[band.kind],
            },
        ).append(_title(f"{BAND_NAMES[band.kind]}: {band.start:g}s to {band.end:g}s"))

    axes = ET.SubElement(chart, "g", {"class": "axes", "stroke": "#555", "fill": "none"})
    bottom = PLOT_TOP + PLOT_HEIGHT
    ET.SubElement(
        axes,
        "rect",
        {"x": str(PLOT_LEFT), "y": str(PLOT_TOP), "width": str(PLOT_RIGHT - PLOT_LEFT)}
        | {"height": str(PLOT_HEIGHT)},
    )
    labels = ET.SubElement(chart, "g", {"class": "tick-labels", "fill": "#333"})
    for offset in time_ticks(t1 - t0):
        x = x_of(t0 + offset)
        ET.SubElement(axes, "line", _line(x, bottom, x, bottom + 5))
        _text(labels, x, bottom + 20, fmt_time(offset, t1 - t0), **{"text-anchor": "middle"})
    _text(labels, (PLOT_LEFT + PLOT_RIGHT) / 2, bottom + 40, "time since the first poll")
    for value in y_ticks:
        y = y_of(value, y_max)
        ET.SubElement(axes, "line", _line(PLOT_LEFT - 5, y, PLOT_LEFT, y))
        ET.SubElement(axes, "line", {**_line(PLOT_LEFT, y, PLOT_RIGHT, y), "stroke": "#ddd"})
        _text(labels, PLOT_LEFT - 8, y + 4, f"{value:g}", **{"text-anchor": "end"})
    _text(
        labels,
        22,
        PLOT_TOP + PLOT_HEIGHT / 2,
        "runtime (s)",
        **{"transform": f"rotate(-90 22 {PLOT_TOP + PLOT_HEIGHT / 2})", "text-anchor": "middle"},
    )
    for value in (0, 25, 50, 75, 100):
        y = y_of(value, 100)
        ET.SubElement(axes, "line", _line(PLOT_RIGHT, y, PLOT_RIGHT + 5, y))
        _text(labels, PLOT_RIGHT + 8, y + 4, f"{value}%")
    _text(
        labels,
        PLOT_RIGHT + 62,
        PLOT_TOP + PLOT_HEIGHT / 2,
        "charge (%)",
        **{
            "transform": f"rotate(90 {PLOT_RIGHT + 62} {PLOT_TOP + PLOT_HEIGHT / 2})",
            "text-anchor": "middle",
        },
    )

    y_threshold = y_of(threshold_s, y_max)
    ET.SubElement(
        chart,
        "line",
        {
            **_line(PLOT_LEFT, y_threshold, PLOT_RIGHT, y_threshold),
            "class": "threshold",
            "stroke": COLORS["threshold"],
            "stroke-width": "2",
            "stroke-dasharray": "8 5",
        },
    )
    _series(
        chart, "runtime", [None if v is None else (x_of(t), y_of(v, y_max)) for t, v in runtime_at]
    )
    _series(chart, "charge", [None if v is None else (x_of(t), y_of(v, 100)) for t, v in charge_at])

    _marks(chart, events, xs, rows, bottom)
    _legend(chart, bottom + 70, threshold_s)
    _event_list(chart, list_top, events)
    ET.indent(svg)
    return ET.tostring(svg, encoding="unicode") + "\n"


def marker_rows(xs: Sequence[float], gap: float = MARKER_PITCH) -> list[int]:
    """A row for each marker (0 next to the plot, 1 above it, ...) so that two markers in one
    row are at least `gap` apart: markers at the same moment, or too close to tell apart at
    this scale, stack instead of hiding each other. Each keeps its own x (its moment)."""
    last_x: list[float] = []  # per row, the x of its rightmost marker
    rows = []
    for x in xs:
        row = next((r for r, prev in enumerate(last_x) if abs(x - prev) >= gap), len(last_x))
        if row == len(last_x):
            last_x.append(x)
        else:
            last_x[row] = x
        rows.append(row)
    return rows


def _marks(
    chart: ET.Element, events: Sequence[Event], xs: list[float], rows: list[int], bottom: float
) -> None:
    # The lines first, then the markers: a marker stacked above another draws its line through
    # the lower one's place, and the line must pass under that marker, not over its number.
    # The trigger's line last: a decision at the same moment must not paint over the red one.
    lines = ET.SubElement(chart, "g", {"class": "event-lines"})
    for trigger in (False, True):
        for event, x, row in zip(events, xs, rows, strict=True):
            if (event.event == "trigger_shutdown") is trigger:
                color = COLORS["threshold"] if trigger else COLORS["event"]
                ET.SubElement(
                    lines,
                    "line",
                    {**_line(x, MARKER_Y - row * MARKER_PITCH, x, bottom), "stroke": color}
                    | {"stroke-width": "1.5"},
                )
    marks = ET.SubElement(chart, "g", {"class": "events"})
    for number, (event, x, row) in enumerate(zip(events, xs, rows, strict=True), start=1):
        color = COLORS["threshold"] if event.event == "trigger_shutdown" else COLORS["event"]
        cy = MARKER_Y - row * MARKER_PITCH
        mark = ET.SubElement(marks, "g", {"class": f"event event-{event.event}"})
        mark.append(_title(f"{number}. t={event.t:g}s {event.event}: {event.reason}"))
        ET.SubElement(
            mark,
            "circle",
            {"cx": f"{x:.1f}", "cy": f"{cy:.1f}", "r": str(MARKER_R), "fill": color},
        )
        _text(
            mark,
            x,
            cy + 4,
            str(number),
            **{"fill": "white", "text-anchor": "middle", "font-size": "11"},
        )


def _legend(svg: ET.Element, y_legend: float, threshold_s: float) -> None:
    legend = ET.SubElement(svg, "g", {"class": "legend"})
    x = PLOT_LEFT
    for key, label, kind in (
        ("runtime", "runtime claimed", "line"),
        ("threshold", f"shutdown threshold ({threshold_s:.0f}s)", "dash"),
        ("charge", "charge", "line"),
        ("mains", "on mains", "box"),
        ("battery", "on battery", "box"),
        ("lost", "lost contact", "box"),
        ("event", "decision", "dot"),
    ):
        if kind == "box":
            ET.SubElement(
                legend,
                "rect",
                {"x": str(x), "y": str(y_legend - 10), "width": "18", "height": "12"}
                | {"fill": COLORS[key], "stroke": "#999"},
            )
        elif kind == "dot":
            ET.SubElement(
                legend,
                "circle",
                {"cx": str(x + 9), "cy": str(y_legend - 4), "r": "6", "fill": COLORS[key]},
            )
        else:
            attrs = {**_line(x, y_legend - 4, x + 18, y_legend - 4), "stroke": COLORS[key]}
            attrs["stroke-width"] = "2.5"
            if kind == "dash":
                attrs["stroke-dasharray"] = "6 3"
            ET.SubElement(legend, "line", attrs)
        _text(legend, x + 24, y_legend, label)
        x += 24 + 7 * len(label) + 14


def _event_list(svg: ET.Element, list_top: float, events: Sequence[Event]) -> None:
    listing = ET.SubElement(svg, "g", {"class": "event-list"})
    _text(listing, PLOT_LEFT, list_top - 8, "Decisions", **{"font-weight": "bold"})
    if not events:
        _text(listing, PLOT_LEFT, list_top + 14, "none: the policy did nothing on this trace")
    for number, event in enumerate(events, start=1):
        _text(
            listing,
            PLOT_LEFT,
            list_top + 14 + 22 * (number - 1),
            f"{number}.  t={event.t:g}s  {event.event}  {event.reason}",
            **{"class": "event-line"},
        )


def _title(text: str) -> ET.Element:
    element = ET.Element("title")
    element.text = text
    return element


def _line(x1: float, y1: float, x2: float, y2: float) -> dict[str, str]:
    return {"x1": f"{x1:.1f}", "y1": f"{y1:.1f}", "x2": f"{x2:.1f}", "y2": f"{y2:.1f}"}


def _series(svg: ET.Element, key: str, xy: list[tuple[float, float] | None]) -> None:
    """A polyline per stretch of known values: a gap where the value was unknown."""
    runs: list[list[tuple[float, float]]] = [[]]
    for here in xy:
        if here is None:
            runs.append([])
        else:
            runs[-1].append(here)
    runs = [run for run in runs if run]
    if not runs:
        return
    group = ET.SubElement(svg, "g", {"class": f"series series-{key}"})
    for run in runs:
        ET.SubElement(
            group,
            "polyline",
            {
                "points": " ".join(f"{x:.1f},{y:.1f}" for x, y in run),
                "fill": "none",
                "stroke": COLORS[key],
                "stroke-width": "2.5",
            },
        )
        for x, y in run:
            ET.SubElement(
                group,
                "circle",
                {"cx": f"{x:.1f}", "cy": f"{y:.1f}", "r": "2.5", "fill": COLORS[key]},
            )
