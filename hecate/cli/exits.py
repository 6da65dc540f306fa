"""Exit codes, and which error gets which, in a module of their own so the entry points can
use them without importing typer or the config models."""

from __future__ import annotations

from hecate.errors import ConfigError, GuardRefusedError, HecateError, TraceError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
# `status`: the cluster is not protected right now (the UPS cannot be read, or the last
# `hecate doctor` found it not protected). A status, not a failure: the report is printed.
EXIT_UNPROTECTED = 4

EXIT_CODES_HELP = (
    "Exit codes: 0 ok, 1 run failed, 2 bad usage or config, 3 refused by a safety guard, "
    "4 not protected (status)."
)


def exit_code_for(error: HecateError) -> int:
    if isinstance(error, ConfigError | TraceError):
        return EXIT_USAGE
    if isinstance(error, GuardRefusedError):
        return EXIT_REFUSED
    return EXIT_FAILED


def error_report(error: HecateError, error_word: str = "error:") -> tuple[int, list[str]]:
    """The exit code and the stderr lines of an error: one `error:` line, and for a config error
    one indented line per problem."""
    if isinstance(error, ConfigError):
        return EXIT_USAGE, [f"{error_word} {error.message}", *(f"  - {p}" for p in error.problems)]
    return exit_code_for(error), [f"{error_word} {error}"]
