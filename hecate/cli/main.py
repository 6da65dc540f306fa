"""The `hecate` entry point: commands are registered here; errors become exit codes only here.

Start-up time is part of the interface (`hecate --help` and `hecate status` answer within
0.3 s): this module imports only typer and the light `hecate.errors`. Each command's module,
with its pydantic models, Kubernetes and Ansible clients, is imported when that command runs
(`LazyGroup`); the top-level help lists the commands from `COMMANDS` without importing any.
Help is click's plain text (no rich: importing rich costs about 0.2 s of CPU on its own).
"""

from __future__ import annotations

import gc
import importlib
import re
import sys
from dataclasses import dataclass
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

from hecate import __version__
from hecate.cli.exits import EXIT_CODES_HELP, EXIT_FAILED, EXIT_USAGE
from hecate.cli.failure import (
    error_word,
    finish,
    json_failure,
    print_error_object,
    report_error,
    reset,
    wants_json,
)
from hecate.errors import HecateError


@dataclass(frozen=True)
class LazyCommand:
    """Where a command lives (`module:attribute`, a command function or a typer app) and the
    one-line help the top-level listing shows without importing it (a unit test keeps it
    equal to the command's own)."""

    target: str
    short_help: str
    flat_doc: bool = False  # help from the docstring with each paragraph on one line


# In the order `hecate --help` lists them.
COMMANDS: dict[str, LazyCommand] = {
    "startup": LazyCommand(
        "hecate.cli.cmd_flows:startup_command",
        "Bring the cluster up in stages (dry run unless --execute).",
    ),
    "shutdown": LazyCommand(
        "hecate.cli.cmd_flows:shutdown_command",
        "Shut the cluster down in stages (dry run unless --execute).",
    ),
    "status": LazyCommand(
        "hecate.cli.cmd_status:status_command",
        "Show the intent, the shutdown budget, the last runs and the UPS.",
    ),
    "daemon": LazyCommand(
        "hecate.cli.cmd_daemon:daemon_command",
        "Watch the UPS and shut down or start up the cluster when the policy says so.",
    ),
    "inventory": LazyCommand(
        "hecate.cli.cmd_inventory:inventory_command",
        "Print the inventory generated from the ssh_* settings (groups k3s_cluster, server, "
        "agent, managed).",
    ),
    "replay": LazyCommand(
        "hecate.cli.cmd_replay:replay_command",
        "Feed a recorded UPS trace through the shutdown policy and print each decision change.",
    ),
    "doctor": LazyCommand(
        "hecate.cli.cmd_doctor:doctor_command",
        "Check that the cluster is really protected; exit 0 only when it is.",
        flat_doc=True,
    ),
    "power": LazyCommand(
        "hecate.cli.cmd_power:app",
        "Each node's power, read and switched out of band: IPMI or Redfish BMCs, Wake-on-LAN.",
    ),
    "config": LazyCommand("hecate.cli.cmd_config:app", "Inspect and validate the configuration."),
    "drill": LazyCommand(
        "hecate.cli.cmd_drill:app",
        "Disruptive drills: break the cluster on purpose and prove Hecate recovers it. "
        "Dry run unless --execute; stop hecate.service while a drill runs.",
    ),
    "state": LazyCommand("hecate.cli.cmd_state:app", "Inspect and repair the state directory."),
    "recover": LazyCommand("hecate.cli.cmd_recover:app", "Recover the cluster's datastore."),
    "outage": LazyCommand(
        "hecate.cli.cmd_outage:outage_app",
        "Recorded outages (state_dir/traces): list them, show one, draw it as SVG.",
    ),
    "notify": LazyCommand(
        "hecate.cli.cmd_notify:app", "Notifications from the host: try the targets."
    ),
    "ups": LazyCommand(
        "hecate.cli.cmd_outage:ups_app", "What the UPS claims against what it delivered."
    ),
}


def _flat(text: str) -> str:
    return "\n\n".join(" ".join(part.split()) for part in text.split("\n\n"))


def load_command(name: str) -> TyperCommand | TyperGroup:
    """Import command `name`'s module and build its click command (plain-text help)."""
    spec = COMMANDS[name]
    module_name, _, attribute = spec.target.partition(":")
    target: Any = getattr(importlib.import_module(module_name), attribute)
    command: TyperCommand | TyperGroup
    if isinstance(target, typer.Typer):
        target.rich_markup_mode = None
        command = typer.main.get_group(target)
    else:
        single = typer.Typer(rich_markup_mode=None, add_completion=False)
        doc = _flat(target.__doc__ or "") if spec.flat_doc else None
        single.command(name, epilog=EXIT_CODES_HELP, help=doc)(target)
        built = typer.main.get_command(single)
        if not isinstance(built, TyperCommand):  # one function: typer builds a command
            raise TypeError(f"{spec.target} did not build a command")
        command = built
    command.name = name
    return command


def _load_frozen(name: str) -> TyperCommand | TyperGroup:
    """`load_command`, then the objects start-up made (modules, classes, pydantic's schema
    machinery) moved out of the collector's sight (`gc.freeze`). They live as long as the
    process; without this every later full collection walks them again: `hecate status`
    spent about 6 % of its instructions doing that (docs/benchmarks.md), the daemon pays it on
    every full collection. The collector is off while the imports run: they create almost no
    cycles, and collecting then would walk the same objects. Only the first load freezes: in a
    process that runs several commands (tests) later garbage stays collectable."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return load_command(name)
    finally:
        if gc.get_freeze_count() == 0:
            gc.freeze()
        if enabled:
            gc.enable()


class LazyGroup(TyperGroup):
    """The top-level group: commands from `COMMANDS`, each imported on first use."""

    def list_commands(self, ctx: Any) -> list[str]:
        return [*COMMANDS, *super().list_commands(ctx)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        loaded = super().get_command(ctx, cmd_name)
        if loaded is not None or cmd_name not in COMMANDS:
            return loaded
        if getattr(ctx, "_hecate_listing", False):  # the help listing: name and line only
            return TyperCommand(cmd_name, short_help=COMMANDS[cmd_name].short_help)
        command = _load_frozen(cmd_name)
        self.add_command(command, cmd_name)
        return command

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        ctx._hecate_listing = True
        try:
            super().format_commands(ctx, formatter)
        finally:
            ctx._hecate_listing = False


app = typer.Typer(
    name="hecate",
    cls=LazyGroup,
    help=(
        "Power protection and cold start for k3s clusters: watches a NUT UPS, shuts the "
        "cluster down in stages before the battery runs out, and starts it up again.\n\n"
        "Destructive commands are dry runs unless given --execute.\n\n" + EXIT_CODES_HELP
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # typer's --install-completion / --show-completion (bash, zsh, fish): the shell asks
    # `hecate` itself, so completion knows every command and option (LazyGroup lists them).
    add_completion=True,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},  # subcommands inherit it
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        is_eager=True,
        callback=_print_version,
        help="Print the Hecate version and exit.",
    ),
) -> None:
    # A callback keeps `app` a group although only `version` is registered eagerly; it also
    # carries the group's own option, --version.
    pass


@app.command("version")
def version() -> None:
    """Print the Hecate version."""
    typer.echo(__version__)


def _param_key(exc: Exception) -> str | None:
    """The option or argument a usage error is about (`--mode`), for the JSON error object."""
    name = getattr(exc, "option_name", None)
    if isinstance(name, str):
        return name
    param = getattr(exc, "param", None)
    opts = getattr(param, "opts", None)
    return str(opts[0]) if opts else None


def _usage_error(exc: typer.TyperException, as_json: bool) -> int:
    # typer validates enum and number options through pydantic, whose messages start with
    # its own wording ("Value error, 'x' is not one of ..."): an operator needs only the rest.
    message = getattr(exc, "message", None)
    if isinstance(message, str):
        message = _LIBRARY_PREFIX.sub("", message)
        exc.message = _PYDANTIC_TYPE.sub(lambda m: f"expected {_a(m['type'])}", message)
    show = getattr(exc, "show", None)
    if callable(show):
        show()
    else:
        typer.echo(f"{error_word()} {exc}", err=True)
    if as_json:
        format_message = getattr(exc, "format_message", None)
        text = format_message() if callable(format_message) else str(exc)
        print_error_object(EXIT_USAGE, text, key=_param_key(exc))
    return EXIT_USAGE


_LIBRARY_PREFIX = re.compile(r"\b(?:Value|Assertion) error, ")
# "Input should be a valid integer, unable to parse string as an integer" -> "expected an integer"
_PYDANTIC_TYPE = re.compile(r"Input should be a valid (?P<type>\w+)(?:, [^.]*)?")


def _a(noun: str) -> str:
    return f"an {noun}" if noun[:1] in "aeiou" else f"a {noun}"


def run(argv: list[str] | None = None) -> int:
    """Console-script entry: the single edge where errors turn into messages and exit codes.

    Under `--json` a failure also prints the JSON error object on stdout (hecate.cli.failure)
    unless the command printed its own JSON report."""
    args = list(sys.argv[1:] if argv is None else argv)
    as_json = wants_json(args)
    reset()
    command = typer.main.get_command(app)
    try:
        result = command.main(args=args, prog_name="hecate", standalone_mode=False)
    except (typer.Abort, typer.TyperException, HecateError) as exc:
        return _failed(exc, as_json)
    # typer.Exit(code): the command said why (`fail`), or printed its JSON
    return finish(int(result) if isinstance(result, int) else 0, as_json)


def _failed(exc: Exception, as_json: bool) -> int:
    """An error's `error:` lines on stderr (and the JSON object under --json); its exit code."""
    if isinstance(exc, typer.TyperException):  # usage errors: bad option, missing argument
        return _usage_error(exc, as_json)
    if isinstance(exc, typer.Abort):
        typer.echo("aborted", err=True)
        return json_failure(as_json, EXIT_FAILED, "aborted")
    if isinstance(exc, HecateError):
        return report_error(exc, as_json)
    typer.echo(f"{error_word()} {exc}", err=True)
    return json_failure(as_json, EXIT_FAILED, str(exc))
