"""`hecate status`: intent, budget, recent runs and the UPS."""

from __future__ import annotations

from typing import Any

import typer

from hecate.budget import budget_from_config
from hecate.cli.cmd_outage import ups_report_data, ups_report_lines
from hecate.cli.common import ConfigOpt, JsonOpt, emit_json, load, now, read_ups_or_error
from hecate.config import DEFAULT_CONFIG_PATH
from hecate.errors import StateError
from hecate.intent import Intent, IntentState, is_stale
from hecate.policy import params_from_config, pending_startup_wait
from hecate.readings import CommError
from hecate.selfupdate import self_update
from hecate.state import StateStore


def _intent_json(
    intent: Intent | None, stamp: float, max_age: float
) -> tuple[dict[str, Any], bool]:
    if intent is None:
        return {"state": "unknown", "stale": False}, False
    stale = is_stale(intent, stamp, max_age)
    return {
        "state": intent.state.value,
        "since": intent.since,
        "age_s": round(stamp - intent.since, 1),
        "reason": intent.reason,
        "host": intent.host,
        "run_id": intent.run_id,
        "stale": stale,
    }, stale


def _intent_lines(intent: Intent | None, stale: bool, stamp: float) -> list[str]:
    if intent is None:
        return ["intent:  unknown (corrupt; startup refused until `hecate state reset --intent`)"]
    stale_text = " (stale: no longer blocks startup)" if stale else ""
    return [
        f"intent:  {intent.state.value}{stale_text}, {intent.age_text(stamp)} on {intent.host}",
        f"         reason: {intent.reason}",
    ]


def _ups_line(ups: dict[str, Any]) -> str:
    if not ups["readable"]:
        return f"ups:     not readable: {ups['error']}"
    return f"ups:     {ups['status']} runtime={ups['runtime_s']}s charge={ups['charge_pct']}%"


def status_command(config: ConfigOpt = DEFAULT_CONFIG_PATH, as_json: JsonOpt = False) -> None:
    """Show the intent, the shutdown budget, the last runs and the UPS.

    Intent: state, since, reason, whether it is stale. Budget: estimate_s, threshold_s, source,
    samples. Startup: whether the automatic startup is pending (the cluster is down) and what it
    waits for, judged from the current UPS reading (mains stability is timed by the daemon).
    """
    cfg = load(config)
    store = StateStore(cfg.state_dir)
    stamp = now()
    problems: list[str] = []
    try:
        intent_state = store.read_intent(stamp)
    except StateError as exc:  # an unknown intent is shown, never a crash
        problems.append(str(exc))
        intent_state = None
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
    intent_json, stale = _intent_json(intent_state, stamp, max_age)
    # The cluster is down (or a startup was cut short): the daemon's startup gate is pending.
    # A corrupt intent is not "pending": startup stays refused until the operator resets it.
    pending = intent_state is not None and intent_state.state in (
        IntentState.SHUTDOWN_COMPLETE,
        IntentState.SHUTTING_DOWN,
        IntentState.STARTUP_IN_PROGRESS,
    )
    waits_for = (
        pending_startup_wait(poll, params_from_config(cfg, budget.threshold_s)) if pending else None
    )
    update = self_update()
    battery = ups_report_data(cfg, poll)
    report = {
        "intent": intent_json,
        "budget": {
            "estimate_s": budget.estimate_s,
            "threshold_s": budget.threshold_s,
            "source": budget.source,
            "samples": budget.samples,
        },
        "runs": [run.to_json() for run in runs[-5:]],
        "ups": ups,
        "startup": {"pending": pending, "waits_for": waits_for},
        "battery": battery,
        "problems": problems,
        "self_update": update.to_json(),
    }
    if as_json:
        emit_json(report)
        return
    for line in _intent_lines(intent_state, stale, stamp):
        typer.echo(line)
    typer.echo(
        f"budget:  {budget.estimate_s:.0f}s from {budget.source} ({budget.samples} sample(s)); "
        f"shutdown when runtime < {budget.threshold_s:.0f}s"
    )
    typer.echo(_ups_line(ups))
    if waits_for is not None:
        typer.echo(f"startup: pending; waits for {waits_for}")
    for line in ups_report_lines(battery):
        typer.echo(f"battery: {line.strip()}")
    typer.echo("runs:" if runs else "runs:    none recorded")
    for run in runs[-5:]:
        typer.echo(f"  {run.kind:<8} {run.outcome.value:<11} {run.duration_s:7.1f}s  {run.reason}")
    typer.echo(f"update:  {update.text}")
    for problem in problems:
        typer.echo(f"problem: {problem}", err=True)
