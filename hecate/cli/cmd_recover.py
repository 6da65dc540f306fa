"""`hecate recover etcd`: rebuild embedded etcd from a snapshot after quorum is lost."""

from __future__ import annotations

from typing import Annotated

import typer

from hecate.cli.common import emit_json, load
from hecate.cli.execute import StageProgress
from hecate.cli.exits import EXIT_FAILED, EXIT_REFUSED
from hecate.cli.options import ConfigOpt, JsonOpt
from hecate.config.load import DEFAULT_CONFIG_PATH
from hecate.core.etcd_recover import RecoverRequest
from hecate.flows.open_context import open_flow_context
from hecate.flows.recover_etcd import (
    RecoverFailedError,
    RecoverRefusedError,
    describe_outcome,
    recover_etcd,
)

app = typer.Typer(help="Recover the cluster's datastore.", no_args_is_help=True)


@app.command("etcd")
def etcd_command(
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
    snapshot: Annotated[
        str,
        typer.Option(
            "--snapshot",
            help="PATH of the snapshot on the server, or `latest` (the newest one Hecate took "
            "and verified, recorded in runs.json).",
        ),
    ] = "latest",
    server: Annotated[
        str | None,
        typer.Option("--server", help="The server to reset (default: where the snapshot is)."),
    ] = None,
    execute: Annotated[bool, typer.Option("--execute", help="Carry it out.")] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Use a snapshot that is too old, or that Hecate did not record for this "
            "cluster. Never lifts the other refusals.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Restore embedded etcd from a snapshot: k3s's documented cluster reset.

    A dry run unless --execute. Refused while etcd has a healthy quorum, for a missing or
    unreadable snapshot, without the server token k3s needs, and (unless --force) for a
    snapshot older than recover.max_snapshot_age_seconds or not recorded by Hecate for this
    cluster. Stops k3s on every server, resets one from the snapshot, moves the other servers'
    etcd data aside (never deleted) and starts them to rejoin. Each step is recorded in
    state_dir/etcd-recovery.json: an interrupted recovery is finished by the next --execute
    (a dry run says where it stopped).
    """
    cfg = load(config)
    request = RecoverRequest(snapshot, server, force)
    progress = StageProgress()
    with open_flow_context(cfg, read_ups=None, progress=progress) as ctx:
        try:
            outcome = recover_etcd(ctx, request, execute=execute)
        except RecoverRefusedError as exc:
            if as_json:
                emit_json(
                    {
                        "command": "recover etcd",
                        "refused": list(exc.plan.refusals),
                        "plan": exc.plan.to_json(),
                        "execute": execute,
                    }
                )
            else:
                typer.echo("recover etcd: refused", err=True)
                for line in exc.plan.refusals:
                    typer.echo(f"  - {line}", err=True)
                typer.echo(f"plan it would have run (on {exc.plan.server}):", err=True)
                for number, step in enumerate(exc.plan.steps, 1):
                    typer.echo(f"  {number}. {step.text}", err=True)
            raise typer.Exit(EXIT_REFUSED) from None
        except RecoverFailedError as exc:
            if as_json:
                emit_json({"command": "recover etcd", "failed": str(exc), "execute": execute})
            else:
                typer.echo(f"recover etcd: {exc}", err=True)
            raise typer.Exit(EXIT_FAILED) from None
    if as_json:
        emit_json(
            {
                "command": "recover etcd",
                "execute": execute,
                "refused": [],
                "resumed": outcome.resumed,
                "plan": outcome.plan.to_json(),
                "done": outcome.done,
                "etcd_quorum": outcome.verdict.to_json() if outcome.verdict else None,
                "record": outcome.record_path,
            }
        )
        return
    for line in describe_outcome(outcome):
        typer.echo(line)


__all__ = ["app"]
