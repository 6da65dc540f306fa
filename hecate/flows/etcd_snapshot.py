"""The shutdown's etcd_snapshot stage: `k3s etcd-snapshot save` on one server through the
`etcd_snapshot` playbook, then (same playbook) its check and the pruning of Hecate's older
snapshots; what was taken goes into the run's facts. The decisions are hecate/core/etcd.py's."""

from __future__ import annotations

import json

from hecate.adapters.ansible.events import TaskEvent
from hecate.core.etcd import SNAPSHOT_PREFIX
from hecate.core.plans import StageStatus
from hecate.flows.context import FlowContext, Stage, run_playbook
from hecate.flows.etcd import TASK_ETCD, NodeAnswer


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


def _json(text: str) -> object:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None
