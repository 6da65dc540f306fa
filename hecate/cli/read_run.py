"""The read commands without the CLI framework: `hecate status`, `config check`, `replay` and
`version` answer within 0.3 s (docs/benchmarks.md, "The read commands").

typer costs about 0.1 CPU-s to import, and running a command through it about as much again
(its option parsing builds pydantic TypeAdapters): more than the rest of `hecate version` and a
third of `hecate status`. So `hecate.cli.entry` runs a plain invocation of these commands here:
each `LEAN` entry names a typer-free function (returning the exit code) and the options it takes.
Anything else, or anything unusual (--help, an unknown or repeated-looking option, a value
missing or empty, a bare `--`, a short option with its value attached), returns None from
`parse` and the typer CLI (hecate.cli.main) answers it, errors and help included; the typer
command calls the same function, so both paths print the same.

A new read command that must be fast gets a typer-free function and an entry in `LEAN`;
every other command only registers in `hecate.cli.main.COMMANDS` (imported when it runs).
"""

from __future__ import annotations

import gc
import importlib
import os
import sys
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class LeanCommand:
    """`target` (`module:function`, typer-free, returns the exit code) and its options:
    `flags` (option -> keyword set True), `paths` (option -> keyword given a Path),
    `argument` (the keyword of the one optional positional argument, a str)."""

    target: str
    flags: Mapping[str, str] = field(default_factory=dict)
    paths: Mapping[str, str] = field(default_factory=dict)
    argument: str | None = None


CONFIG = {"--config": "config", "-c": "config"}
JSON = {"--json": "as_json"}

# The command's words -> what runs. The options are the typer command's, less any the lean path
# would treat differently (replay's --svg is checked by typer: a directory is a usage error).
LEAN: dict[tuple[str, ...], LeanCommand] = {
    ("version",): LeanCommand("hecate.cli.read_run:print_version"),
    ("--version",): LeanCommand("hecate.cli.read_run:print_version"),
    ("status",): LeanCommand("hecate.cli.status_show:show_status", JSON, CONFIG),
    ("config", "check"): LeanCommand(
        "hecate.cli.config_check:check_config",
        {**JSON, "--resolve": "resolve", "--daemon-start": "daemon_start"},
        CONFIG,
    ),
    ("replay",): LeanCommand(
        "hecate.cli.replay_run:run_replay",
        {**JSON, "--default-config": "use_default_config", "--list": "list_traces"},
        CONFIG,
        argument="trace",
    ),
}


@dataclass(frozen=True)
class LeanCall:
    target: str
    kwargs: dict[str, Any]


def parse(argv: list[str]) -> LeanCall | None:
    """What to run for `argv`, or None when typer must answer it (see the module doc)."""
    for words, command in LEAN.items():
        if tuple(argv[: len(words)]) == words:
            kwargs = _options(argv[len(words) :], command)
            return None if kwargs is None else LeanCall(command.target, kwargs)
    return None


def _options(rest: list[str], command: LeanCommand) -> dict[str, Any] | None:
    kwargs: dict[str, Any] = {}
    rest = list(rest)
    while rest:
        arg = rest.pop(0)
        name, eq, inline = arg.partition("=")
        if arg in command.flags:
            kwargs[command.flags[arg]] = True
        elif name in command.paths and ((eq and name.startswith("--")) or (not eq and rest)):
            value = inline if eq else rest.pop(0)
            if not value or value.startswith("-"):  # click would read it differently
                return None
            kwargs[command.paths[name]] = Path(value)
        elif command.argument is not None and command.argument not in kwargs and arg[:1] != "-":
            kwargs[command.argument] = arg
        else:
            return None
    return kwargs


def print_version() -> int:
    from hecate import __version__  # noqa: PLC0415

    print(__version__, flush=True)
    return 0


def _no_plugin_scan() -> None:
    """With every pydantic plugin disabled (entry.py sets PYDANTIC_DISABLE_PLUGINS=__all__ unless
    the operator set it), pydantic's plugin loader returns no plugins, but importing it imports
    importlib.metadata and with it email, zipfile, csv, tempfile and socket: about 73 M
    instructions, 8 % of `hecate status`. A stand-in that returns no plugins, as pydantic's own
    does then, takes its place; with any plugin allowed pydantic's loader runs as always.
    (test_read_path checks that pydantic imports nothing else from the module.)"""
    name = "pydantic.plugin._loader"
    if os.environ.get("PYDANTIC_DISABLE_PLUGINS") not in ("__all__", "1", "true"):
        return
    if name in sys.modules:
        return
    loader = types.ModuleType(name, "Hecate's stand-in: every pydantic plugin is disabled.")
    loader.get_plugins = lambda: ()  # type: ignore[attr-defined]
    sys.modules[name] = loader


def _function(target: str) -> Callable[..., int]:
    """The target, imported with the collector off and its objects then frozen, as
    hecate.cli.main's `_load_frozen` does for typer commands (it says why)."""
    module_name, _, attribute = target.partition(":")
    if module_name != __name__:  # `version` (here) builds no validator
        _no_plugin_scan()
    enabled = gc.isenabled()
    gc.disable()
    try:
        function: Callable[..., int] = getattr(importlib.import_module(module_name), attribute)
    finally:
        if gc.get_freeze_count() == 0:
            gc.freeze()
        if enabled:
            gc.enable()
    return function


def run(call: LeanCall, argv: list[str]) -> int:
    """Run the command; errors become `error:` lines and exit codes (and the JSON error object
    under --json) exactly as hecate.cli.main.run makes them."""
    from hecate.cli.failure import finish, report_error, reset, wants_json  # noqa: PLC0415
    from hecate.errors import HecateError  # noqa: PLC0415

    as_json = wants_json(argv)
    reset()
    try:
        code = _function(call.target)(**call.kwargs)
    except HecateError as exc:
        return report_error(exc, as_json)
    return finish(code, as_json)
