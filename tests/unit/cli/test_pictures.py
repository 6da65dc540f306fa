"""Outage pictures (SVG) and the outage / UPS report commands."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from hecate.cli.main import run
from hecate.cli.outage_svg import fmt_time, nice_ticks, render_outage_svg, time_ticks
from hecate.config.model import HecateConfig
from hecate.core.policy.values import Event
from hecate.core.readings import Poll, UpsReading, parse_status
from hecate.core.trace import load_trace
from tests.fakes import reads_ups
from tests.unit.cli.test_cli import config_file  # noqa: F401 - a fixture
from tests.unit.core.test_battery import write_liar_trace

TRACES = Path(__file__).resolve().parents[3] / "hecate" / "data" / "traces"
NS = {"s": "http://www.w3.org/2000/svg"}


@pytest.fixture
def ups(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Poll]]:
    current: list[Poll] = [UpsReading(parse_status("OL"), 1220, 100, 34)]

    def reader(_: HecateConfig) -> Poll:
        return current[0]

    reads_ups(monkeypatch, reader)
    yield current


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # noqa: S314 - Hecate's own output, written by this test


def classes(root: ET.Element) -> list[str]:
    return [e.get("class", "") for e in root.iter()]


def test_replay_draws_the_shipped_outage_with_its_events(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    picture = tmp_path / "clean.svg"
    trace = TRACES / "clean-outage.jsonl"
    assert run(["replay", "--default-config", str(trace), "--svg", str(picture), "--json"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    root = parse(picture.read_text())
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    marks = [c for c in classes(root) if c.startswith("event event-")]
    assert marks == [f"event event-{e['event']}" for e in events]
    assert "event event-trigger_shutdown" in marks
    listed = [t.text or "" for t in root.iterfind(".//s:text[@class='event-line']", NS)]
    assert len(listed) == len(events)
    assert any("trigger_shutdown" in line and "t=35s" in line for line in listed)
    assert {"band band-mains", "band band-battery"} <= set(classes(root))
    assert "threshold" in classes(root)
    texts = {t.text for t in root.iter("{http://www.w3.org/2000/svg}text")}
    assert {"shutdown threshold (330s)", "runtime (s)", "charge (%)", "on battery"} <= texts
    assert root.find(".//s:g[@class='series series-runtime']/s:polyline", NS) is not None


def test_lost_contact_is_a_band_and_a_gap_in_the_lines() -> None:
    points = load_trace(TRACES / "comm-loss-on-battery.jsonl")
    svg = render_outage_svg(points, [], 330.0, "comm loss")
    root = parse(svg)
    assert "band band-lost" in classes(root)
    readable = sum(1 for p in points if isinstance(p.poll, UpsReading))
    dots = root.findall(".//s:g[@class='series series-runtime']/s:circle", NS)
    assert len(dots) == readable  # nothing drawn where the UPS said nothing
    assert any("none: the policy did nothing" in (t.text or "") for t in root.iter())


def test_hostile_reasons_are_text_not_markup() -> None:
    points = load_trace(TRACES / "blip.jsonl")
    evil = Event(t=points[0].t, event="on_battery", reason="<script>x</script>&", threshold_s=1.0,
                 runtime_s=None)  # fmt: skip
    root = parse(render_outage_svg(points, [evil], 330.0, "<b>title</b>"))
    assert not list(root.iter("script")) and not list(root.iter("{*}script"))
    assert any("<script>x</script>&" in (t.text or "") for t in root.iter())


def test_ticks_are_round_and_cover_the_range() -> None:
    assert nice_ticks(0, 1800, cover=True) == [0, 500, 1000, 1500, 2000]
    assert nice_ticks(0, 110, 8) == [0, 20, 40, 60, 80, 100]
    assert time_ticks(310) == [0, 60, 120, 180, 240, 300]
    assert [fmt_time(t, 310) for t in time_ticks(310)][-1] == "5:00"
    assert fmt_time(20, 110) == "20s" and fmt_time(3725, 4000) == "1:02:05"


def test_outage_show_draws_the_last_recorded_outage(
    config_file: Path,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    write_liar_trace(tmp_path / "state")
    picture = tmp_path / "o.svg"
    assert run(["outage", "show", "-c", str(config_file), "--svg", str(picture), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["id"] == "20260101T000000Z"
    assert shown["battery"][0]["ratio"] == 0.5
    root = parse(picture.read_text())
    assert len([c for c in classes(root) if c.startswith("event event-")]) == len(shown["events"])
    assert run(["outage", "list", "-c", str(config_file), "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["id"] == "20260101T000000Z" and listed["ratio"] == 0.5
    assert run(["outage", "show", "nope", "-c", str(config_file)]) == 1
    assert "matches none" in capsys.readouterr().err


def test_ups_report_says_claimed_delivered_and_coverage(
    config_file: Path,  # noqa: F811
    tmp_path: Path,
    ups: list[Poll],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(["ups", "report", "-c", str(config_file)]) == 0
    assert "no usable outage yet" in capsys.readouterr().out
    write_liar_trace(tmp_path / "state")
    assert run(["ups", "report", "-c", str(config_file), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["correction"] == 0.5
    assert data["coverage"]["covered_s"] == 610.0 and data["coverage"]["ok"]
    assert run(["ups", "report", "-c", str(config_file)]) == 0
    out = capsys.readouterr().out
    assert "delivered/claimed 0.50" in out
    assert "advisory (ups.runtime_correction: learned applies it)" in out
    needed = data["coverage"]["needed_s"]
    assert f"at 34 % load the UPS covers about 610 s; a shutdown needs {needed:.0f} s" in out
