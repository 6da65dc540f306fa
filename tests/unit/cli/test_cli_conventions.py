"""CLI conventions (issue 23, items 7 and 11), through the real entry point in a subprocess
(`python -m hecate`): the JSON error object, --version, -h, shell completion, no library
wording, read-only commands that change nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from hecate.core.readings import UpsReading, parse_reading

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "configs" / "hecate.example.yaml"
TRACE = ROOT / "hecate" / "data" / "traces" / "clean-outage.jsonl"


def hecate(
    *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "hecate", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
        env=full_env,
    )


def _unreachable_config(tmp_path: Path) -> Path:
    """The example config with its UPS on a port nothing listens on (no NUT traffic)."""
    data = yaml.safe_load(EXAMPLE.read_text())
    data["state_dir"] = str(tmp_path / "state")
    data["ups"]["password_file"] = None
    data["ups"]["target"] = "pyrphoros@127.0.0.1:1"
    path = tmp_path / "hecate.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _error_object(done: subprocess.CompletedProcess[str], code: int) -> dict[str, Any]:
    assert done.returncode == code, (done.stdout, done.stderr)
    assert done.stdout.strip(), f"nothing on stdout; stderr: {done.stderr}"
    data: dict[str, Any] = json.loads(done.stdout)
    assert data["ok"] is False
    assert data["exit_code"] == code
    assert data["message"]
    assert data["errors"] and all(set(e) == {"key", "message"} for e in data["errors"])
    return data


# --------------------------------------------------------------------------- exit codes, JSON


BAD_CONFIG_COMMANDS = [
    ["status"],
    ["startup"],
    ["shutdown"],
    ["inventory"],
    ["outage", "list"],
    ["ups", "report"],
    ["state", "reset", "--intent"],
    ["drill", "run", "api-restart"],
    ["replay", str(TRACE)],
]


@pytest.mark.parametrize("command", BAD_CONFIG_COMMANDS, ids=" ".join)
def test_every_command_prints_a_json_error_object_for_a_bad_config(
    tmp_path: Path, command: list[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("ups:\n  debounce_polls: zero\n  colour: red\n")
    done = hecate(*command, "--config", str(bad), "--json")
    data = _error_object(done, 2)
    keys = {e["key"] for e in data["errors"]}
    assert {"ups.debounce_polls", "ups.colour"} <= keys, data
    assert "error:" in done.stderr  # the human line stays on stderr


def test_a_missing_config_and_a_usage_error_print_the_error_object_too(tmp_path: Path) -> None:
    missing = _error_object(hecate("status", "--config", str(tmp_path / "no.yaml"), "--json"), 2)
    assert missing["errors"][0]["key"] is None
    assert "no such config file" in missing["message"]

    bad_option = _error_object(hecate("shutdown", "--mode", "foo", "--json"), 2)
    assert bad_option["errors"][0]["key"] == "--mode"
    no_such = _error_object(hecate("status", "--json", "--colour"), 2)
    assert no_such["errors"][0]["key"] == "--colour"
    reset = _error_object(hecate("state", "reset", "--json"), 2)
    assert reset["errors"][0]["key"] == "--intent"


def test_without_json_stdout_stays_empty_on_failure(tmp_path: Path) -> None:
    done = hecate("status", "--config", str(tmp_path / "no.yaml"))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("error: ")


def test_status_exits_4_when_the_ups_cannot_be_read(tmp_path: Path) -> None:
    config = _unreachable_config(tmp_path)
    text = hecate("status", "--config", str(config))
    assert text.returncode == 4, (text.stdout, text.stderr)
    assert "the cluster is not protected" in text.stderr
    as_json = hecate("status", "--config", str(config), "--json")
    assert as_json.returncode == 4
    report = json.loads(as_json.stdout)  # the status report itself, not an error object
    assert report["protected"] is False and "intent" in report


def test_status_exits_4_when_the_last_doctor_run_found_a_hole(tmp_path: Path) -> None:
    from hecate.cli.status_show import not_protected_reasons  # noqa: PLC0415
    from hecate.core.readings import parse_status  # noqa: PLC0415

    reading = UpsReading(parse_status("OL"), 1800, 100)
    assert not_protected_reasons(reading, {"protected": True}) == []
    assert not_protected_reasons(reading, None) == []
    assert not_protected_reasons(reading, {"protected": False})
    assert not_protected_reasons(UpsReading(parse_status("WAIT")), None)  # no data
    assert not_protected_reasons(UpsReading(frozenset()), None)


def test_help_documents_exit_code_4() -> None:
    done = hecate("--help")
    assert "4 not protected" in " ".join(done.stdout.split())


# --------------------------------------------------------------------------- conventions


def test_version_flag_and_command_and_short_help() -> None:
    from hecate import __version__  # noqa: PLC0415

    flag = hecate("--version")
    command = hecate("version")
    assert flag.returncode == 0 and command.returncode == 0
    assert flag.stdout.strip() == command.stdout.strip() == __version__
    short = hecate("-h")
    assert short.returncode == 0 and "Usage: hecate" in short.stdout
    assert short.stdout == hecate("--help").stdout
    sub = hecate("status", "-h")
    assert sub.returncode == 0 and "Usage: hecate status" in sub.stdout
    group = hecate("config", "-h")
    assert group.returncode == 0 and "check" in group.stdout


def test_shell_completion_script_and_answers() -> None:
    script = hecate("--show-completion", "bash")
    assert script.returncode == 0 and "_HECATE_COMPLETE" in script.stdout
    env = {"_HECATE_COMPLETE": "complete_bash", "COMP_WORDS": "hecate sta", "COMP_CWORD": "1"}
    words = hecate(env=env).stdout.split()
    assert {"status", "startup", "state"} <= set(words)
    env = {**env, "COMP_WORDS": "hecate shutdown --mode ", "COMP_CWORD": "3"}
    assert set(hecate(env=env).stdout.split()) == {"poweroff", "cluster-only"}


def test_usage_errors_carry_no_library_wording() -> None:
    done = hecate("shutdown", "--mode", "foo")
    assert done.returncode == 2
    assert "'foo' is not one of 'poweroff', 'cluster-only'" in done.stderr
    assert "Value error" not in done.stderr
    number = hecate("daemon", "--max-polls", "abc")
    assert number.returncode == 2
    assert "'--max-polls': expected an integer" in number.stderr
    assert "Input should be" not in number.stderr and "parse string" not in number.stderr


def test_flags_keep_nuts_order() -> None:
    assert parse_reading({"ups.status": "OB DISCHRG"}).status_text == "OB DISCHRG"
    assert parse_reading({"ups.status": "OB DISCHRG LB"}).status_text == "OB DISCHRG LB"
    # a reading built from a set (traces, tests): NUT's documented order
    assert UpsReading(frozenset({"DISCHRG", "OB"})).status_text == "OB DISCHRG"
    assert UpsReading(frozenset({"ZZZ", "OL", "CHRG"})).status_text == "OL CHRG ZZZ"


# --------------------------------------------------------------------------- read-only


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*")}


def test_read_only_commands_change_nothing_in_the_state_dir(tmp_path: Path) -> None:
    config = _unreachable_config(tmp_path)
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    for name in (
        "intent.json",
        "runs.json",
        "last-shutdown-report.json",
        "startup-progress.json",
    ):
        (state / name).write_text("{corrupt")
    before = _snapshot(state)
    status = hecate("status", "--config", str(config), "--json")
    assert status.returncode == 4, status.stderr  # the UPS is unreachable
    assert json.loads(status.stdout)["intent"]["state"] == "unknown"
    dry = hecate("startup", "--config", str(config), "--json")
    assert dry.returncode == 3, dry.stderr  # refused: the intent is unknown
    for command in (["ups", "report"], ["outage", "list"]):
        hecate(*command, "--config", str(config))
    assert _snapshot(state) == before  # nothing moved aside, no block marker written
