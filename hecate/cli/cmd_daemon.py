"""`hecate daemon`: watch the UPS and act (run under systemd as hecate.service)."""

from __future__ import annotations

import logging
import signal
import sys
from types import FrameType
from typing import Annotated

import typer

from hecate.adapters.nut.port import Ups
from hecate.cli.common import ConfigOpt, load
from hecate.config.model import DEFAULT_CONFIG_PATH
from hecate.daemon.service import Daemon


def setup_logging(verbose: bool) -> None:
    """key=value lines on stderr; under systemd they land in the journal."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s level=%(levelname)s logger=%(name)s %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)


def daemon_command(
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
    max_polls: Annotated[
        int | None, typer.Option("--max-polls", hidden=True, help="Stop after N polls (tests).")
    ] = None,
) -> None:
    """Watch the UPS and shut down or start up the cluster when the policy says so.

    Polls ups.target every ups.poll_interval_seconds. A coordinator runs the shutdown itself; a
    peer forwards the trigger to the coordinator. Serves Prometheus metrics on metrics.listen.
    SIGTERM or SIGINT stop it cleanly (a running shutdown is allowed to finish). SIGHUP (systemctl
    reload hecate) reads the config again: a valid one is taken, an invalid one (or one changing
    what only a restart can: listen addresses, token, role, state dir, UPS connection) is refused
    with a log line and the running one kept.
    """
    setup_logging(verbose)
    cfg = load(config)
    # The UPS port, built once: the password file is read at start (a problem there is a config
    # error, exit 2), not on every poll.
    ups = Ups.from_config(cfg)
    daemon = Daemon(cfg, reader=ups.poll, ups_command=ups.instant_command)

    def stop(signum: int, frame: FrameType | None) -> None:
        logging.getLogger("hecate.daemon").info("signal %s: stopping", signum)
        daemon.request_stop()

    def reload(signum: int, frame: FrameType | None) -> None:
        logging.getLogger("hecate.daemon").info("signal %s: reloading %s", signum, config)
        daemon.request_reload(lambda: load(config))

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, reload)
    daemon.run(max_polls=max_polls)
