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


def _node_empty(kube: KubeApi, node: str) -> bool:
    return not kube.pods_on_node(node)


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
            remaining[node] = kube.pods_on_node(node)
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
                remaining[node] = kube.pods_on_node(node)
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
