"""`hecate daemon`: watch the UPS and act (run under systemd as hecate.service)."""

from __future__ import annotations

from typing import Annotated

import typer

from hecate.cli.daemon_run import DaemonArgs, run_daemon
from hecate.cli.options import ConfigOpt
from hecate.config.load import DEFAULT_CONFIG_PATH


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
    run_daemon(DaemonArgs(config, verbose, max_polls))
