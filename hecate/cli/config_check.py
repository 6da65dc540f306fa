"""What `hecate config check` does, without typer: a plain `hecate config check` runs on the lean
path (hecate.cli.read_run); hecate.cli.cmd_config is its typer face (help, usage errors)."""

from __future__ import annotations

from pathlib import Path

from hecate.cli.common import emit_json
from hecate.cli.config_files import file_use_problems
from hecate.cli.exits import EXIT_USAGE
from hecate.cli.out import echo
from hecate.config.checks import resolve_problems, secret_file_warnings
from hecate.config.load import DEFAULT_CONFIG_PATH
from hecate.config.snapshot import load_view_kept
from hecate.errors import ConfigError

# The files the daemon cannot start without (it reads the NUT password once at start and exits
# without it). `--daemon-start` refuses only these; the rest of the file checks are warnings.
START_FILES = ("ups.password_file",)


def _refuse(message: str, problems: list[str], as_json: bool) -> int:
    if as_json:
        emit_json({"valid": False, "error": message, "problems": problems})
    else:
        echo(f"error: {message}", err=True)
        for problem in problems:
            echo(f"  - {problem}", err=True)
    return EXIT_USAGE


def check_config(
    config: Path = DEFAULT_CONFIG_PATH,
    *,
    as_json: bool = False,
    resolve: bool = False,
    daemon_start: bool = False,
) -> int:
    """The check (cmd_config.check's help says what it refuses); the exit code."""
    try:
        # the config's view, or its errors: validated once per config text, then read without
        # pydantic (hecate.config.view); the files it names are looked at live, below
        loaded = load_view_kept(config)
    except ConfigError as exc:
        return _refuse(exc.message, exc.problems, as_json)
    files = file_use_problems(loaded)
    listens = resolve_problems(loaded) if resolve else []
    if daemon_start:
        errors = listens + [f for f in files if f.startswith(START_FILES)]
        warnings = [f for f in files if not f.startswith(START_FILES)]
    else:
        errors, warnings = [*listens, *files], []
    named = {problem.split(":", 1)[0] for problem in files}
    warnings += [w for w in secret_file_warnings(loaded) if w.split(":", 1)[0] not in named]
    warnings += loaded.power.exposure_warnings()
    if errors:
        return _refuse(f"{config}: {len(errors)} problem(s)", errors, as_json)
    if as_json:
        emit_json({"valid": True, "warnings": warnings, "config": loaded.as_json})
        return 0
    for warning in warnings:
        echo(f"warning: {warning}", err=True)
    nodes = loaded.nodes
    echo(
        f"{config}: valid ({len(nodes.servers)} server(s), {len(nodes.agents)} agent(s), "
        f"role {loaded.coordination.role}, UPS {loaded.ups.target})"
    )
    return 0
