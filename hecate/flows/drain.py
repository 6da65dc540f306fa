"""The shutdown's drain: the agents' pods go by eviction, then deletion, then deletion without
grace. Every agent is drained at once, under one deadline per step, so N agents take at most one
``drain_timeout_seconds``, not N of them."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from functools import partial

from hecate.adapters.kube.types import PodRef
from hecate.errors import KubeError
from hecate.flows.context import FlowContext, KubeApi, Stage, wait_until

# The grace a plain delete (the second step) gives a pod: at most this, and at most half the
# step, so a pod that honours it is seen gone within the step; one that does not (a hung
# kubelet keeps it Terminating) is deleted without grace by the third step.
DELETE_GRACE_S = 30


def _movable(kube: KubeApi, node: str) -> list[PodRef]:
    """The pods a drain moves: not a DaemonSet's or a static pod's (PodRef.stays), which their
    controller or kubelet puts back at once and which stop with the node, as `kubectl drain
    --ignore-daemonsets` leaves them. Waiting on them cost every real shutdown its whole
    drain timeout and ended in force-deletes that changed nothing."""
    return [p for p in kube.pods_on_node(node) if not p.stays]


def _node_empty(kube: KubeApi, node: str) -> bool:
    return not _movable(kube, node)


def _all_empty(kube: KubeApi, nodes: list[str]) -> bool:
    # A listing that fails is "not empty yet": the step keeps waiting its bound (one transient
    # error must not rush every agent on to deletes without grace); the listing after the wait
    # is what marks a node failed.
    try:
        return all(_node_empty(kube, node) for node in nodes)
    except KubeError:
        return False


def drain(ctx: FlowContext, stage: Stage, agents: list[str]) -> None:
    """Evict, then delete, then delete without grace: each step gets a third of the timeout, a
    deadline shared by every agent. A PDB refusing an eviction (429) or a pod that stays
    Terminating is left to the next step; a node whose pods cannot be listed is `failed`."""
    kube = ctx.kube
    step_s = ctx.config.shutdown.drain_timeout_seconds / 3
    grace_s = max(1, min(DELETE_GRACE_S, int(step_s / 2)))
    escalations: tuple[tuple[str, Callable[[PodRef], None]], ...] = (
        ("evicted", kube.evict),
        ("deleted", lambda pod: kube.delete_pod(pod, grace_s=grace_s)),
        ("force-deleted", lambda pod: kube.delete_pod(pod, grace_s=0)),
    )
    remaining: dict[str, list[PodRef]] = {}
    how: dict[str, str] = {}
    for node in agents:
        try:
            remaining[node] = _movable(kube, node)
        except KubeError as exc:
            _failed(stage, node, exc)
            continue
        how[node] = "empty"
    for label, action in escalations:
        busy = [node for node, pods in remaining.items() if pods]
        if not busy:
            break
        for node in busy:
            for pod in remaining[node]:
                # A PDB refusal or a vanished pod: the next escalation handles it.
                with contextlib.suppress(KubeError):
                    action(pod)
            how[node] = label
        with contextlib.suppress(KubeError):  # a failed listing is seen just below, per node
            wait_until(ctx, partial(_all_empty, kube, busy), step_s)
        for node in busy:
            try:
                remaining[node] = _movable(kube, node)
            except KubeError as exc:
                del remaining[node]
                _failed(stage, node, exc)
    for node in (n for n in agents if n in remaining):
        pods = remaining[node]
        stage.nodes[node] = "failed" if pods else "ok"
        stage.note(f"{node}: {len(pods)} pod(s) remain" if pods else f"{node}: {how[node]}")
        if pods:
            stage.status = "partial"


def _failed(stage: Stage, node: str, exc: KubeError) -> None:
    stage.nodes[node] = "failed"
    stage.status = "partial"
    stage.note(f"{node}: {exc}")


EVICT_RETRY_S = 5.0  # how often a refused eviction (a PodDisruptionBudget's 429) is asked again


def evict_drain(ctx: FlowContext, stage: Stage, agents: list[str], bound_s: float) -> list[str]:
    """Load shedding's drain (issue 28): eviction only, never a delete. Evictions honour the
    PodDisruptionBudgets (a refusal is asked again every EVICT_RETRY_S, as `kubectl drain`
    does) and each pod's own grace period; all agents share one `bound_s`. A DaemonSet's or a
    static pod (PodRef.stays) is left: it stops with the node. Returns the agents drained; an
    agent whose pods could not all be evicted in the bound, or not listed, is `failed` with
    why (the caller leaves it running: powering it off would kill them without grace)."""
    kube = ctx.kube
    deadline = ctx.monotonic() + bound_s
    remaining: dict[str, list[PodRef]] = {node: [] for node in agents}
    while True:
        unlisted: dict[str, KubeError] = {}
        for node in remaining:
            try:
                remaining[node] = _movable(kube, node)
            except KubeError as exc:  # looked at again until the bound
                unlisted[node] = exc
        busy = {node: pods for node, pods in remaining.items() if pods}
        left_s = deadline - ctx.monotonic()
        if (not busy and not unlisted) or left_s <= 0:
            break
        for pods in busy.values():
            for pod in pods:
                with contextlib.suppress(KubeError):  # refused (PDB) or gone: asked again
                    kube.evict(pod)
        watched = [*busy, *unlisted]
        wait_until(ctx, partial(_all_empty, kube, watched), min(EVICT_RETRY_S, left_s))
    for node, error in unlisted.items():
        del remaining[node]
        _failed(stage, node, error)
    for node, pods in remaining.items():
        stage.nodes[node] = "failed" if pods else "ok"
        if pods:
            stage.status = "partial"
            names = ", ".join(f"{p.namespace}/{p.name}" for p in pods[:3])
            more = f" and {len(pods) - 3} more" if len(pods) > 3 else ""
            stage.causes[node] = (
                f"{len(pods)} pod(s) not evicted within {bound_s:.0f}s (a PodDisruptionBudget "
                f"or a long grace period): {names}{more}"
            )
    return [n for n in agents if stage.nodes.get(n) == "ok"]
