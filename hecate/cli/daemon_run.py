"""What `hecate daemon` runs, without the CLI framework (typer is not imported here).

The daemon lives for months and its idle memory is budgeted (at most 38 MB RSS, docs/benchmarks.md,
"The daemon's idle RSS"); typer and its click are about 1.4 MB of it and the daemon uses them only
to read three options. So `hecate.cli.entry` starts a plain `hecate daemon [--config F]
[--verbose] [--max-polls N]` here directly; the typer command (`hecate.cli.cmd_daemon`) runs the
same function, and gives the help and the usage errors.
"""

from __future__ import annotations

import logging
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from hecate.adapters.nut.port import Ups
from hecate.cli.exits import EXIT_OK, error_report
from hecate.config.load import DEFAULT_CONFIG_PATH
from hecate.config.model import load_config
from hecate.daemon.service import Daemon
from hecate.errors import HecateError


@dataclass(frozen=True)
class DaemonArgs:
    config: Path = DEFAULT_CONFIG_PATH
    verbose: bool = False
    max_polls: int | None = None


def parse_daemon_argv(argv: list[str]) -> DaemonArgs | None:
    """`daemon` and its options as `hecate daemon` takes them, or None for anything else (help,
    a typo, a missing value, another command): the typer CLI then answers it, errors included.
    """
    if not argv or argv[0] != "daemon":
        return None
    config, verbose, max_polls = DEFAULT_CONFIG_PATH, False, None
    rest = argv[1:]
    while rest:
        arg = rest.pop(0)
        name, eq, inline = arg.partition("=")
        if arg in ("--verbose", "-v"):
            verbose = True
        elif name in ("--config", "-c", "--max-polls") and (eq or rest):
            value = inline if eq else rest.pop(0)
            if name == "--max-polls":
                if not value.isdigit():
                    return None
                max_polls = int(value)
            elif value:
                config = Path(value)
            else:
                return None
        else:
            return None
    return DaemonArgs(config, verbose, max_polls)


def setup_logging(verbose: bool) -> None:
    """key=value lines on stderr; under systemd they land in the journal."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s level=%(levelname)s logger=%(name)s %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)


def run_daemon(args: DaemonArgs) -> None:
    """Start the daemon and run it until SIGTERM/SIGINT (or `max_polls`); a HecateError (a bad
    config: exit 2) propagates to the caller, which reports it."""
    setup_logging(args.verbose)
    cfg = load_config(args.config)
    # The UPS port, built once: the password file is read at start (a problem there is a config
    # error, exit 2), not on every poll.
    ups = Ups.from_config(cfg)
    daemon = Daemon(cfg, reader=ups.poll, ups_command=ups.instant_command)

    def stop(signum: int, frame: FrameType | None) -> None:
        logging.getLogger("hecate.daemon").info("signal %s: stopping", signum)
        daemon.request_stop()

    def reload(signum: int, frame: FrameType | None) -> None:
        logging.getLogger("hecate.daemon").info("signal %s: reloading %s", signum, args.config)
        daemon.request_reload(lambda: load_config(args.config))

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, reload)
    daemon.run(max_polls=args.max_polls)


def main(args: DaemonArgs) -> int:
    """The lean path's edge: errors become `error:` lines and exit codes, as in the CLI."""
    try:
        run_daemon(args)
    except HecateError as exc:
        code, lines = error_report(exc)
        for line in lines:
            print(line, file=sys.stderr)
        return code
    return EXIT_OK
