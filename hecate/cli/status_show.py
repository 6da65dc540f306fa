"""What `hecate status` shows: intent, budget, recent runs and the UPS, from the UPS and the state
directory only (what the last runs recorded; live probes are `hecate doctor`'s). Without typer:
`status` runs on the lean path (hecate.cli.read_run); hecate.cli.cmd_status is its typer face
(help, usage errors)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from hecate.adapters.statedir.awaiting import load_awaiting
from hecate.adapters.statedir.store import StateStore
from hecate.adapters.systemd.selfupdate import SelfUpdate, self_update, update_failed
from hecate.cli.common import emit_json, now, read_ups_or_error
from hecate.cli.doctor_file import last_result
from hecate.cli.exits import EXIT_UNPROTECTED
from hecate.cli.feed_text import feeds_status, feeds_status_lines
from hecate.cli.out import echo
from hecate.cli.outage_report import ups_report_data, ups_report_lines
from hecate.cli.status_files import (
    recovery_problem,
    shed_status,
    shed_status_lines,
    unsaved_json,
    unsaved_problem,
)
from hecate.cli.style import BAD, paint
from hecate.config.load import DEFAULT_CONFIG_PATH
from hecate.config.snapshot import load_view_kept
from hecate.core.budget import Budget, budget_from_config
from hecate.core.etcd_status import etcd_summary
from hecate.core.intent import Intent, IntentState, is_stale
from hecate.core.node_account import NodeAccount
from hecate.core.policy.rules import pending_startup_wait
from hecate.core.policy.values import params_from_config
from hecate.core.readings import CommError, Poll, PowerSource, UpsReading
from hecate.core.run_history import RunRecord
from hecate.errors import StateError
from hecate.flows.report import load_progress, load_report


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
        "nodes": list(intent.nodes) if intent.nodes is not None else None,  # partial (#28)
        "stale": stale,
    } | _cluster_json(intent), stale


def _cluster_json(intent: Intent) -> dict[str, Any]:
    """What the last shutdown left, when it said: nodes down, nodes unknown, in one line."""
    if not intent.nodes_down and not intent.nodes_unknown:
        return {}
    account = NodeAccount(intent.nodes_down, intent.nodes_unknown)
    return {"cluster": account.to_json() | {"not_stopped": account.stopped_none}}


def _intent_lines(intent: Intent | None, stale: bool, stamp: float) -> list[str]:
    if intent is None:
        return ["intent:  unknown (corrupt; startup refused until `hecate state reset --intent`)"]
    stale_text = " (stale: no longer blocks startup)" if stale else ""
    if intent.nodes is not None:  # a partial shutdown (power feeds): the cluster runs on
        stale_text += f" (partial: {', '.join(intent.nodes)})"
    lines = [
        f"intent:  {intent.state.value}{stale_text}, {intent.age_text(stamp)} on {intent.host}",
        f"         reason: {intent.reason}",
    ]
    if intent.nodes_down or intent.nodes_unknown:
        lines.append(f"nodes:   {NodeAccount(intent.nodes_down, intent.nodes_unknown).line()}")
    return lines


def _ups_line(ups: dict[str, Any]) -> str:
    if not ups["readable"]:
        return f"ups:     not readable: {ups['error']}"
    return f"ups:     {ups['status']} runtime={ups['runtime_s']}s charge={ups['charge_pct']}%"


def _ups_json(poll: Poll) -> dict[str, Any]:
    if isinstance(poll, CommError):
        return {"readable": False, "error": poll.message, "kind": poll.kind}
    return {
        "readable": True,
        "status": poll.status_text,
        "on_battery": poll.on_battery,
        "runtime_s": poll.runtime_s,
        "charge_pct": poll.charge_pct,
        "load_pct": poll.load_pct,
    }


def show_status(config: Path = DEFAULT_CONFIG_PATH, as_json: bool = False) -> int:
    """The report (cmd_status.status_command's help says what is in it); the exit code:
    EXIT_UNPROTECTED when the cluster is not protected right now, else 0."""
    # validated once per config text, then read without pydantic (hecate.config.view)
    cfg = load_view_kept(config)
    store = StateStore(cfg.state_dir)
    stamp = now()
    # Read-only: a corrupt file is reported, never moved or blocked (the daemon does that).
    problems: list[str] = []
    try:
        intent_state = store.read_intent(stamp, move=False)
    except StateError as exc:  # an unknown intent is shown, never a crash
        problems.append(str(exc))
        intent_state = None
    try:
        runs = store.load_runs(move=False)
    except StateError as exc:
        problems.append(str(exc))
        runs = []
    budget = budget_from_config(cfg, runs)
    max_age = cfg.coordination.startup_guard_max_age_seconds
    poll = read_ups_or_error(cfg)
    ups = _ups_json(poll)
    if isinstance(poll, CommError):
        problems.append(f"UPS not readable, the cluster is not protected: {poll.message}")
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
    # A peer's trigger shut the cluster down: the startup also waits for that peer's UPS.
    recorded = load_awaiting(cfg.state_dir, move=False) if pending else frozenset()
    peers = sorted(recorded) if recorded is not None else ["in coordination.peer_hosts (all)"]
    if waits_for is not None and peers:
        waits_for += f", and the UPS of peer {', '.join(peers)} back on mains and stable"
    if waits_for is not None and intent_state is not None:
        waits_for += power_on_note(intent_state, cfg.power.method_of)
    update = self_update()
    battery = ups_report_data(cfg, poll)
    progress = (
        startup_progress(cfg.state_dir, intent_state.state.value, intent_state.run_id, stamp)
        if intent_state is not None
        else None
    )
    reports = {kind: report_summary(load_report(cfg.state_dir, kind)) for kind in REPORT_KINDS}
    if update_failed():
        problems.append(
            "hecate-update.service failed: Hecate is not updating itself "
            "(journalctl -u hecate-update.service says why)"
        )
    doctor = last_result(cfg.state_dir)
    unprotected = not_protected_reasons(poll, doctor)
    if isinstance(poll, UpsReading) and unprotected:  # a CommError is in problems already
        problems.extend(r for r in unprotected if r.startswith("UPS"))
    etcd = etcd_summary(runs)
    problems.extend(recovery_problem(cfg.state_dir))
    unsaved = unsaved_json(cfg.state_dir)
    if unsaved:
        problems.append(unsaved_problem(unsaved))
    report = {
        "protected": not unprotected,
        "not_protected": unprotected,
        "intent": intent_json,
        "budget": {
            "estimate_s": budget.estimate_s,
            "threshold_s": budget.threshold_s,
            "source": budget.source,
            "samples": budget.samples,
            "max_on_battery_s": cfg.ups.max_on_battery_seconds,
        },
        "runs": [run.to_json() for run in runs[-5:]],
        "ups": ups,
        "startup": {"pending": pending, "waits_for": waits_for}
        | ({"waits_for_peers": peers} if pending else {}),
        "battery": battery,
        "problems": problems,
        "self_update": update.to_json(),
        "startup_progress": progress,
        "reports": reports,
        "doctor": doctor,
        "unsaved": unsaved,
        "etcd": etcd.to_json(stamp),
        "feeds": (feeds := feeds_status(cfg, intent_state)),
        "shed": (shed := shed_status(cfg, stamp)),
    }
    if as_json:
        emit_json(report)
    else:
        _print_text(
            intent_state=intent_state,
            stale=stale,
            stamp=stamp,
            progress=progress,
            budget=budget,
            max_on_battery=cfg.ups.max_on_battery_seconds,
            ups=ups,
            waits_for=waits_for,
            battery=battery,
            runs=runs,
            update=update,
            reports=reports,
            state_dir=cfg.state_dir,
            doctor=doctor,
            problems=problems,
            etcd_lines=etcd.lines(stamp),
            feeds=feeds,
            shed=shed,
        )

    # scripts: `hecate status || alert` (README, Command line)
    return EXIT_UNPROTECTED if unprotected else 0


def power_on_note(intent: Intent, method_of: Callable[[str], str]) -> str:
    """What the startup's first stage (power_on) will do with the nodes the last shutdown
    powered off: how each is powered on again (its power.nodes method)."""
    off = sorted(n for n, how in intent.nodes_down.items() if how == "off")
    if not off:
        return ""
    how = ", ".join(f"{n} ({method_of(n)})" for n in off)
    return f"; then power_on powers on the nodes the shutdown powered off: {how}"


def not_protected_reasons(poll: Poll, doctor: dict[str, Any] | None) -> list[str]:
    """Why the cluster is not protected right now (empty: protected as far as status knows).

    The daemon cannot see an outage without a reading, or with a reading that carries no data
    (an empty status, WAIT, NOCOMM); the last `hecate doctor` run may have found a hole."""
    reasons: list[str] = []
    if isinstance(poll, CommError):
        reasons.append(f"UPS not readable: {poll.message}")
    elif poll.power_source is PowerSource.NO_DATA:
        shown = poll.status_text or "empty"
        reasons.append(f"UPS gives no data (status {shown}), the cluster is not protected")
    if doctor is not None and doctor.get("protected") is False:
        reasons.append("the last `hecate doctor` found the cluster not protected")
    return reasons


def _print_text(
    *,
    intent_state: Intent | None,
    stale: bool,
    stamp: float,
    progress: dict[str, Any] | None,
    budget: Budget,
    max_on_battery: float | None,
    ups: dict[str, Any],
    waits_for: str | None,
    battery: dict[str, Any],
    runs: list[RunRecord],
    update: SelfUpdate,
    reports: dict[str, dict[str, Any] | None],
    state_dir: Path,
    doctor: dict[str, Any] | None,
    problems: list[str],
    etcd_lines: list[str],
    feeds: dict[str, Any] | None = None,
    shed: dict[str, Any] | None = None,
) -> None:
    for line in _intent_lines(intent_state, stale, stamp):
        echo(line)
    for line in [*feeds_status_lines(feeds), *shed_status_lines(shed)]:
        echo(line)
    if progress is not None:
        echo(
            f"         in stage {progress['stage']} for {progress['for_s']:.0f}s"
            + (f": {progress['detail']}" if progress["detail"] else "")
        )
    echo(
        f"budget:  {budget.estimate_s:.0f}s from {budget.source} ({budget.samples} sample(s)); "
        f"shutdown when runtime < {budget.threshold_s:.0f}s"
        + ("" if max_on_battery is None else f" or after {max_on_battery:g}s on battery")
    )
    echo(paint(_ups_line(ups), None if ups["readable"] else BAD))
    if waits_for is not None:
        echo(f"startup: pending; waits for {waits_for}")
    for line in ups_report_lines(battery):
        echo(f"battery: {line.strip()}")
    echo("runs:" if runs else "runs:    none recorded")
    for run in runs[-5:]:
        echo(f"  {run.kind:<8} {run.outcome.value:<11} {run.duration_s:7.1f}s  {run.reason}")
    for line in etcd_lines:
        echo(line)
    echo(f"update:  {update.text}")
    for line in _report_lines(reports, state_dir):
        echo(line)
    line = doctor_line(doctor, stamp)
    echo(paint(line, BAD) if "NOT PROTECTED" in line else line)
    for problem in problems:
        echo(f"{paint('problem:', BAD, err=True)} {problem}", err=True)


REPORT_KINDS = ("startup", "shutdown")


def _report_lines(reports: dict[str, dict[str, Any] | None], state_dir: Path) -> list[str]:
    lines: list[str] = []
    for kind, summary in reports.items():
        if summary is None:
            continue
        lines.append(
            f"last {kind}: {summary['outcome']} ({summary['run_id']}), report "
            f"{state_dir}/last-{kind}-report.json"
        )
        lines.extend(
            f"  {stage['name']:<14} {stage['status']:<8} {stage['detail']}"
            for stage in summary["not_ok"]
        )
    return lines


def startup_progress(
    state_dir: Path, intent_state: str, run_id: str | None, stamp: float
) -> dict[str, Any] | None:
    """Which stage (gate) a startup under way is in, and since when (None otherwise)."""
    data = load_progress(state_dir, move=False)
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
