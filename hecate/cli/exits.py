"""Exit codes, in a module of their own so the entry point can name them without importing
the config models (hecate.cli.common re-exports them)."""

from __future__ import annotations

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
