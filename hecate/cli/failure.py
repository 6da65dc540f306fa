"""The one JSON error object every command prints on stdout when it fails under `--json`.

    {"ok": false, "exit_code": 2, "message": "<the error: line>",
     "errors": [{"key": "ups.target" | "--mode" | null, "message": "..."}]}

Scripts parse stdout; without this a failing command given `--json` printed nothing there
(its `error:` lines went to stderr only, and still do). A command that printed its own JSON
(a doctor report, a refused startup, a flow report, a status that is not protected) has said
what happened: it gets no second object. Light on purpose: the entry point imports it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

# "ups.debounce_polls: Input should be ..." -> key, message (config problems name their field).
_KEYED = re.compile(r"(?P<key>[A-Za-z_][A-Za-z0-9_.\[\]-]*): (?P<message>.+)", re.DOTALL)


class CliError(Exception):
    """A command gives up with `message` and `exit_code` (raised by command code; the entry
    point prints `error: message` on stderr and, under --json, the error object on stdout)."""

    def __init__(self, message: str, exit_code: int, key: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.key = key


@dataclass
class _Output:
    """Whether the running command already printed JSON on stdout (set by `emit_json`)."""

    json_printed: bool = False


output = _Output()


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
