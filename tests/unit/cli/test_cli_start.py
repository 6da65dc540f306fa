"""`hecate --help` and `hecate status` start fast because the entry point imports only what a
command needs. Checked in a fresh interpreter (subprocess), so what this test process already
imported cannot hide an eager import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from hecate.cli.main import COMMANDS, app, load_command

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "configs" / "hecate.example.yaml"

# Modules a command needs only when it talks to the cluster, runs Ansible or serves HTTP.
HEAVY = (
    "lightkube",
    "ansible_runner",
    "waitress",
    "prometheus_client",
    "hecate.adapters.kube",
    "hecate.drills",
)
# ... and, for the top-level help, not even the config models.
HELP_HEAVY = (*HEAVY, "pydantic", "hecate.config", "yaml", "rich")

PROBE = """
import json, sys
{body}
print(json.dumps(sorted(sys.modules)))
"""


def _modules_after(body: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(body=body)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=ROOT,
    )
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def _run_probe(body: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(body=body)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=ROOT,
    )
    return done.stdout.strip().splitlines()


def _loaded(modules: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes))


def test_importing_the_entry_point_loads_no_heavy_module() -> None:
    modules = _modules_after("import hecate.cli.main")
    assert _loaded(modules, HELP_HEAVY) == []
    assert "hecate.cli.main" in modules  # the probe really imported it


def test_top_level_help_loads_no_command_module() -> None:
    body = (
        "import contextlib, io\n"
        "from hecate.cli.main import run\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    code = run(['--help'])\n"
        "assert code == 0 and 'status' in out.getvalue(), out.getvalue()\n"
    )
    modules = _modules_after(body)
    assert _loaded(modules, HELP_HEAVY) == []
    assert not [m for m in modules if m.startswith("hecate.cli.cmd_")]


def test_status_loads_no_cluster_ansible_or_http_module(tmp_path: Path) -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["state_dir"] = str(tmp_path / "state")
    data["ups"]["password_file"] = str(tmp_path / "absent")  # no NUT traffic: "not readable"
    config = tmp_path / "hecate.yaml"
    config.write_text(yaml.safe_dump(data))
    body = (
        "import contextlib, io\n"
        "from hecate.cli.main import run\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        f"    run(['status', '--config', {str(config)!r}, '--json'])\n"
        "assert 'intent' in json.loads(out.getvalue()), out.getvalue()\n"
    )
    modules = _modules_after(body)
    assert _loaded(modules, HEAVY) == []
    assert "hecate.cli.cmd_status" in modules  # status really ran
    assert (
        _loaded(
            modules,
            (
                "hecate.flows.context",
                "hecate.adapters.ansible.port",
                "hecate.adapters.metrics.registry",
            ),
        )
        == []
    )
    assert _loaded(modules, ("hecate.cli.outage_svg", "xml", "rich")) == []  # pictures, fancy help


def test_loading_a_command_freezes_start_up_objects_and_leaves_the_collector_on(
    tmp_path: Path,
) -> None:
    """Start-up objects (modules, classes) are moved out of the collector's sight once the
    first command is loaded, so later collections (the config's validator build, the daemon's
    polls) do not walk them again; the collector itself is left as the caller had it."""
    data = yaml.safe_load(EXAMPLE.read_text())
    data["state_dir"] = str(tmp_path / "state")
    data["ups"]["password_file"] = str(tmp_path / "absent")
    config = tmp_path / "hecate.yaml"
    config.write_text(yaml.safe_dump(data))
    body = (
        "import contextlib, gc, io\n"
        "from hecate.cli.main import run\n"
        "assert gc.get_freeze_count() == 0\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    run(['status', '--config', {str(config)!r}, '--json'])\n"
        "print(json.dumps([gc.isenabled(), gc.get_freeze_count()]))\n"
        "gc.disable()\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    run(['inventory', '--help'])\n"
        "print(json.dumps([gc.isenabled(), gc.get_freeze_count()]))\n"
    )
    lines = _run_probe(body)
    after_status, after_disabled = (json.loads(line) for line in lines[:2])
    assert after_status[0] is True
    assert after_status[1] > 10_000  # typer, pydantic and the config models, at least
    assert after_disabled[0] is False  # the caller's choice is kept
    assert after_disabled[1] <= after_status[1]  # only the first load freezes (frozen die)


def test_console_script_turns_pydantic_plugins_off() -> None:
    """`main` (the console script, `python -m hecate`) sets PYDANTIC_DISABLE_PLUGINS unless the
    operator set it: no entry-point scan at the first validator, no third-party hook into
    config validation."""
    body = (
        "import os\n"
        "os.environ.pop('PYDANTIC_DISABLE_PLUGINS', None)\n"
        "from hecate.cli import entry\n"
        "entry.sys.argv = ['hecate', 'version']\n"
        "try:\n"
        "    entry.main()\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code\n"
        "print(json.dumps(os.environ.get('PYDANTIC_DISABLE_PLUGINS')))\n"
    )
    assert _run_probe(body)[-2] == '"__all__"'


@pytest.mark.parametrize("name", list(COMMANDS))
def test_listed_help_line_is_the_commands_own(name: str) -> None:
    """The top-level listing shows COMMANDS' line without importing; it must not drift from
    the command's own help (its first paragraph, or the typer group's help)."""
    command = load_command(name)
    first = " ".join((command.help or "").split("\n\n")[0].split())
    assert first == COMMANDS[name].short_help


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_listed_command_loads_and_has_help(name: str) -> None:
    result = CliRunner().invoke(app, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert f"hecate {name}" in result.output


def test_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(app, ["no-such-command"])
    assert result.exit_code == 2
    assert "No such command" in result.output


def test_idle_daemon_loads_no_cluster_or_ansible_module() -> None:
    """The daemon's idle RSS target (<= 40 MB) holds because lightkube and ansible_runner load
    with the first flow, not at start (bench/daemon.py measures the RSS itself)."""
    modules = _modules_after("import hecate.cli.cmd_daemon")
    assert (
        _loaded(
            modules,
            ("lightkube", "ansible_runner", "hecate.adapters.kube", "hecate.adapters.probes"),
        )
        == []
    )
    assert "hecate.daemon.service" in modules
