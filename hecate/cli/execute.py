"""Running a flow from the CLI: wiring the real ports, live progress, the final report."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import typer

from hecate.cli.common import emit_json, read_ups
from hecate.cli.exits import EXIT_FAILED, EXIT_OK
from hecate.config.model import HecateConfig
from hecate.core.run_history import Outcome
from hecate.flows.context import FlowContext
from hecate.flows.open_context import open_flow_context
from hecate.flows.report import FlowReport


class StageProgress:
    """One line per stage change and per node task result, on stderr (live on a TTY)."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.tty = sys.stderr.isatty()

    def __call__(self, stage: str, status: str, detail: str) -> None:
        elapsed = time.monotonic() - self.start
        if status in ("ok", "changed") and not self.tty and ":" in detail:
            return  # per-task lines only on a TTY; logs get the stage summaries
        text = f"[{elapsed:7.1f}s] {stage:<16} {status:<11} {detail}".rstrip()
        typer.echo(text, err=True)


def execute_flow(
    config: HecateConfig,
    flow: Callable[[FlowContext], FlowReport],
    *,
    as_json: bool,
) -> FlowReport:
    """No background warm-up: the first node stage opens the connections (see
    open_flow_context; measured in docs/benchmarks.md)."""
    with open_flow_context(
        config, read_ups=lambda: read_ups(config), progress=StageProgress(), warm=False
    ) as ctx:
        report = flow(ctx)
    if as_json:
        emit_json(report.to_json())
    else:
        typer.echo(
            f"{report.kind} {report.outcome.value} in {report.duration_s:.1f}s "
            f"(run {report.run_id})"
        )
        for stage in report.stages:
            typer.echo(
                f"  {stage.name:<16} {stage.status:<8} {stage.duration_s:6.1f}s  {stage.detail}"
            )
        if report.fallbacks:
            typer.echo(f"  fallbacks used: {', '.join(report.fallbacks)}")
        if report.message:
            typer.echo(f"  {report.message}")
    return report


def exit_code_for_report(report: FlowReport) -> int:
    """0 for success; 1 for partial, failed or aborted runs (the report says which)."""
    return EXIT_OK if report.outcome is Outcome.SUCCESS else EXIT_FAILED
