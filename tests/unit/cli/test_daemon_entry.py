"""`hecate daemon` starts without typer (hecate.cli.daemon_run), and says the same as the CLI.

The lean path only recognises a well-formed invocation; everything else goes to typer, which
gives the help and the usage errors. These tests keep the two in step and show the lean path
really runs the daemon, with typer never imported.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hecate.cli.daemon_run import DaemonArgs, parse_daemon_argv
from hecate.cli.main import load_command
from hecate.config.load import DEFAULT_CONFIG_PATH
from tests.testbed.fake_upsd import ON_MAINS, FakeUpsd, answer

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["daemon"], DaemonArgs()),
        (["daemon", "--config", "/x.yaml"], DaemonArgs(Path("/x.yaml"))),
        (["daemon", "-c", "/x.yaml", "-v"], DaemonArgs(Path("/x.yaml"), True)),
        (["daemon", "--config=/x.yaml", "--verbose"], DaemonArgs(Path("/x.yaml"), True)),
        (["daemon", "--max-polls", "3"], DaemonArgs(DEFAULT_CONFIG_PATH, False, 3)),
        (["daemon", "--max-polls=0"], DaemonArgs(DEFAULT_CONFIG_PATH, False, 0)),
    ],
)
def test_a_plain_daemon_invocation_takes_the_lean_path(
    argv: list[str], expected: DaemonArgs
) -> None:
    assert parse_daemon_argv(argv) == expected


@pytest.mark.parametrize(
    ("argv", "why"),
    [
        (["status"], "another command"),
        ([], "no command"),
        (["daemon", "--help"], "help is typer's"),
        (["daemon", "-h"], "help is typer's"),
        (["daemon", "--config"], "a missing value is typer's usage error"),
        (["daemon", "--config="], "an empty path is typer's to refuse"),
        (["daemon", "--max-polls", "x"], "not a number: typer's usage error"),
        (["daemon", "--max-polls", "-1"], "not a count: typer's usage error"),
        (["daemon", "--verbsoe"], "a typo: typer says so"),
        (["daemon", "extra"], "an argument the command does not take"),
    ],
)
def test_anything_else_goes_to_typer(argv: list[str], why: str) -> None:
    assert parse_daemon_argv(argv) is None, why


def test_the_lean_parser_knows_exactly_the_typer_commands_options() -> None:
    """A new option on `daemon_command` must reach the lean parser too (or this fails)."""
    command = load_command("daemon")
    options = {opt for param in command.params for opt in param.opts}
    assert options == {"--config", "-c", "--verbose", "-v", "--max-polls"}


def _config(tmp_path: Path, target: str) -> Path:
    password = tmp_path / "nut-password"
    password.write_text("secret\n")
    password.chmod(0o600)
    path = tmp_path / "hecate.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "state_dir": str(tmp_path / "state"),
                "ups": {
                    "target": target,
                    "user": "hecate",
                    "password_file": str(password),
                    "poll_interval_seconds": 0.05,
                    "auth_check": "none",
                },
                "metrics": {"listen": "127.0.0.1:0"},
                "nodes": {"servers": ["s0"]},
                "ssh_node_hosts": {"s0": "127.0.0.1"},
            }
        )
    )
    return path


PROBE = """
import json, sys
sys.argv = ['hecate', 'daemon', '--config', {config!r}, '--max-polls', '3']
from hecate.cli import entry
try:
    entry.main()
except SystemExit as exc:
    print(json.dumps([exc.code, 'typer' in sys.modules, 'hecate.daemon.service' in sys.modules]))
"""


def test_the_daemon_runs_on_the_lean_path_without_typer(tmp_path: Path) -> None:
    with FakeUpsd({"LIST VAR pyrphoros": answer(*ON_MAINS)}) as upsd:
        config = _config(tmp_path, upsd.target())
        done = subprocess.run(
            [sys.executable, "-c", PROBE.format(config=str(config))],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
            check=False,
        )
    code, typer_loaded, daemon_loaded = json.loads(done.stdout.splitlines()[-1])
    assert (code, daemon_loaded) == (0, True), done.stderr
    assert typer_loaded is False


def test_a_bad_config_says_the_same_on_both_paths(tmp_path: Path) -> None:
    path = tmp_path / "hecate.yaml"
    path.write_text("ups: {debounce_polls: on}\n")
    lean = subprocess.run(
        [sys.executable, "-m", "hecate", "daemon", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    typer_path = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from hecate.cli.main import run; "
            f"sys.exit(run(['daemon', '--config', {str(path)!r}]))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert lean.returncode == typer_path.returncode == 2
    assert lean.stderr.startswith("error: ")
    assert "ups.debounce_polls" in lean.stderr
    assert lean.stderr == typer_path.stderr
