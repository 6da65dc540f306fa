"""Embedded etcd on the servers, read and acted on through the `etcd` playbook (one raw step
per server, roles/etcd/files/hecate-etcd.sh): the startup's etcd_quorum stage, the shutdown
snapshot's verification and pruning, and the reads `hecate recover etcd` needs. The decisions
are hecate/core/etcd.py's."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hecate.adapters.ansible.events import TaskEvent
from hecate.adapters.ansible.inventory import node_problems
from hecate.adapters.ansible.protocol import PlaybookRequest
from hecate.core.etcd import (
    SNAPSHOT_PREFIX,
    EtcdReading,
    QuorumVerdict,
    decide_datastore,
    parse_probe,
    quorum_verdict,
    render_verdict,
)
from hecate.core.etcd_recover import template_in
from hecate.core.plans import StageSpec, StageStatus
from hecate.core.progress_names import node_line
from hecate.errors import HecateError
from hecate.flows.context import FlowContext, PlaybookStep, Stage, check_cancel, run_playbook

TASK_ETCD = "Run the etcd action"
QUORUM_RETRY_S = 3.0
# once there is quorum, how long more the stage waits for the other members to be healthy
SETTLE_S = 30.0


class EtcdQuorumError(HecateError):
    """etcd did not reach quorum within startup.etcd_quorum_timeout_seconds."""


@dataclass(frozen=True)
class NodeAnswer:
    reachable: bool
    ok: bool
    stdout: str

    def values(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for line in self.stdout.splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip() not in out:
                out[key.strip()] = value.strip()
        return out


def etcd_action(
    ctx: FlowContext,
    nodes: Sequence[str],
    action: str,
    args: Sequence[str] = (),
    *,
    stage_name: str = "etcd",
    timeout_s: float = 60.0,
) -> dict[str, NodeAnswer]:
    """Run one etcd action on `nodes`; each node's answer (unreachable ones included; a node
    the inventory leaves out is not reachable, and says why)."""
    if any(template_in(str(a)) for a in args):  # Ansible would evaluate it on this host
        raise HecateError(f"etcd {action}: an argument holds a Jinja template mark; refused")
    problems = node_problems(ctx.config)
    usable = [n for n in nodes if n not in problems]
    left_out = {n: NodeAnswer(False, False, f"error={problems[n]}") for n in nodes if n in problems}
    if not usable:
        return left_out
    stdout: dict[str, str] = {}
    ok: dict[str, bool] = {}

    def on_event(event: TaskEvent) -> None:
        if event.task == TASK_ETCD and event.result is not None:
            stdout[event.host] = str(event.result.get("stdout", ""))
            ok[event.host] = event.status in ("ok", "changed")
        if event.status in ("ok", "changed", "failed", "unreachable"):
            ctx.progress(
                stage_name,
                event.status,
                node_line(stage_name, event.host, event.task, event.status),
            )

    request = PlaybookRequest(
        "etcd",
        limit=usable,
        extravars={
            "etcd_action": action,
            "etcd_args": list(args),
            "etcd_timeout_s": int(timeout_s),
        },
        timeout_s=timeout_s + float(ctx.config.ssh_connect_timeout_seconds) + 30.0,
    )
    result = ctx.ansible.run(request, on_event=on_event, cancel=ctx.cancel)
    if result.canceled:
        check_cancel(ctx)
    answers: dict[str, NodeAnswer] = dict(left_out)
    for node in usable:
        stats = result.hosts.get(node)
        reachable = not (stats is not None and stats.unreachable) and (
            node in stdout or stats is not None
        )
        answers[node] = NodeAnswer(reachable, ok.get(node, False), stdout.get(node, ""))
    return answers


def read_etcd(ctx: FlowContext, servers: Sequence[str], stage_name: str) -> dict[str, EtcdReading]:
    answers = etcd_action(ctx, servers, "probe", stage_name=stage_name, timeout_s=30.0)
    return {
        node: parse_probe(node, a.stdout)
        if a.reachable and a.stdout
        else EtcdReading(node, reachable=False, error=a.values().get("error", "no answer over SSH"))
        for node, a in answers.items()
    }


def quorum_now(ctx: FlowContext, stage_name: str = "etcd") -> tuple[str, QuorumVerdict]:
    """(the datastore, the quorum verdict) as the servers report them now."""
    servers = list(ctx.config.nodes.servers)
    readings = read_etcd(ctx, servers, stage_name)
    datastore = decide_datastore(ctx.config.cluster.datastore, readings.values())
    return datastore, quorum_verdict(servers, readings)


def start_servers_step(
    ctx: FlowContext, lost: set[str], step: PlaybookStep
) -> Callable[[Stage, StageSpec], None]:
    """start_servers for embedded etcd: first read each server's etcd data directory while
    k3s is still stopped (k3s may rejoin a server whose data is gone as a new, empty member:
    after the start it would look healthy), then the start itself."""

    def run(stage: Stage, spec: StageSpec) -> None:
        readings = read_etcd(ctx, spec.nodes, stage.name)
        lost.update(n for n, r in readings.items() if r.data in ("missing", "empty"))
        if lost and any(r.data == "present" for r in readings.values()):
            stage.note(f"etcd data missing before the start: {', '.join(sorted(lost))}")
        elif lost:
            lost.clear()  # no server has etcd data: SQLite, or nothing to compare with
        run_playbook(
            ctx, stage, step.playbook, list(spec.nodes), timeout_s=step.timeout_s, **step.extravars
        )

    return run


def etcd_quorum_gate(ctx: FlowContext, stage: Stage, lost: set[str] | None = None) -> None:
    """Wait for etcd quorum; with it, give the other members a moment, then name the ones to
    repair (the stage partial); without it by the bound, stop the startup with the report."""
    timeout = ctx.config.startup.etcd_quorum_timeout_seconds
    deadline = ctx.monotonic() + timeout
    settle_until: float | None = None
    while True:
        check_cancel(ctx)
        servers = list(ctx.config.nodes.servers)
        readings = read_etcd(ctx, servers, stage.name)
        datastore = decide_datastore(ctx.config.cluster.datastore, readings.values())
        verdict = quorum_verdict(servers, readings, lost or ())
        if datastore == "sqlite":
            stage.status = StageStatus.SKIPPED
            stage.note("datastore sqlite (no etcd data directory on the servers)")
            stage.facts["datastore"] = datastore
            return
        if not any(r.reachable for r in readings.values()) and _api_answers(ctx):
            # etcd cannot be read over SSH, but the API answers: it does only with quorum
            stage.status = StageStatus.WARNING
            stage.note("no server readable over SSH; the API answers, so etcd has quorum")
            return
        refused = [r for r in readings.values() if r.reachable and "sudo refused" in r.error]
        if refused and len(refused) == sum(1 for r in readings.values() if r.reachable):
            # no server lets Hecate read etcd: say so and let wait_api judge, rather than
            # stopping a cold start for a missing sudoers rule
            stage.status = StageStatus.WARNING
            stage.note(refused[0].error)
            return
        stage.facts["etcd_quorum"] = verdict.to_json()
        stage.facts["datastore"] = datastore
        for member in verdict.members:
            stage.nodes[member.node] = "ok" if member.state == "healthy" else member.state
        now = ctx.monotonic()
        if verdict.quorum:
            waiting = [
                m
                for m in verdict.troubled
                if m.state in ("unit_not_running", "behind", "unhealthy")
            ]
            settle_until = settle_until or min(deadline, now + SETTLE_S)
            if not verdict.troubled or not waiting or now >= settle_until:
                break
        elif now >= deadline:
            stage.status = StageStatus.FAILED
            stage.detail = "\n".join(render_verdict(verdict))
            raise EtcdQuorumError(
                f"no etcd quorum within {timeout:.0f}s: "
                + "; ".join(f"{m.node} {m.state}" for m in verdict.troubled)
                + f". next: {verdict.next_step}"
            )
        ctx.progress(stage.name, "waiting", render_verdict(verdict)[0])
        ctx.sleep(min(QUORUM_RETRY_S, max(0.0, deadline - ctx.monotonic())))
    if verdict.troubled:
        stage.status = StageStatus.PARTIAL
    stage.note(
        "; ".join(
            render_verdict(verdict)[0:1]
            + ([f"next: {verdict.next_step}"] if verdict.next_step else [])
        )
    )


def snapshot_stage(ctx: FlowContext, stage: Stage, node: str, run_id: str) -> None:
    """k3s etcd-snapshot save on `node`, then (same playbook) its check and the pruning of
    Hecate's older snapshots; the snapshot's name, node and path go into the run's facts.
    Never raises for the snapshot itself: a failed or unverified one is a warning."""
    shutdown = ctx.config.shutdown
    name = f"{SNAPSHOT_PREFIX}-{run_id}"
    stdout: dict[str, str] = {}

    def listen(event: TaskEvent) -> None:
        if event.task == TASK_ETCD and event.result is not None:
            stdout[event.host] = str(event.result.get("stdout", ""))

    result = run_playbook(
        ctx,
        stage,
        "etcd_snapshot",
        [node],
        timeout_s=shutdown.etcd_snapshot_timeout_seconds + 90,
        listen=listen,
        etcd_snapshot_name=name,
        etcd_snapshot_timeout_s=int(shutdown.etcd_snapshot_timeout_seconds),
        etcd_snapshot_required=False,
        etcd_snapshot_verify_keep=shutdown.etcd_snapshots_kept,
        etcd_snapshot_prune_prefix=SNAPSHOT_PREFIX,
    )
    if stage.status != StageStatus.OK or not result.ok or node not in stdout:
        # A failed snapshot is reported but never blocks a power-triggered shutdown.
        stage.status = StageStatus.WARNING
        stage.note("snapshot failed or not checked; shutdown continues")
        return
    record_snapshot(ctx, stage, node, name, run_id, NodeAnswer(True, True, stdout[node]))


def record_snapshot(
    ctx: FlowContext, stage: Stage, node: str, name: str, run_id: str, answer: NodeAnswer
) -> None:
    values = answer.values()
    path = values.get("path", "")
    size = int(values["size"]) if values.get("size", "").isdigit() else 0
    how, verified = "size and readability (no etcdctl on the server)", size > 0
    if "etcdctl" in values:
        status = _json(values["etcdctl"])
        how = "etcdctl snapshot status"
        verified = verified and isinstance(status, dict) and "hash" in status
    cluster = _json(values.get("cluster", ""))
    if isinstance(cluster, list) and cluster and isinstance(cluster[0], dict):
        cluster = cluster[0].get("Status")  # etcdctl endpoint status -w json
    header = cluster.get("header") if isinstance(cluster, dict) else None
    mtime = values.get("mtime", "")
    stage.facts["etcd_snapshot"] = {
        "name": name,
        "node": node,
        "path": path,
        "size": size,
        "verified": verified,
        "checked_by": how,
        "taken_at": float(mtime) if mtime.isdigit() else ctx.clock(),
        "cluster_id": str(header.get("cluster_id", "")) if isinstance(header, dict) else "",
        "run_id": run_id,
    }
    if not verified:
        stage.status = StageStatus.WARNING
        problem = values.get("error") or values.get("etcdctl") or f"{path or name}: empty"
        stage.note(f"snapshot not verified by {how}: {problem}")
        return
    stage.note(f"{path} on {node}, {size} bytes, checked by {how}")
    gone = [line for line in answer.stdout.splitlines() if line.startswith("pruned=")]
    if gone:
        stage.note(
            f"pruned {len(gone)} older Hecate snapshot(s), "
            f"{ctx.config.shutdown.etcd_snapshots_kept} kept"
        )


def _api_answers(ctx: FlowContext) -> bool:
    try:
        return ctx.kube.available and ctx.kube.readyz()
    except HecateError:
        return False


def _json(text: str) -> object:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None
