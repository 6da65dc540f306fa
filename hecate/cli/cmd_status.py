"""`hecate status`: intent, budget, recent runs and the UPS."""

from __future__ import annotations

import subprocess
from typing import Any

import typer

from hecate.budget import budget_from_config
from hecate.cli.cmd_doctor import last_result
from hecate.cli.common import ConfigOpt, JsonOpt, emit_json, load, now, read_ups_or_error
from hecate.config import DEFAULT_CONFIG_PATH
from hecate.errors import StateError
from hecate.intent import is_stale
from hecate.readings import CommError
from hecate.state import StateStore


def status_command(config: ConfigOpt = DEFAULT_CONFIG_PATH, as_json: JsonOpt = False) -> None:
    """Show the intent, the shutdown budget, the last runs and the UPS.

    Intent: state, since, reason, whether it is stale. Budget: estimate_s, threshold_s, source,
    samples.
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
        problems.append(f"UPS not readable, the cluster is not protected: {poll.message}")
    else:
        ups = {
            "readable": True,
            "status": " ".join(sorted(poll.status)),
            "on_battery": poll.on_battery,
            "runtime_s": poll.runtime_s,
            "charge_pct": poll.charge_pct,
            "load_pct": poll.load_pct,
        }
    if update_failed():
        problems.append(
            "hecate-update.service failed: Hecate is not updating itself "
            "(journalctl -u hecate-update.service says why)"
        )
    stale = is_stale(intent, stamp, max_age)
    doctor = last_result(cfg.state_dir)
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
        "doctor": doctor,
    }
    if as_json:
        emit_json(report)
        return
    stale_text = " (stale: no longer blocks startup)" if stale else ""
    typer.echo(
        f"intent:  {intent.state.value}{stale_text}, {intent.age_text(stamp)} on {intent.host}"
    )
    typer.echo(f"         reason: {intent.reason}")
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
    typer.echo(doctor_line(doctor, stamp))
    for problem in problems:
        typer.echo(f"problem: {problem}", err=True)


def update_failed() -> bool:
    """True when systemd shows hecate-update.service failed (False without systemd)."""
    try:
        done = subprocess.run(
            ["systemctl", "is-failed", "--quiet", "hecate-update.service"],  # noqa: S607
            capture_output=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def doctor_line(result: dict[str, Any] | None, stamp: float) -> str:
    """`hecate doctor`'s last result in one line."""
    if result is None:
        return "doctor:  never run (run `hecate doctor`)"
    age = stamp - float(result.get("checked_at", stamp))
    when = f"{age / 3600:.1f} h ago" if age >= 3600 else f"{age / 60:.0f} min ago"
    if result.get("protected"):
        return f"doctor:  protected ({result.get('warnings', 0)} warning(s)), {when}"
    failed = [
        str(f.get("check"))
        for f in result.get("findings", [])
        if isinstance(f, dict) and f.get("status") == "fail"
    ]
    return f"doctor:  NOT PROTECTED, {when}: {', '.join(failed)} (run `hecate doctor`)"
