"""`hecate status`: intent, budget, recent runs and the UPS."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from hecate.budget import budget_from_config
from hecate.cli.common import ConfigOpt, JsonOpt, emit_json, load, now, read_ups_or_error
from hecate.config import DEFAULT_CONFIG_PATH
from hecate.errors import StateError
from hecate.flows.report import load_progress, load_report
from hecate.intent import is_stale
from hecate.readings import CommError
from hecate.state import StateStore


def status_command(config: ConfigOpt = DEFAULT_CONFIG_PATH, as_json: JsonOpt = False) -> None:
    """Show the intent, the shutdown budget, the last runs and the UPS.

    Intent: state, since, reason, whether it is stale; during a startup, the stage (gate) it is
    in and since when (startup_progress). Budget: estimate_s, threshold_s, source, samples.
    Reports: the last startup's and shutdown's outcome and their stages that were not ok (the
    full --json reports are state_dir/last-startup-report.json and last-shutdown-report.json).
    """
    cfg = load(config)
    store = StateStore(cfg.state_dir)
    stamp = now()
    problems: list[str] = []
    intent = store.read_intent(stamp)
    try:
        runs = store.load_runs()
    except StateError as exc:
        problems.append(str(exc))
        runs = []
    budget = budget_from_config(cfg, runs)
    max_age = cfg.coordination.startup_guard_max_age_seconds
    poll = read_ups_or_error(cfg)
    ups: dict[str, Any]
    if isinstance(poll, CommError):
        ups = {"readable": False, "error": poll.message, "kind": poll.kind}
    else:
        ups = {
            "readable": True,
            "status": " ".join(sorted(poll.status)),
            "on_battery": poll.on_battery,
            "runtime_s": poll.runtime_s,
            "charge_pct": poll.charge_pct,
            "load_pct": poll.load_pct,
        }
    stale = is_stale(intent, stamp, max_age)
    progress = startup_progress(cfg.state_dir, intent.state.value, intent.run_id, stamp)
    reports = {kind: report_summary(load_report(cfg.state_dir, kind)) for kind in REPORT_KINDS}
    report = {
        "intent": {
            "state": intent.state.value,
            "since": intent.since,
            "age_s": round(stamp - intent.since, 1),
            "reason": intent.reason,
            "host": intent.host,
            "run_id": intent.run_id,
            "stale": stale,
        },
        "budget": {
            "estimate_s": budget.estimate_s,
            "threshold_s": budget.threshold_s,
            "source": budget.source,
            "samples": budget.samples,
        },
        "runs": [run.to_json() for run in runs[-5:]],
        "ups": ups,
        "problems": problems,
        "startup_progress": progress,
        "reports": reports,
    }
    if as_json:
        emit_json(report)
        return
    stale_text = " (stale: no longer blocks startup)" if stale else ""
    typer.echo(
        f"intent:  {intent.state.value}{stale_text}, {intent.age_text(stamp)} on {intent.host}"
    )
    typer.echo(f"         reason: {intent.reason}")
    if progress is not None:
        typer.echo(
            f"         in stage {progress['stage']} for {progress['for_s']:.0f}s"
            + (f": {progress['detail']}" if progress["detail"] else "")
        )
    typer.echo(
        f"budget:  {budget.estimate_s:.0f}s from {budget.source} ({budget.samples} sample(s)); "
        f"shutdown when runtime < {budget.threshold_s:.0f}s"
    )
    if ups["readable"]:
        typer.echo(
            f"ups:     {ups['status']} runtime={ups['runtime_s']}s charge={ups['charge_pct']}%"
        )
    else:
        typer.echo(f"ups:     not readable: {ups['error']}")
    typer.echo("runs:" if runs else "runs:    none recorded")
    for run in runs[-5:]:
        typer.echo(f"  {run.kind:<8} {run.outcome.value:<11} {run.duration_s:7.1f}s  {run.reason}")
    for kind, summary in reports.items():
        if summary is None:
            continue
        typer.echo(
            f"last {kind}: {summary['outcome']} ({summary['run_id']}), report "
            f"{cfg.state_dir}/last-{kind}-report.json"
        )
        for stage in summary["not_ok"]:
            typer.echo(f"  {stage['name']:<14} {stage['status']:<8} {stage['detail']}")
    for problem in problems:
        typer.echo(f"problem: {problem}", err=True)


REPORT_KINDS = ("startup", "shutdown")


def startup_progress(
    state_dir: Path, intent_state: str, run_id: str | None, stamp: float
) -> dict[str, Any] | None:
    """Which stage (gate) a startup under way is in, and since when (None otherwise)."""
    data = load_progress(state_dir)
    if intent_state != "startup_in_progress" or data is None or data.get("run_id") != run_id:
        return None
    since = float(data.get("since", stamp))
    return {
        "stage": str(data.get("stage", "")),
        "since": since,
        "for_s": round(max(0.0, stamp - since), 1),
        "detail": str(data.get("detail", "")),
    }


def report_summary(report: dict[str, Any] | None) -> dict[str, Any] | None:
    """The kept report's outcome and the stages that were not ok (the whole report stays in
    the file)."""
    if report is None:
        return None
    stages = [s for s in report.get("stages", []) if isinstance(s, dict)]
    return {
        "run_id": report.get("run_id"),
        "outcome": report.get("outcome"),
        "ended_at": report.get("ended_at"),
        "duration_s": report.get("duration_s"),
        "message": report.get("message", ""),
        "not_ok": [
            {"name": s.get("name"), "status": s.get("status"), "detail": s.get("detail", "")}
            for s in stages
            if s.get("status") not in ("ok", "skipped")
        ],
    }
