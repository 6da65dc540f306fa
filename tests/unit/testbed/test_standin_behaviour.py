"""The stand-in's real-cluster behaviours, pure functions (node/standin_behaviour.py)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.testbed.node import standin_behaviour as b

NOW = 1_800_000_000.0


def _pod(name: str, *, ready: bool = True, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "shop", "labels": labels or {"app": "web"}},
        "spec": {"nodeName": "a1", "terminationGracePeriodSeconds": 30},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def _pdb(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": "shop", "generation": 1},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, **spec},
    }


@pytest.mark.parametrize(
    ("selector", "labels", "matches", "why"),
    [
        (None, {"app": "web"}, True, "no selector: every Pod (policy/v1)"),
        ({}, {}, True, "an empty selector matches everything"),
        ({"matchLabels": {"app": "web"}}, {"app": "db"}, False, "a label with another value"),
        ({"matchLabels": {"app": "web"}}, {}, False, "a missing label"),
        ({"matchExpressions": [{"key": "app", "operator": "In", "values": ["a", "web"]}]},
         {"app": "web"}, True, "In a set"),
        ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]},
         {"app": "web"}, False, "NotIn the set"),
        ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]},
         {}, True, "NotIn: a missing key is not in the set"),
        ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, {"app": "x"}, False,
         "Exists needs the key"),
        ({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, {"app": "x"}, True,
         "DoesNotExist without the key"),
    ],
)  # fmt: skip
def test_label_selectors(
    selector: dict[str, Any] | None, labels: dict[str, str], matches: bool, why: str
) -> None:
    assert b.selector_matches(selector, labels) is matches, why


@given(
    ready=st.integers(0, 8),
    unready=st.integers(0, 8),
    leaving=st.integers(0, 3),
    min_available=st.one_of(st.integers(0, 10), st.integers(0, 100).map(lambda p: f"{p}%")),
)
def test_pdb_status_counts_healthy_pods_and_never_allows_below_the_minimum(
    ready: int, unready: int, leaving: int, min_available: int | str
) -> None:
    pods = [_pod(f"r{i}") for i in range(ready)] + [
        _pod(f"u{i}", ready=False) for i in range(unready)
    ]
    for i in range(leaving):  # Terminating Pods count for nothing
        pod = _pod(f"t{i}")
        pod["metadata"]["deletionTimestamp"] = "2027-01-15T08:00:00Z"
        pods.append(pod)
    pods.append(_pod("other", labels={"app": "db"}))  # not the budget's
    status = b.pdb_status(_pdb(minAvailable=min_available), pods, NOW)
    assert status["expectedPods"] == ready + unready
    assert status["currentHealthy"] == ready
    assert status["disruptionsAllowed"] == max(ready - status["desiredHealthy"], 0)
    assert ready - status["disruptionsAllowed"] >= min(status["desiredHealthy"], ready)
    condition = status["conditions"][0]
    assert condition["status"] == ("True" if status["disruptionsAllowed"] > 0 else "False")


@pytest.mark.parametrize(
    ("spec", "desired", "why"),
    [
        ({"minAvailable": 2}, 2, "an absolute minimum"),
        ({"minAvailable": "50%"}, 2, "50% of 3 rounds up"),
        ({"maxUnavailable": 1}, 2, "3 expected, 1 may go"),
        ({"maxUnavailable": "50%"}, 1, "50% of 3 unavailable rounds up: 2 may go"),
        ({}, 3, "neither: every Pod must stay"),
    ],
)
def test_desired_healthy_as_the_disruption_controller_computes_it(
    spec: dict[str, Any], desired: int, why: str
) -> None:
    pods = [_pod(f"p{i}") for i in range(3)]
    assert b.pdb_status(_pdb(**spec), pods, NOW)["desiredHealthy"] == desired, why


def test_the_refusal_is_the_eviction_subresource_s_status() -> None:
    status = b.pdb_status(_pdb(minAvailable=2), [_pod("a"), _pod("b")], NOW)
    body = b.eviction_refusal(_pdb(minAvailable=2), status)
    assert body["code"] == 429 and body["reason"] == "TooManyRequests"
    assert body["details"]["causes"][0]["reason"] == "DisruptionBudget"
    assert "needs 2 healthy pods and has 2 currently" in body["details"]["causes"][0]["message"]


@pytest.mark.parametrize(
    ("phase", "terminating", "ignored"),
    [("Running", False, False), ("Pending", False, True), ("Succeeded", False, True),
     ("Failed", False, True), ("Running", True, True)],
)  # fmt: skip
def test_pods_a_budget_never_protects(phase: str, terminating: bool, ignored: bool) -> None:
    pod = _pod("p")
    pod["status"]["phase"] = phase
    if terminating:
        pod["metadata"]["deletionTimestamp"] = "2027-01-15T08:00:00Z"
    assert b.pdb_ignores(pod) is ignored


def test_the_grace_a_delete_asks_for() -> None:
    pod = _pod("p")
    assert b.grace_of(pod, {}) == 30  # the Pod's own
    assert b.grace_of(pod, {}, {"gracePeriodSeconds": 5}) == 5  # DeleteOptions
    assert b.grace_of(pod, {"gracePeriodSeconds": "0"}, {"gracePeriodSeconds": 5}) == 0  # query


@given(first=st.integers(1, 120), second=st.integers(0, 120), gap=st.floats(0, 60))
def test_a_later_delete_only_shortens_the_grace(first: int, second: int, gap: float) -> None:
    pod = b.terminate(_pod("p"), first, NOW)
    assert pod is not None and pod["metadata"]["deletionGracePeriodSeconds"] == first
    again = b.terminate(pod, second, NOW + gap)
    if second == 0:
        assert again is None  # grace 0: gone at once
        return
    assert again is not None
    deadline = float(again["metadata"]["annotations"][b.ANN_DELETE_AT])
    assert deadline == pytest.approx(min(NOW + first, NOW + gap + second), abs=0.01)


def test_a_terminating_pod_goes_after_its_grace_only_with_its_kubelet() -> None:
    pod = b.terminate(_pod("p"), 10, NOW)
    assert pod is not None
    assert not b.termination_over(pod, NOW + 9, node_ready=True)
    assert b.termination_over(pod, NOW + 10, node_ready=True)
    assert not b.termination_over(pod, NOW + 1000, node_ready=False)  # the kubelet is gone
    pod["spec"].pop("nodeName")
    assert b.termination_over(pod, NOW + 10, node_ready=False)  # never bound: no kubelet needed
    assert not b.termination_over(_pod("q"), NOW, node_ready=True)  # not terminating
