"""`hecate config`: `check` (its typer face; the check is hecate.cli.config_check) and `init`."""

from __future__ import annotations

from typing import Annotated

import typer

from hecate.cli.cmd_config_init import init_command
from hecate.cli.common import flat_help
from hecate.cli.config_check import check_config
from hecate.cli.options import ConfigOpt, JsonOpt
from hecate.config.load import DEFAULT_CONFIG_PATH

app = typer.Typer(help="Inspect and validate the configuration.", no_args_is_help=True)
app.command("init", help=flat_help(init_command))(init_command)


@app.command("check")
def check(
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
    as_json: JsonOpt = False,
    resolve: Annotated[
        bool,
        typer.Option(
            "--resolve",
            help="Also resolve metrics.listen and coordination.listen and check that this "
            "machine can bind them (run it on the machine that runs the daemon).",
        ),
    ] = False,
    daemon_start: Annotated[
        bool,
        typer.Option(
            "--daemon-start",
            help="The unit's gate before the daemon starts or reloads: refuse only what the "
            "daemon cannot run with (an invalid config, a missing ups.password_file); other "
            "file problems are warnings, so a missing kubeconfig or SSH key never keeps the "
            "daemon from watching the UPS.",
        ),
    ] = False,
) -> None:
    """Validate a config file and the files it names; list every problem by the key that holds
    it (exit 2 when any).

    Refuses what would fail later: addresses, ports and names outside their grammar (node and
    Kubernetes names, NUT user and command, Linux user, git branch; no control character
    anywhere), unknown keys (with the key meant), duplicate YAML keys, booleans given as
    numbers, .inf/.nan, empty values, a missing ups.target, cross-field conflicts, and every
    file the config names (kubeconfig, ssh_identity_file, ssh_config_file, ups.password_file,
    coordination.token_file, notify.urls_file, startup.gitea_bootstrap_manifests) that is
    missing, not a regular file, empty when it holds a secret (or, for notify.urls_file, holds a
    bad line), or unreadable by the daemon's user (run as root: the
    state dir's owner, judged by the modes as `hecate doctor` does). Warns when a secret file
    is open to others or group-writable.
    """
    code = check_config(config, as_json=as_json, resolve=resolve, daemon_start=daemon_start)
    if code:
        raise typer.Exit(code)
