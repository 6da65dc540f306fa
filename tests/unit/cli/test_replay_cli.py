"""`hecate replay` as a new operator meets it (issue 23, item 9): without a config, by a shipped
trace's name, and a picture whose decision markers never hide each other."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hecate.cli import replay_run
from hecate.cli.main import run
from hecate.cli.outage_svg import (
    MARKER_PITCH,
    PLOT_LEFT,
    PLOT_RIGHT,
    marker_rows,
    render_outage_svg,
)
from hecate.core.policy.values import Event
from hecate.core.trace import BUNDLED_TRACES_DIR, bundled_traces, load_trace

NS = {"s": "http://www.w3.org/2000/svg"}
SHIPPED = sorted(p.stem for p in BUNDLED_TRACES_DIR.glob("*.jsonl"))
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def no_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The default config path points at nothing (as on a machine Hecate is not installed on)
    and the defaults' state_dir holds no history."""
    missing = tmp_path / "etc" / "hecate.yaml"
    monkeypatch.setattr(replay_run, "DEFAULT_CONFIG_PATH", missing)
    return missing


def test_replay_runs_on_the_defaults_without_a_config_and_says_so(
    no_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = BUNDLED_TRACES_DIR / "clean-outage.jsonl"
    assert run(["replay", str(trace), "--json"]) == 0
    captured = capsys.readouterr()
    assert "no config: using the defaults" in captured.err
    events = [json.loads(line) for line in captured.out.splitlines()]
    assert any(e["event"] == "trigger_shutdown" and e["t"] == 35 for e in events)


def test_replay_keeps_the_configs_cap_on_time_on_battery(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # issue 27 item 7, as the "done when" puts it: ups.max_on_battery_seconds: 120
    # triggers a shutdown 120 s into the outage while the UPS still claims 1500 s
    config = tmp_path / "hecate.yaml"
    config.write_text(
        f"state_dir: {tmp_path / 'state'}\nnodes: {{servers: [s1]}}\n"
        "ups: {target: pyrphoros@localhost, max_on_battery_seconds: 120}\n"
    )
    assert run(["replay", "lying-battery", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "shutdown after 120s on battery whatever the runtime" in out.splitlines()[0]
    assert run(["replay", "lying-battery", "--config", str(config), "--json"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    [trigger] = [e for e in events if e["event"] == "trigger_shutdown"]
    assert (trigger["t"], trigger["runtime_s"]) == (125, 1500)
    assert "(ups.max_on_battery_seconds 120)" in trigger["reason"]


def test_a_config_given_by_name_must_exist(
    no_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Only the default path may be absent: a --config that names nothing is an operator's typo.
    assert run(["replay", "blip", "--config", str(tmp_path / "typo.yaml")]) == 2
    captured = capsys.readouterr()
    assert "no such config file" in captured.err
    assert "using the defaults" not in captured.err


UNREADABLE_PROBE = """
import sys
import tempfile
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from hecate.cli import replay_run
from hecate.cli.main import run
replay_run.DEFAULT_CONFIG_PATH = Path(sys.argv[2])
sys.exit(run(["replay", "blip"]))
"""


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root to drop to nobody"
)
def test_an_unreadable_default_config_is_an_error_not_the_defaults() -> None:
    # as the installer leaves it: /etc/hecate 0750, entered by no one but root and hecate
    base = Path(tempfile.mkdtemp(prefix="hecate-replay-"))
    try:
        base.chmod(0o755)
        locked = base / "etc-hecate"
        locked.mkdir()
        (locked / "hecate.yaml").write_text("ups: {target: ups@localhost}\n")
        locked.chmod(0)
        as_nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
        done = subprocess.run(
            [*as_nobody, sys.executable, "-c", UNREADABLE_PROBE, str(REPO), str(locked / "x")],
            capture_output=True,
            text=True,
            timeout=60,
            cwd="/",
            check=False,
        )
    finally:
        (base / "etc-hecate").chmod(0o700)
        shutil.rmtree(base)
    # main: PermissionError traceback; a silent fallback would exit 0 on other settings
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "permission denied): pass --config or --default-config" in done.stderr
    assert "using the defaults" not in done.stderr


def test_a_directory_named_like_a_shipped_trace_does_not_hide_it(
    no_config: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "blip").mkdir()
    monkeypatch.chdir(tmp_path)
    assert run(["replay", "blip", "--json"]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_traces_replay_by_name(
    name: str, no_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["replay", name, "--json"]) == 0
    by_name = capsys.readouterr().out
    assert run(["replay", f"{name}.jsonl", "--json"]) == 0
    with_suffix = capsys.readouterr().out
    assert by_name == with_suffix
    assert by_name  # every shipped trace makes at least one decision


def test_a_file_of_the_same_name_wins_over_a_shipped_trace(
    no_config: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("blip").write_text('{"t": 0, "status": "OL"}\n{"t": 5, "status": "FSD OL"}\n')
    assert run(["replay", "blip", "--json"]) == 0
    events = [json.loads(line)["event"] for line in capsys.readouterr().out.splitlines()]
    assert events == ["trigger_shutdown"]


def test_an_unknown_name_lists_the_shipped_ones(
    no_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["replay", "no-such-trace"]) == 2
    err = capsys.readouterr().err
    assert "no shipped trace of that name" in err
    assert "clean-outage" in err
    assert run(["replay"]) == 2
    assert "hecate replay --list" in capsys.readouterr().err


def test_list_names_every_shipped_trace_with_what_it_shows(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(["replay", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == SHIPPED
    assert all(len(line.split(None, 1)) == 2 for line in lines)  # a description each
    assert run(["replay", "--list", "--json"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [t["name"] for t in listed] == SHIPPED
    assert all(Path(t["path"]).is_file() and t["about"] for t in listed)


def test_the_descriptions_do_not_change_what_a_trace_replays_to() -> None:
    for shipped in bundled_traces():
        assert shipped.about
        points = load_trace(shipped.path)
        assert points  # the `#` line is a comment, not a poll


def test_help_mentions_default_config_and_the_shipped_names() -> None:
    # a fresh interpreter: the help a person reads, wrapped as a terminal shows it
    done = subprocess.run(
        [sys.executable, "-m", "hecate", "replay", "--help"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    text = " ".join(done.stdout.split())
    assert done.returncode == 0
    assert "--default-config" in text
    assert "--list" in text
    assert "shipped trace" in text


# --- the picture: markers never hide each other ---------------------------------------------


def _translate(element: ET.Element) -> float:
    match = re.fullmatch(r"translate\(0 ([-\d.]+)\)", element.get("transform", "translate(0 0)"))
    assert match is not None
    return float(match.group(1))


def marker_boxes(svg: str) -> list[tuple[float, float, float, float]]:
    """Each decision marker's box (x0, y0, x1, y1) in the picture's own coordinates."""
    root = ET.fromstring(svg)  # noqa: S314 - Hecate's own output
    chart = root.find("s:g[@class='chart']", NS)
    assert chart is not None
    lift = _translate(chart)
    boxes = []
    for circle in chart.iterfind(".//s:g[@class='events']//s:circle", NS):
        cx, cy, r = (float(circle.get(k, "nan")) for k in ("cx", "cy", "r"))
        boxes.append((cx - r, cy - r + lift, cx + r, cy + r + lift))
    return boxes


def overlapping(boxes: list[tuple[float, float, float, float]]) -> list[tuple[int, int]]:
    return [
        (i, j)
        for (i, a), (j, b) in itertools.combinations(enumerate(boxes), 2)
        if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
    ]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_traces_draw_markers_that_do_not_overlap(name: str) -> None:
    from hecate.config.model import default_config  # noqa: PLC0415
    from hecate.core.policy.values import params_from_config  # noqa: PLC0415
    from hecate.core.replay import replay  # noqa: PLC0415

    points = load_trace(BUNDLED_TRACES_DIR / f"{name}.jsonl")
    events = replay(points, params_from_config(default_config(), 330.0))
    boxes = marker_boxes(render_outage_svg(points, events, 330.0, name))
    assert len(boxes) == len(events)
    assert overlapping(boxes) == []
    # on the picture: the axis is the decisions' clock (clock-step's wall clock jumps 1 h back,
    # which put every marker outside the plot when the axis was the wall clock)
    centres = [(x0 + x1) / 2 for x0, _, x1, _ in boxes]
    assert all(PLOT_LEFT <= cx <= PLOT_RIGHT for cx in centres), centres


def test_markers_at_one_moment_stack_clear_of_each_other_and_of_the_title() -> None:
    points = load_trace(BUNDLED_TRACES_DIR / "blip.jsonl")
    same = [Event(t=5.0, event="condition_met", reason=str(n), threshold_s=330.0,
                  runtime_s=250.0) for n in range(6)]  # fmt: skip
    close = [Event(t=10.0 + n * 0.01, event="on_battery", reason="x", threshold_s=330.0,
                   runtime_s=None) for n in range(4)]  # fmt: skip
    svg = render_outage_svg(points, [*same, *close], 330.0, "stacked")
    boxes = marker_boxes(svg)
    assert len(boxes) == 10
    assert overlapping(boxes) == []
    root = ET.fromstring(svg)  # noqa: S314
    height = float(root.get("height", "0"))
    title_bottom = 36.0  # the 18 px title's baseline is at y=30
    assert all(y0 >= title_bottom and y1 <= height for _, y0, _, y1 in boxes)
    # each marker keeps its moment: the six at t=5 share one x
    assert len({round(b[0], 1) for b in boxes[:6]}) == 1


def test_marker_rows_reuse_a_row_once_far_enough() -> None:
    assert marker_rows([]) == []
    assert marker_rows([100.0, 100.0, 100.0]) == [0, 1, 2]
    assert marker_rows([100.0, 100.0 + MARKER_PITCH, 100.0 + 2 * MARKER_PITCH]) == [0, 0, 0]
    assert marker_rows([100.0, 105.0, 130.0, 131.0]) == [0, 1, 0, 1]


def test_the_trigger_line_is_drawn_over_its_neighbours_lines() -> None:
    points = load_trace(BUNDLED_TRACES_DIR / "blip.jsonl")
    names = ["condition_met", "trigger_shutdown", "condition_met"]
    events = [Event(t=5.0, event=n, reason="", threshold_s=330.0, runtime_s=None) for n in names]
    root = ET.fromstring(render_outage_svg(points, events, 330.0, "t"))  # noqa: S314
    lines = root.findall(".//s:g[@class='event-lines']/s:line", NS)
    assert [line.get("stroke") for line in lines][-1] == "#c62828"  # red, painted last


def test_replay_leaves_a_corrupt_history_where_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a read-only command: it warns and uses the fallback budget, and moves nothing aside
    state = tmp_path / "state"
    state.mkdir()
    (state / "runs.json").write_text("{not json")
    config = tmp_path / "hecate.yaml"
    config.write_text(
        f"ups: {{target: ups@localhost}}\nstate_dir: {state}\nnodes: {{servers: [s1]}}\n"
    )
    assert run(["replay", "blip", "--config", str(config)]) == 0
    assert "fallback budget" in capsys.readouterr().err
    assert sorted(p.name for p in state.iterdir()) == ["runs.json"]


def test_a_reader_that_goes_away_ends_replay_quietly(tmp_path: Path) -> None:
    # `hecate replay TRACE | head`: the pipe is closed before replay writes; it stops with
    # 141 (a shell's 128 + SIGPIPE), no traceback
    proc = subprocess.Popen(
        [sys.executable, "-m", "hecate", "replay", "clean-outage"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 141, err
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
