"""Exit codes, in a module of their own so the entry point can name them without importing
the config models (the commands import them from here)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3

EXIT_CODES_HELP = (
    "Exit codes: 0 ok, 1 run failed, 2 bad usage or config, 3 refused by a safety guard."
)
