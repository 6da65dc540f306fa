"""`hecate config check`."""

from __future__ import annotations

from typing import Annotated

import typer

from hecate.cli.cmd_config_init import init_command
from hecate.cli.common import ConfigOpt, JsonOpt, emit_json, flat_help
from hecate.cli.exits import EXIT_USAGE
from hecate.config.checks import resolve_problems, secret_file_errors, secret_file_warnings
from hecate.config.model import DEFAULT_CONFIG_PATH, load_config
from hecate.errors import ConfigError

app = typer.Typer(help="Inspect and validate the configuration.", no_args_is_help=True)
app.command("init", help=flat_help(init_command))(init_command)


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
) -> None:
    """Validate a config file; list every invalid field by its path (exit 2 when invalid).

    Refuses what would fail later: addresses and ports outside the grammar, node names that are
    not RFC 1123 host names, duplicate YAML keys, booleans given as numbers, .inf/.nan, empty
    values, metrics and coordination on the same port, min_samples above history_window, and a
    missing ups.password_file (the daemon cannot start without it). Warns when a secret file
    (ups.password_file, coordination.token_file) is open to others or group-writable, or when
    coordination.token_file is missing.
    """
    try:
        loaded = load_config(config)
        if resolve:
            problems = resolve_problems(loaded)
            if problems:
                raise ConfigError(
                    f"{config}: {len(problems)} listen address(es) unusable", problems
                )
    except ConfigError as exc:
        if as_json:
            emit_json({"valid": False, "error": exc.message, "problems": exc.problems})
        else:
            typer.echo(f"error: {exc.message}", err=True)
            for problem in exc.problems:
                typer.echo(f"  - {problem}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    errors = secret_file_errors(loaded)
    if errors:
        message = f"{config}: {len(errors)} missing secret file(s)"
        if as_json:
            emit_json({"valid": False, "error": message, "problems": errors})
        else:
            typer.echo(f"error: {message}", err=True)
            for problem in errors:
                typer.echo(f"  - {problem}", err=True)
        raise typer.Exit(EXIT_USAGE)
    warnings = secret_file_warnings(loaded)
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
