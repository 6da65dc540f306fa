"""What a person watching a run sees: human names in progress lines, one log line per node
event, colour only on a terminal, ISO 8601 times in JSON."""

from __future__ import annotations

import json
import logging
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hecate.adapters.ansible.port import AnsiblePort
from hecate.adapters.ansible.protocol import PlaybookRequest
from hecate.core.progress_names import node_line, stage_label, step_label
from hecate.daemon.wiring import log_progress
from tests.unit.adapters.ansible.test_ansible_port import FAIL_PLAYBOOK, make_port

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "configs" / "hecate.example.yaml"
K3S_STEP = "Read, change and confirm in one step k3s-agent"


# --------------------------------------------------------------------------- names


def test_progress_names_say_what_happened_to_the_node() -> None:
    assert node_line("stop_agents", "agent-1", K3S_STEP, "changed") == "agent-1: k3s-agent stopped"
    assert step_label("stop_agents", K3S_STEP, "ok") == "k3s-agent already stopped"
    assert step_label("start_servers", "Read, change and confirm in one step k3s", "changed") == (
        "k3s started"
    )
    assert step_label("stop_agents", K3S_STEP, "failed") == "could not stop k3s-agent"
    assert step_label("stop_agents", "Change with become stop k3s-agent", "changed") == (
        "k3s-agent stopped"
    )
    power = "Power off, or write the marker, in one step"
    assert step_label("poweroff_agents", power, "changed") == "poweroff started"
    # a task without a mapping reads as its own sentence
    assert step_label("time_sync", "Read the node clock", "ok") == "read the node clock"
    for raw in (K3S_STEP, power, "Change with become stop k3s-agent"):
        for status in ("ok", "changed", "failed", "unreachable"):
            assert "in one step" not in step_label("stop_agents", raw, status)
            assert "become" not in step_label("stop_agents", raw, status)


def test_stage_labels_are_words() -> None:
    assert stage_label("stop_agents") == "stop k3s on agents"
    assert stage_label("flux_suspend") == "suspend Flux"
    assert stage_label("something_new") == "something new"


def test_the_cli_progress_line_shows_human_names(capsys: pytest.CaptureFixture[str]) -> None:
    from hecate.cli.execute import StageProgress  # noqa: PLC0415

    progress = StageProgress()
    progress.tty = True  # per-node lines are shown on a terminal
    progress("stop_agents", "changed", node_line("stop_agents", "agent-1", K3S_STEP, "changed"))
    line = capsys.readouterr().err
    assert "stop k3s on agents" in line and "agent-1: k3s-agent stopped" in line
    assert "stop_agents" not in line and "in one step" not in line


# --------------------------------------------------------------------------- one log line


def test_a_failed_node_task_is_logged_once_by_the_daemon(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A flow passes its progress callback (the daemon's log_progress) to the port: the port
    must not log the same event again (it did: every node line was in the journal twice)."""
    playbook = tmp_path / "fail.yml"
    playbook.write_text(FAIL_PLAYBOOK)

    def on_event(event: object) -> None:  # what a flow's on_event does (flows/context.py)
        status = getattr(event, "status", "")
        if status in ("ok", "changed", "failed", "unreachable"):
            host, task = getattr(event, "host", ""), getattr(event, "task", "")
            log_progress("stop_agents", status, node_line("stop_agents", host, task, status))

    caplog.set_level(logging.DEBUG)
    port: AnsiblePort
    with make_port(tmp_path) as port:
        result = port.run(PlaybookRequest(str(playbook)), on_event=on_event)
    assert result.failed_hosts == ["b"]
    about_b = [
        r
        for r in caplog.records
        if r.levelno >= logging.WARNING and " b " in f" {r.getMessage()} ".replace(":", " ")
    ]
    assert len(about_b) == 1, [r.getMessage() for r in about_b]
    # without a callback the port still logs the event itself
    caplog.clear()
    with make_port(tmp_path / "again") as port:
        port.run(PlaybookRequest(str(playbook)))
    assert [r for r in caplog.records if r.levelno >= logging.WARNING and "Break b" in r.message]


# --------------------------------------------------------------------------- colour


def _config(tmp_path: Path) -> Path:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["state_dir"] = str(tmp_path / "state")
    data["ups"]["password_file"] = None
    data["ups"]["target"] = "pyrphoros@127.0.0.1:1"  # unreachable: a red line and a problem
    path = tmp_path / "hecate.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _on_a_terminal(args: list[str], env: dict[str, str]) -> bytes:
    controller, terminal = pty.openpty()
    try:
        subprocess.run(
            [sys.executable, "-m", "hecate", *args],
            stdout=terminal,
            stderr=terminal,
            env=env,
            timeout=60,
            check=False,
            cwd=ROOT,
        )
    finally:
        os.close(terminal)
    out = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the terminal's other side is closed, everything read
            break
        if not chunk:
            break
        out += chunk
    os.close(controller)
    return out


def test_colour_on_a_terminal_only_and_never_with_no_color(tmp_path: Path) -> None:
    config = _config(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env |= {"PYTHONPATH": str(ROOT), "TERM": "xterm"}
    args = ["status", "--config", str(config)]
    coloured = _on_a_terminal(args, env)
    assert b"\x1b[31m" in coloured, coloured  # the unreadable UPS, in red
    assert b"\x1b[" not in _on_a_terminal(args, env | {"NO_COLOR": "1"})
    piped = subprocess.run(
        [sys.executable, "-m", "hecate", *args],
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert b"\x1b[" not in piped.stdout + piped.stderr
    assert b"not readable" in piped.stdout


def test_colour_costs_no_heavy_import() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import sys, hecate.cli.style; print(sorted(sys.modules))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=ROOT,
    )
    assert "rich" not in done.stdout and "pydantic" not in done.stdout


# --------------------------------------------------------------------------- ISO times


def test_json_times_carry_an_iso_8601_twin(tmp_path: Path) -> None:
    from datetime import datetime  # noqa: PLC0415

    config = _config(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "hecate", "status", "--config", str(config), "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    intent = json.loads(done.stdout)["intent"]
    assert isinstance(intent["since"], float)  # the documented epoch field is unchanged
    parsed = datetime.fromisoformat(intent["since_iso"].replace("Z", "+00:00"))
    assert abs(parsed.timestamp() - intent["since"]) < 0.001
    assert intent["since_iso"].endswith("Z")


def test_iso_twins_only_for_wall_clock_times() -> None:
    from hecate.cli.common import with_iso_times  # noqa: PLC0415

    data = with_iso_times(
        {
            "runs": [{"started_at": 1_796_000_000.5, "ended_at": 1_796_000_100}],
            "replayed": {"since": 35.0},  # an offset into a trace, not a time
            "checked_at": None,
            "flag": {"since": True},
        }
    )
    assert data["runs"][0]["started_at_iso"] == "2026-11-30T00:53:20.500Z"
    assert data["runs"][0]["ended_at_iso"] == "2026-11-30T00:55:00.000Z"
    assert "since_iso" not in data["replayed"]
    assert "checked_at_iso" not in data
    assert "since_iso" not in data["flag"]
