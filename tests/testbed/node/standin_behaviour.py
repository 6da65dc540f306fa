"""Behaviours of a real cluster that the stand-in (``kube_standin.py``) models, kept apart from it.

Pure functions over the stand-in's JSON objects (standard library only: this file is copied into
the twin's nodes next to ``kube_standin.py``, which imports it):

* **PodDisruptionBudgets** (policy/v1): the disruption controller's status
  (:func:`pdb_status`) and the eviction subresource's answer when a budget refuses
  (:func:`eviction_refusal`, HTTP 429, reason ``TooManyRequests``, cause ``DisruptionBudget``, as
  ``pkg/registry/core/pod/storage/eviction.go`` answers); a Pod that is not running or already
  terminating may always be evicted (:func:`pdb_ignores`).
* **Terminating Pods**: a delete (or an eviction) with a grace period sets ``deletionTimestamp``
  (now + grace) and ``deletionGracePeriodSeconds``; the Pod stays, listed, until its grace ends
  and its node's kubelet confirms (a Pod on a NotReady node stays Terminating until deleted with
  grace 0, as on a real cluster); a later delete may only shorten the grace; grace 0 removes it
  at once (:func:`terminate`, :func:`termination_over`).

etcd quorum is no longer a rule written here: the servers run a real etcd (``etcd_member.py``).
"""

from __future__ import annotations

import math
import time
from typing import Any

Obj = dict[str, Any]

# A private annotation: when a Terminating Pod may go (seconds since the epoch); never served.
ANN_DELETE_AT = "twin.hecate.io/delete-at"
DISRUPTION_BUDGET_CAUSE = "DisruptionBudget"


def _rfc3339(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


# --------------------------------------------------------------------------------------------
# Label selectors (metav1.LabelSelector objects)


def selector_matches(selector: Obj | None, labels: dict[str, str]) -> bool:
    """A LabelSelector against labels. An empty selector matches every Pod (policy/v1)."""
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(str(key)) != str(value):
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op = str(expr.get("key", "")), str(expr.get("operator", ""))
        values = {str(v) for v in expr.get("values") or []}
        present = key in labels
        if (
            (op == "In" and (not present or labels[key] not in values))
            or (op == "NotIn" and present and labels[key] in values)
            or (op == "Exists" and not present)
            or (op == "DoesNotExist" and present)
        ):
            return False
    return True


# --------------------------------------------------------------------------------------------
# PodDisruptionBudgets


def is_terminating(pod: Obj) -> bool:
    return bool(pod.get("metadata", {}).get("deletionTimestamp"))


def _pod_ready(pod: Obj) -> bool:
    for cond in pod.get("status", {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def _labels(obj: Obj) -> dict[str, str]:
    value = obj.get("metadata", {}).get("labels") or {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def covered_pods(pdb: Obj, pods: list[Obj]) -> list[Obj]:
    """The Pods of the budget's namespace its selector picks."""
    namespace = pdb["metadata"].get("namespace", "")
    selector = pdb.get("spec", {}).get("selector")
    return [
        p
        for p in pods
        if p["metadata"].get("namespace") == namespace and selector_matches(selector, _labels(p))
    ]


def budgets_of(pod: Obj, pdbs: list[Obj]) -> list[Obj]:
    return [b for b in pdbs if covered_pods(b, [pod])]


def _scaled(value: Any, expected: int, *, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        share = expected * int(value[:-1]) / 100
        return math.ceil(share) if round_up else math.floor(share)
    return int(value)


def pdb_status(pdb: Obj, pods: list[Obj], now: float) -> Obj:
    """The status the disruption controller keeps: expected, healthy, desired and allowed."""
    mine = [p for p in covered_pods(pdb, pods) if not is_terminating(p)]
    expected = len(mine)
    healthy = sum(1 for p in mine if _pod_ready(p))
    spec = pdb.get("spec", {})
    if "minAvailable" in spec:
        desired = _scaled(spec["minAvailable"], expected, round_up=True)
    elif "maxUnavailable" in spec:
        desired = expected - _scaled(spec["maxUnavailable"], expected, round_up=True)
    else:
        desired = expected
    desired = max(desired, 0)
    allowed = max(healthy - desired, 0)
    generation = int(pdb["metadata"].get("generation", 1))
    old = pdb.get("status", {})
    old_cond = next(
        (c for c in old.get("conditions") or [] if c.get("type") == "DisruptionAllowed"), None
    )
    status = "True" if allowed > 0 else "False"
    transition = (
        old_cond["lastTransitionTime"]
        if old_cond and old_cond.get("status") == status
        else _rfc3339(now)
    )
    return {
        "observedGeneration": generation,
        "disruptionsAllowed": allowed,
        "currentHealthy": healthy,
        "desiredHealthy": desired,
        "expectedPods": expected,
        "conditions": [
            {
                "type": "DisruptionAllowed",
                "status": status,
                "reason": "SufficientPods" if allowed > 0 else "InsufficientPods",
                "message": "",
                "observedGeneration": generation,
                "lastTransitionTime": transition,
            }
        ],
    }


def pdb_ignores(pod: Obj) -> bool:
    """A Pod that is not running, or already terminating, may be evicted whatever the budget."""
    phase = pod.get("status", {}).get("phase")
    return phase in ("Pending", "Succeeded", "Failed") or is_terminating(pod)


def eviction_refusal(pdb: Obj, status: Obj) -> Obj:
    """The Status body of an eviction a budget refuses (HTTP 429)."""
    name = pdb["metadata"]["name"]
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Cannot evict pod as it would violate the pod's disruption budget.",
        "reason": "TooManyRequests",
        "details": {
            "causes": [
                {
                    "reason": DISRUPTION_BUDGET_CAUSE,
                    "message": (
                        f"The disruption budget {name} needs {status['desiredHealthy']} healthy "
                        f"pods and has {status['currentHealthy']} currently"
                    ),
                }
            ]
        },
        "code": 429,
    }


def too_many_budgets_message() -> str:
    return (
        "This pod has more than one PodDisruptionBudget, which the eviction subresource "
        "does not support."
    )


# --------------------------------------------------------------------------------------------
# Terminating Pods


def grace_of(pod: Obj, query: dict[str, str], body: Obj | None = None) -> int:
    """The grace period a delete asks for: the query's, the DeleteOptions', else the Pod's."""
    if "gracePeriodSeconds" in query:
        return max(int(query["gracePeriodSeconds"]), 0)
    if body and body.get("gracePeriodSeconds") is not None:
        return max(int(body["gracePeriodSeconds"]), 0)
    return int(pod.get("spec", {}).get("terminationGracePeriodSeconds", 30) or 0)


def terminate(pod: Obj, grace: int, now: float) -> Obj | None:
    """The Pod marked Terminating for ``grace`` seconds, or None when it goes at once (grace 0).

    A Pod already terminating keeps its deadline unless the new one is sooner (the API only
    shortens a grace period)."""
    if grace <= 0:
        return None
    md = pod["metadata"]
    annotations = md.setdefault("annotations", {})
    deadline = now + grace
    if is_terminating(pod) and ANN_DELETE_AT in annotations:
        old = float(annotations[ANN_DELETE_AT])
        if old <= deadline:
            return pod
    annotations[ANN_DELETE_AT] = f"{deadline:.3f}"
    md["deletionTimestamp"] = _rfc3339(deadline)
    md["deletionGracePeriodSeconds"] = grace
    return pod


def termination_over(pod: Obj, now: float, node_ready: bool) -> bool:
    """A Terminating Pod goes when its grace is over and its kubelet confirms (a Pod never bound
    to a node needs no kubelet)."""
    if not is_terminating(pod):
        return False
    deadline = float(pod["metadata"].get("annotations", {}).get(ANN_DELETE_AT, "0"))
    bound = bool(pod.get("spec", {}).get("nodeName"))
    return now >= deadline and (node_ready or not bound)
