"""`hecate drill list | run NAME`: disruptive drills, dry run unless --execute."""

from __future__ import annotations

import contextlib
import sys
from typing import Annotated

import typer

from hecate.adapters.kube.client import Kube
from hecate.cli.common import emit_json, load, read_ups
from hecate.cli.execute import StageProgress
from hecate.cli.exits import EXIT_FAILED, EXIT_USAGE
from hecate.cli.failure import fail
from hecate.cli.options import ConfigOpt, JsonOpt
from hecate.config.load import DEFAULT_CONFIG_PATH
from hecate.config.model import HecateConfig
from hecate.drills.base import DrillEnv, record, run_drill
from hecate.drills.catalog import DRILLS, get_drill
from hecate.flows.context import FlowContext
from hecate.flows.open_context import open_flow_context

app = typer.Typer(
    help="Disruptive drills: break the cluster on purpose and prove Hecate recovers it. "
    "Dry run unless --execute; stop hecate.service while a drill runs.",
    no_args_is_help=True,
)


@app.command("list")
def list_drills(as_json: JsonOpt = False) -> None:
    """List the drills."""
    drills = [DRILLS[name]() for name in DRILLS]
    if as_json:
        emit_json([{"name": d.name, "summary": d.summary} for d in drills])
        return
    for drill in drills:
        typer.echo(f"{drill.name:<30} {drill.summary}")


def _context_factory(config: HecateConfig) -> contextlib.AbstractContextManager[FlowContext]:
    return open_flow_context(config, read_ups=lambda: read_ups(config), progress=StageProgress())


@app.command("run")
def run(
    name: Annotated[str, typer.Argument(help="Drill name (see `hecate drill list`).")],
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
    execute: Annotated[
        bool, typer.Option("--execute", help="Really break and recover the cluster.")
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", help="Skip the confirmation prompt (automation, CI).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run one drill: preconditions, plan, break, recover, verify, scored report.

    The report (pass/fail, time to recover, manual steps needed) is kept in state_dir/drills.json
    and exposed by the daemon's metrics.
    """
    cfg = load(config)
    drill = get_drill(name)
    if execute and not yes:
        if not sys.stdin.isatty():
            fail(
                "--execute needs a confirmation: run on a terminal or add --yes",
                EXIT_USAGE,
                key="--yes",
            )
        typed = typer.prompt(f"This breaks the cluster on purpose. Type {name!r} to go on")
        if typed.strip() != name:
            fail("not confirmed; nothing done", EXIT_USAGE)
    log = (lambda text: typer.echo(text, err=True)) if as_json else typer.echo
    with Kube(cfg.kubeconfig) as kube:
        env = DrillEnv(
            cfg, kube, lambda: _context_factory(cfg), read_ups=lambda: read_ups(cfg), log=log
        )
        report = run_drill(drill, env, execute=execute)
    if report.executed:
        record(cfg.state_dir, report)
    if as_json:
        emit_json(report.to_json())
    else:
        for check in report.checks:
            mark = "ok  " if check.ok else "FAIL"
            typer.echo(f"  {mark} {check.name} {check.detail}".rstrip())
        if report.executed:
            typer.echo(
                f"{report.drill}: {'PASS' if report.passed else 'FAIL'}; recovered in "
                f"{report.time_to_recover_s:.1f}s; manual steps needed: {report.manual_steps}"
            )
        else:
            typer.echo(f"{report.drill}: {report.message}")
    if (report.executed and not report.passed) or any(not c.ok for c in report.checks):
        raise typer.Exit(EXIT_FAILED)
