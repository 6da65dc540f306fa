"""The `hecate` entry point: commands are registered here; errors become exit codes only here."""

from __future__ import annotations

import sys

import typer

from hecate import __version__
from hecate.cli import cmd_config, cmd_drill, cmd_outage, cmd_state
from hecate.cli.cmd_daemon import daemon_command
from hecate.cli.cmd_doctor import doctor_command
from hecate.cli.cmd_flows import shutdown_command, startup_command
from hecate.cli.cmd_inventory import inventory_command
from hecate.cli.cmd_replay import replay_command
from hecate.cli.cmd_status import status_command
from hecate.cli.common import EXIT_CODES_HELP, EXIT_FAILED, EXIT_REFUSED, EXIT_USAGE, flat_help
from hecate.errors import ConfigError, GuardRefusedError, HecateError, TraceError

app = typer.Typer(
    name="hecate",
    help=(
        "Power protection and cold start for k3s clusters: watches a NUT UPS, shuts the "
        "cluster down in stages before the battery runs out, and starts it up again.\n\n"
        "Destructive commands are dry runs unless given --execute.\n\n" + EXIT_CODES_HELP
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(cmd_config.app, name="config")
app.add_typer(cmd_drill.app, name="drill")
app.add_typer(cmd_state.app, name="state")
app.add_typer(cmd_outage.outage_app, name="outage")
app.add_typer(cmd_outage.ups_app, name="ups")
app.command("startup", epilog=EXIT_CODES_HELP)(startup_command)
app.command("shutdown", epilog=EXIT_CODES_HELP)(shutdown_command)
app.command("status", epilog=EXIT_CODES_HELP)(status_command)
app.command("daemon", epilog=EXIT_CODES_HELP)(daemon_command)
app.command("inventory", epilog=EXIT_CODES_HELP)(inventory_command)
app.command("replay", epilog=EXIT_CODES_HELP)(replay_command)
app.command("doctor", epilog=EXIT_CODES_HELP, help=flat_help(doctor_command))(doctor_command)


@app.command("version")
def version() -> None:
    """Print the Hecate version."""
    typer.echo(__version__)


def exit_code_for(error: HecateError) -> int:
    if isinstance(error, ConfigError | TraceError):
        return EXIT_USAGE
    if isinstance(error, GuardRefusedError):
        return EXIT_REFUSED
    return EXIT_FAILED


def run(argv: list[str] | None = None) -> int:
    """Console-script entry: the single edge where errors turn into messages and exit codes."""
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="hecate", standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        return EXIT_FAILED
    except typer.TyperException as exc:  # usage errors: bad option, missing argument, ...
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            typer.echo(f"error: {exc}", err=True)
        return EXIT_USAGE
    except ConfigError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        for problem in exc.problems:
            typer.echo(f"  - {problem}", err=True)
        return EXIT_USAGE
    except HecateError as exc:
        typer.echo(f"error: {exc}", err=True)
        return exit_code_for(exc)
    return int(result) if isinstance(result, int) else 0


def main() -> None:
    sys.exit(run())
