"""`hecate inventory`: print the Ansible inventory Hecate generates from the SSH settings."""

from __future__ import annotations

from typing import Annotated

import typer

from hecate.adapters.ansible.inventory import dump_inventory
from hecate.adapters.ansible.ssh_preflight import prepare_inventory
from hecate.cli.common import emit_json, load
from hecate.cli.options import ConfigOpt, JsonOpt
from hecate.config.load import DEFAULT_CONFIG_PATH


def inventory_command(
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
    as_json: JsonOpt = False,
    preflight: Annotated[
        bool,
        typer.Option(
            "--preflight/--no-preflight",
            help="Check the jump host first and show the direct-SSH fallback if it fails.",
        ),
    ] = False,
) -> None:
    """Print the inventory generated from the ssh_* settings (groups k3s_cluster, server,
    agent, managed)."""
    cfg = load(config)
    plan = prepare_inventory(cfg, preflight=preflight)
    for warning in plan.warnings:
        typer.echo(f"warning: {warning}", err=True)
    for node, problem in sorted(plan.problems.items()):
        typer.echo(f"warning: node {node} left out of the inventory: {problem}", err=True)
    if as_json:
        emit_json(plan.data)
    else:
        typer.echo(dump_inventory(plan.data), nl=False)
