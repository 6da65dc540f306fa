"""`hecate recover etcd`: k3s's cluster reset from a snapshot, carried out step by step from the
plan hecate/core/etcd_recover.py made (the same plan the dry run prints). Each step done is
recorded in state_dir/etcd-recovery.json before the next starts, so a second run finishes an
interrupted recovery, or says exactly where it stopped. Nothing is deleted: the other servers'
etcd data is moved aside.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from hecate.adapters.statedir.files import atomic_write_json, read_json
from hecate.adapters.statedir.save import flow_lock
from hecate.core.etcd import QuorumVerdict, quorum_verdict, render_verdict
from hecate.core.etcd_recover import (
    RecoverPlan,
    RecoverRequest,
    RecoverStep,
    RecoveryRecord,
    SnapshotFacts,
    choose,
    plan_recovery,
    resume_plan,
    template_in,
)
from hecate.core.etcd_status import recorded_snapshots
from hecate.errors import HecateError
from hecate.flows.context import FlowContext, Stage, run_playbook
from hecate.flows.etcd import EtcdQuorumError, etcd_action, etcd_quorum_gate, read_etcd

RECORD_FILE = "etcd-recovery.json"


class RecoverRefusedError(HecateError):
    """The recovery may not run (the reasons are in `plan.refusals`)."""

    def __init__(self, plan: RecoverPlan) -> None:
        super().__init__("recovery refused: " + "; ".join(plan.refusals))
        self.plan = plan


class RecoverFailedError(HecateError):
    """A step failed: the recovery stopped there (recorded; a second run resumes it)."""


@dataclass
class RecoverOutcome:
    plan: RecoverPlan
    executed: bool
    resumed: str = ""  # the interrupted recovery this run finishes (its description)
    done: list[str] = field(default_factory=list)
    verdict: QuorumVerdict | None = None
    record_path: str = ""


def record_path(state_dir: Path) -> Path:
    return state_dir / RECORD_FILE


def load_record(state_dir: Path) -> RecoveryRecord | None:
    data = read_json(record_path(state_dir), move=False)
    if data is None:
        return None
    try:
        record = RecoveryRecord.from_json(data)
        resume_plan(record)  # its plan checked here: a damaged one fails closed, untouched
        return record
    except (KeyError, TypeError, ValueError) as exc:
        raise HecateError(
            f"{record_path(state_dir)} is unreadable ({exc}): read it, then move it away to "
            "plan a new recovery"
        ) from None


def recover_etcd(ctx: FlowContext, request: RecoverRequest, *, execute: bool) -> RecoverOutcome:
    config = ctx.config
    with flow_lock(config.state_dir, "recover etcd", required=True):
        previous = load_record(config.state_dir)
        if previous is not None and previous.unfinished:
            plan = resume_plan(previous)
            if "reset" not in previous.done:
                _refuse_on_quorum(ctx, plan)
            outcome = RecoverOutcome(plan, execute, resumed=previous.describe())
            outcome.record_path = str(record_path(config.state_dir))
            if execute:
                _carry_out(ctx, plan, previous, outcome)
            return outcome
        plan = _plan(ctx, request)
        if plan.refusals:
            raise RecoverRefusedError(plan)
        outcome = RecoverOutcome(plan, execute)
        if execute:
            record = RecoveryRecord(plan.to_json(), started_at=ctx.clock())
            outcome.record_path = str(record_path(config.state_dir))
            _carry_out(ctx, plan, record, outcome)
        return outcome


def _refuse_on_quorum(ctx: FlowContext, plan: RecoverPlan) -> None:
    """Nothing reset yet: the guard that is never lifted holds for the resumed plan too (a
    quorum back since, say the servers were only partitioned, is not thrown away)."""
    servers = list(ctx.config.nodes.servers)
    if quorum_verdict(servers, read_etcd(ctx, servers, "recover")).quorum:
        why = (
            "etcd has a healthy quorum again and the interrupted recovery reset nothing yet: a "
            "restore would throw away everything written since the snapshot. Read "
            f"{record_path(ctx.config.state_dir)}, then move it away (it is not resumed)"
        )
        raise RecoverRefusedError(dataclasses.replace(plan, refusals=(why,)))


def _plan(ctx: FlowContext, request: RecoverRequest) -> RecoverPlan:
    config = ctx.config
    servers = list(config.nodes.servers)
    readings = read_etcd(ctx, servers, "recover")
    verdict = quorum_verdict(servers, readings)
    try:
        runs = ctx.store.load_runs(move=False)
    except HecateError:
        runs = []
    recorded = recorded_snapshots(run.facts for run in runs)
    server, path, _record, _ = choose(request, recorded, servers)
    facts: SnapshotFacts | None = None
    if server in servers and path and not template_in(path):
        answer = etcd_action(
            ctx, [server], "snapshot", [path, config.recover.token_file], stage_name="recover"
        )[server]
        if answer.reachable and answer.stdout:
            values = answer.values()
            facts = SnapshotFacts(
                exists=values.get("exists") == "yes",
                size=int(values["size"]) if values.get("size", "").isdigit() else 0,
                mtime=float(values["mtime"]) if values.get("mtime", "").isdigit() else None,
                readable=values.get("readable") == "yes",
                token=values.get("token") == "yes",
                error=values.get("etcdctl", "")
                if '"hash"' not in values.get("etcdctl", "")
                else "",
            )
            if "etcdctl" in values and '"hash"' not in values["etcdctl"]:
                facts = dataclasses.replace(facts, readable=False)
    return plan_recovery(
        request,
        servers=servers,
        recorded=recorded,
        verdict=verdict,
        facts=facts,
        cluster_id=verdict.cluster_id,
        max_age_s=config.recover.max_snapshot_age_seconds,
        now=ctx.clock(),
    )


def _save(ctx: FlowContext, record: RecoveryRecord) -> None:
    atomic_write_json(record_path(ctx.config.state_dir), record.to_json())


def _carry_out(
    ctx: FlowContext, plan: RecoverPlan, record: RecoveryRecord, outcome: RecoverOutcome
) -> None:
    record.outcome, record.detail = "running", ""
    _save(ctx, record)
    for step in plan.steps:
        if step.kind in record.done:
            continue
        ctx.progress("recover", "running", step.text)
        try:
            _step(ctx, plan, step, outcome)
        except HecateError as exc:
            record.outcome, record.detail = "stopped", f"{step.kind}: {exc}"
            _save(ctx, record)
            raise RecoverFailedError(
                f"recovery stopped at {step.kind} ({exc}); nothing was deleted. "
                f"{record.describe()}. Fix that, then run `hecate recover etcd --execute` "
                "again: it resumes here"
            ) from None
        record.done.append(step.kind)
        outcome.done.append(step.kind)
        _save(ctx, record)
    record.outcome, record.finished_at = "success", ctx.clock()
    _save(ctx, record)


def _step(ctx: FlowContext, plan: RecoverPlan, step: RecoverStep, outcome: RecoverOutcome) -> None:
    if not step.nodes and step.kind != "quorum":
        return
    if step.kind in ("stop_all", "start_first", "start_rest"):
        playbook = "stop_servers" if step.kind == "stop_all" else "start_servers"
        stage = Stage(step.kind)
        timeout = ctx.config.shutdown.stop_timeout_seconds
        run_playbook(
            ctx,
            stage,
            playbook,
            list(step.nodes),
            timeout_s=timeout + 60,
            k3s_service_timeout_s=int(timeout),
            k3s_service_use_killall=False,
        )
        bad = {n: s for n, s in stage.nodes.items() if s != "ok"}
        if bad:
            raise RecoverFailedError(
                ", ".join(f"{n} {s}" for n, s in bad.items())
                + (
                    ": k3s must be stopped on every server before the reset (an unreachable "
                    "one may still run its old etcd): bring it back or power it off"
                    if step.kind == "stop_all"
                    else ""
                )
            )
        return
    if step.kind in ("reset", "move_aside"):
        args = (
            [plan.snapshot, ctx.config.recover.token_file]
            if step.kind == "reset"
            else [plan.moved_to]
        )
        answers = etcd_action(ctx, step.nodes, step.kind, args, stage_name="recover", timeout_s=600)
        failed = [n for n, a in answers.items() if not a.ok]
        if failed:
            why = "; ".join(
                f"{n}: "
                + (
                    "unreachable"
                    if not answers[n].reachable
                    else (answers[n].values().get("error") or answers[n].stdout[-300:] or "failed")
                )
                for n in failed
            )
            raise RecoverFailedError(why)
        return
    stage = Stage("etcd_quorum")
    try:
        etcd_quorum_gate(ctx, stage)
    except EtcdQuorumError as exc:
        raise RecoverFailedError(str(exc)) from None
    readings = read_etcd(ctx, list(ctx.config.nodes.servers), "recover")
    outcome.verdict = quorum_verdict(list(ctx.config.nodes.servers), readings)


def describe_outcome(outcome: RecoverOutcome) -> list[str]:
    """The one screen `hecate recover etcd` prints."""
    plan = outcome.plan
    lines: list[str] = []
    if outcome.resumed:
        lines.append(f"unfinished: {outcome.resumed}")
    lines.append(f"recover etcd on {plan.server} from {plan.snapshot}:")
    for number, step in enumerate(plan.steps, 1):
        mark = "done" if step.kind in outcome.done else ("" if outcome.executed else "plan")
        lines.append(f"  {number}. [{mark or 'todo'}] {step.text}")
    lines += [f"warning: {w}" for w in plan.warnings]
    if outcome.verdict is not None:
        lines += render_verdict(outcome.verdict)
    if outcome.record_path:
        lines.append(f"recorded in {outcome.record_path}")
    if not outcome.executed:
        lines.append("dry run: add --execute to carry it out")
    return lines
