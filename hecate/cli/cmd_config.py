"""`hecate config check`."""

from __future__ import annotations

from typing import Annotated, NoReturn

import typer

from hecate.cli.cmd_config_init import init_command
from hecate.cli.common import ConfigOpt, JsonOpt, emit_json, flat_help
from hecate.cli.config_files import file_use_problems
from hecate.cli.exits import EXIT_USAGE
from hecate.config.checks import resolve_problems, secret_file_warnings
from hecate.config.model import DEFAULT_CONFIG_PATH, load_config
from hecate.errors import ConfigError

app = typer.Typer(help="Inspect and validate the configuration.", no_args_is_help=True)
app.command("init", help=flat_help(init_command))(init_command)


# The files the daemon cannot start without (it reads the NUT password once at start and exits
# without it). `--daemon-start` refuses only these; the rest of the file checks are warnings.
START_FILES = ("ups.password_file",)


def _refuse(message: str, problems: list[str], as_json: bool) -> NoReturn:
    if as_json:
        emit_json({"valid": False, "error": message, "problems": problems})
    else:
        typer.echo(f"error: {message}", err=True)
        for problem in problems:
            typer.echo(f"  - {problem}", err=True)
    raise typer.Exit(EXIT_USAGE)


@app.command("check")
def check(
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
    as_json: JsonOpt = False,
    resolve: Annotated[
        bool,
        typer.Option(
            "--resolve",
            help="Also resolve metrics.listen and coordination.listen and check that this "
            "machine can bind them (run it on the machine that runs the daemon).",
        ),
    ] = False,
    daemon_start: Annotated[
        bool,
        typer.Option(
            "--daemon-start",
            help="The unit's gate before the daemon starts or reloads: refuse only what the "
            "daemon cannot run with (an invalid config, a missing ups.password_file); other "
            "file problems are warnings, so a missing kubeconfig or SSH key never keeps the "
            "daemon from watching the UPS.",
        ),
    ] = False,
) -> None:
    """Validate a config file and the files it names; list every problem by the key that holds
    it (exit 2 when any).

    Refuses what would fail later: addresses, ports and names outside their grammar (node and
    Kubernetes names, NUT user and command, Linux user, git branch; no control character
    anywhere), unknown keys (with the key meant), duplicate YAML keys, booleans given as
    numbers, .inf/.nan, empty values, a missing ups.target, cross-field conflicts, and every
    file the config names (kubeconfig, ssh_identity_file, ssh_config_file, ups.password_file,
    coordination.token_file, notify.urls_file, startup.gitea_bootstrap_manifests) that is
    missing, not a regular file, empty when it holds a secret (or, for notify.urls_file, holds a
    bad line), or unreadable by the daemon's user (run as root: the
    state dir's owner, judged by the modes as `hecate doctor` does). Warns when a secret file
    is open to others or group-writable.
    """
    try:
        loaded = load_config(config)
    except ConfigError as exc:
        _refuse(exc.message, exc.problems, as_json)
    files = file_use_problems(loaded)
    listens = resolve_problems(loaded) if resolve else []
    if daemon_start:
        errors = listens + [f for f in files if f.startswith(START_FILES)]
        warnings = [f for f in files if not f.startswith(START_FILES)]
    else:
        errors, warnings = [*listens, *files], []
    named = {problem.split(":", 1)[0] for problem in files}
    warnings += [w for w in secret_file_warnings(loaded) if w.split(":", 1)[0] not in named]
    if errors:
        _refuse(f"{config}: {len(errors)} problem(s)", errors, as_json)
    if as_json:
        emit_json({"valid": True, "warnings": warnings, "config": loaded.model_dump(mode="json")})
        return
    for warning in warnings:
        typer.echo(f"warning: {warning}", err=True)
    nodes = loaded.nodes
    typer.echo(
        f"{config}: valid ({len(nodes.servers)} server(s), {len(nodes.agents)} agent(s), "
        f"role {loaded.coordination.role}, UPS {loaded.ups.target})"
    )
