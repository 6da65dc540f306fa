"""The `hecate` console script (and `python -m hecate`).

A plain `hecate daemon ...` runs without importing typer (hecate.cli.daemon_run says why), and so
does a plain read command, `status`, `config check`, `replay`, `version` (hecate.cli.read_run);
everything else is the typer CLI in hecate.cli.main. This module imports nothing else at start.
"""

from __future__ import annotations

import gc
import os
import sys


def main() -> None:
    try:
        _main()
    except BrokenPipeError:
        # the reader went away (`hecate replay T | head`): what is left unsaid has no reader;
        # stdout goes to /dev/null so the interpreter's final flush does not fail again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(141)  # 128 + SIGPIPE, as a shell reports a command a closed pipe stopped


def _main() -> None:
    # Hecate uses no pydantic plugins. Looking for them reads every installed distribution's
    # entry points when the first validator is built (about 2 % of `hecate status`), and would
    # let any package installed beside Hecate hook into config validation.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    argv = sys.argv[1:]
    if argv[:1] == ["daemon"]:
        from hecate.cli import daemon_run  # noqa: PLC0415

        args = daemon_run.parse_daemon_argv(argv)
        if args is not None:
            # the objects start-up made live as long as the process: out of the collector's
            # sight, as hecate.cli.main does for every command (`_load_frozen`)
            gc.freeze()
            sys.exit(daemon_run.main(args))
    from hecate.cli import read_run  # noqa: PLC0415

    call = read_run.parse(argv)
    if call is not None:
        sys.exit(read_run.run(call, argv))
    from hecate.cli.main import run  # noqa: PLC0415

    sys.exit(run())
