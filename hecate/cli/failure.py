"""The one JSON error object every command prints on stdout when it fails under `--json`.

    {"ok": false, "exit_code": 2, "message": "<the error: line>",
     "errors": [{"key": "ups.target" | "--mode" | null, "message": "..."}]}

Scripts parse stdout; without this a failing command given `--json` printed nothing there
(its `error:` lines went to stderr only, and still do). A command that printed its own JSON
(a doctor report, a refused startup, a flow report, a status that is not protected) has said
what happened: it gets no second object. Light on purpose: the entry points import it, and
the read commands' lean path (hecate.cli.read_run) runs without typer.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import NoReturn

from hecate.cli.exits import error_report
from hecate.cli.out import echo
from hecate.cli.style import BAD, paint
from hecate.errors import ConfigError, HecateError

# "ups.debounce_polls: Input should be ..." -> key, message (config problems name their field).
_KEYED = re.compile(r"(?P<key>[A-Za-z_][A-Za-z0-9_.\[\]-]*): (?P<message>.+)", re.DOTALL)


def fail(message: str, exit_code: int, key: str | None = None) -> NoReturn:
    """Give up: `error: message` on stderr, exit `exit_code`; under --json the entry point
    prints the error object with this message and `key` (the option it is about)."""
    import typer  # noqa: PLC0415 - only typer commands fail through here (see the module doc)

    echo(f"{error_word()} {message}", err=True)
    output.last_error = (message, key)
    raise typer.Exit(exit_code)


def error_word() -> str:
    return paint("error:", BAD, err=True, bold=True)


@dataclass
class _Output:
    """Whether the running command already printed JSON on stdout (set by `emit_json`)."""

    json_printed: bool = False
    last_error: tuple[str, str | None] | None = None  # what `fail` said, for the object


output = _Output()


def reset() -> None:
    """A new command starts: nothing printed, no error said yet."""
    output.json_printed = False
    output.last_error = None


def note_json_printed() -> None:
    output.json_printed = True


def keyed(problem: str) -> dict[str, str | None]:
    """A problem line as {"key", "message"}: the field path when the line starts with one."""
    match = _KEYED.fullmatch(problem)
    if match is None:
        return {"key": None, "message": problem}
    return {"key": match["key"], "message": match["message"]}


def error_object(
    exit_code: int, message: str, problems: list[str] | None = None, key: str | None = None
) -> dict[str, object]:
    errors = [keyed(p) for p in problems] if problems else [{"key": key, "message": message}]
    return {"ok": False, "exit_code": exit_code, "message": message, "errors": errors}


def print_error_object(
    exit_code: int, message: str, problems: list[str] | None = None, key: str | None = None
) -> None:
    """The error object on stdout, unless the command already printed its own JSON."""
    if output.json_printed:
        return
    print(json.dumps(error_object(exit_code, message, problems, key), indent=2, sort_keys=True))
    output.json_printed = True


def wants_json(argv: list[str]) -> bool:
    """`--json` given to the command (options after a bare `--` are arguments, not options)."""
    options = argv[: argv.index("--")] if "--" in argv else argv
    return "--json" in options


def json_failure(
    as_json: bool,
    code: int,
    message: str,
    problems: list[str] | None = None,
    key: str | None = None,
) -> int:
    """`code`, after printing the error object under --json."""
    if as_json:
        print_error_object(code, message, problems, key)
    return code


def report_error(exc: HecateError, as_json: bool) -> int:
    """A HecateError's `error:` lines on stderr (and the JSON object under --json); its exit
    code. The one edge where library errors become messages, for both entry paths."""
    code, lines = error_report(exc, error_word())
    for line in lines:
        echo(line, err=True)
    if isinstance(exc, ConfigError):
        return json_failure(as_json, code, exc.message, exc.problems)
    return json_failure(as_json, code, str(exc))


def finish(code: int, as_json: bool) -> int:
    """A command's exit code; a failure under --json also gets the error object, with what
    `fail` said when it said something, unless the command printed its own JSON."""
    if code == 0:
        return code
    said = output.last_error
    if said is not None:
        return json_failure(as_json, code, said[0], key=said[1])
    return json_failure(as_json, code, f"failed with exit code {code} (stderr says why)")
