"""Behaviours of the stand-in the flows must survive on a real cluster, with Hecate's adapter
against it (local processes: no podman, no lock)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from hecate.adapters.ansible.port import AnsiblePort
from hecate.adapters.kube.client import Kube
from hecate.adapters.kube.types import KubeUnavailableError, PodRef
from hecate.adapters.statedir.store import StateStore
from hecate.config.model import parse_config
from hecate.errors import KubeError
from hecate.flows.context import FlowContext, Stage
from hecate.flows.drain import drain
from tests.testbed import schemas
from tests.testbed.standin_host import LocalCluster, wait_for


def test_the_api_is_unavailable_while_no_server_runs(tmp_path: Path) -> None:
    with (
        LocalCluster(tmp_path, servers=["s1"], agents=["a1"]) as cluster,
        Kube(cluster.kubeconfig, timeout_s=2) as kube,
    ):
        wait_for(lambda: cluster.node_ready("a1") is True, 20, "a1 Ready")
        assert kube.readyz() and {n.name for n in kube.nodes()} == {"s1", "a1"}
        cluster.stop("s1")  # the last server stops: the agent keeps running, the API is gone
        assert not kube.readyz()
        with pytest.raises(KubeUnavailableError, match="unreachable"):
            kube.nodes()
        cluster.start("s1")
        cluster.wait_api()
        assert kube.readyz()
        _, problems = schemas.audit_problems(cluster.state_dir)
        assert problems == []


def test_a_node_turns_not_ready_only_after_the_grace_period(tmp_path: Path) -> None:
    grace = 3.0
    with (
        LocalCluster(
            tmp_path, servers=["s1"], agents=["a1"], config={"nodeGraceSeconds": grace}
        ) as cluster,
        Kube(cluster.kubeconfig) as kube,
    ):
        wait_for(lambda: cluster.node_ready("a1") is True, 20, "a1 Ready")
        stopped = time.monotonic()
        cluster.stop("a1")
        assert {n.name: n.ready for n in kube.nodes()}["a1"] is True  # still within the grace
        wait_for(lambda: cluster.node_ready("a1") is False, 15, "a1 NotReady")
        waited = time.monotonic() - stopped
        # the last heartbeat was up to 1 s before the stop
        assert grace - 1.5 <= waited <= grace + 3.0, waited


# ------------------------------------------------------------------------------------------------
# PodDisruptionBudgets, Terminating Pods and Hecate's drain


def _shop_seed(replicas: int, *, min_available: int | str) -> dict[str, Any]:
    """Namespace ``shop``: Deployment ``web`` under a PDB, Deployment ``cache`` under none."""

    def deployment(name: str, count: int) -> dict[str, Any]:
        labels = {"app.kubernetes.io/name": name}
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": "shop", "labels": labels},
            "spec": {
                "replicas": count,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": name, "image": f"shop/{name}:1"}]},
                },
            },
        }

    return {
        "objects": [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}},
            deployment("web", replicas),
            deployment("cache", 1),
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": {"name": "web", "namespace": "shop"},
                "spec": {
                    "minAvailable": min_available,
                    "selector": {"matchLabels": {"app.kubernetes.io/name": "web"}},
                },
            },
        ]
    }


PDB_PATH = "/apis/policy/v1/namespaces/shop/poddisruptionbudgets/web"


def _pods(cluster: LocalCluster, app: str) -> list[dict[str, Any]]:
    code, listing = cluster.api(
        "GET", f"/api/v1/namespaces/shop/pods?labelSelector=app.kubernetes.io/name%3D{app}"
    )
    assert code == 200, listing
    pods: list[dict[str, Any]] = listing["items"]
    return pods


def _ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _pdb_status(cluster: LocalCluster) -> dict[str, Any]:
    code, pdb = cluster.api("GET", PDB_PATH)
    assert code == 200, pdb
    status: dict[str, Any] = pdb.get("status", {})
    return status


def _evict(cluster: LocalCluster, pod: dict[str, Any]) -> tuple[int, Any]:
    name = pod["metadata"]["name"]
    body = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": name, "namespace": "shop"},
    }
    return cluster.api("POST", f"/api/v1/namespaces/shop/pods/{name}/eviction", body)


def test_an_eviction_a_pdb_refuses_answers_429_as_the_real_api(tmp_path: Path) -> None:
    with (
        LocalCluster(
            tmp_path, servers=["s1"], agents=["a1"], seed=_shop_seed(2, min_available=2)
        ) as cluster,
        Kube(cluster.kubeconfig) as kube,
    ):
        wait_for(lambda: sum(map(_ready, _pods(cluster, "web"))) == 2, 30, "web's Pods Ready")
        wait_for(lambda: _pdb_status(cluster).get("currentHealthy") == 2, 10, "the PDB's status")
        status = _pdb_status(cluster)
        assert (status["disruptionsAllowed"], status["desiredHealthy"]) == (0, 2), status
        assert status["expectedPods"] == 2
        victim = _pods(cluster, "web")[0]
        code, answer = _evict(cluster, victim)
        # what pkg/registry/core/pod/storage/eviction.go answers
        assert code == 429, answer
        assert answer["kind"] == "Status" and answer["status"] == "Failure"
        assert answer["reason"] == "TooManyRequests" and answer["code"] == 429
        assert answer["message"] == (
            "Cannot evict pod as it would violate the pod's disruption budget."
        )
        assert answer["details"]["causes"] == [
            {
                "reason": "DisruptionBudget",
                "message": "The disruption budget web needs 2 healthy pods and has 2 currently",
            }
        ]
        with pytest.raises(KubeError, match="429"):  # Hecate's adapter sees the refusal
            kube.evict(PodRef("shop", victim["metadata"]["name"]))
        kept = cluster.api("GET", f"/api/v1/namespaces/shop/pods/{victim['metadata']['name']}")
        assert kept[0] == 200 and "deletionTimestamp" not in kept[1]["metadata"]
        # no budget: the eviction is a graceful delete (the Pod's own grace period)
        cache = _pods(cluster, "cache")[0]
        code, answer = _evict(cluster, cache)
        assert code == 201 and answer["status"] == "Success", answer
        left = cluster.api("GET", f"/api/v1/namespaces/shop/pods/{cache['metadata']['name']}")
        assert left[0] == 200 and left[1]["metadata"]["deletionGracePeriodSeconds"] == 2
        # a budget that allows one disruption lets one eviction through
        assert cluster.api("PATCH", PDB_PATH, {"spec": {"minAvailable": 1}})[0] == 200
        wait_for(lambda: _pdb_status(cluster).get("disruptionsAllowed") == 1, 10, "allowed 1")
        assert _evict(cluster, victim)[0] == 201
        assert _pdb_status(cluster)["observedGeneration"] == 2
    _, problems = schemas.audit_problems(cluster.state_dir)
    assert problems == [], "\n".join(problems[:20])
    kinds = {
        str(o.get("kind"))
        for _, o in schemas.audit_objects(schemas.audit_entries(cluster.state_dir))
    }
    assert {"PodDisruptionBudget", "Eviction", "Status"} <= kinds


def test_pods_sit_in_terminating_for_their_grace_period(tmp_path: Path) -> None:
    with (
        LocalCluster(
            tmp_path, servers=["s1"], agents=["a1"], seed=_shop_seed(3, min_available=0)
        ) as cluster,
        Kube(cluster.kubeconfig) as kube,
    ):
        wait_for(lambda: sum(map(_ready, _pods(cluster, "web"))) == 3, 30, "web's Pods Ready")
        first, second = (p["metadata"]["name"] for p in _pods(cluster, "web")[:2])
        deleted = time.monotonic()
        kube.delete_pod(PodRef("shop", first), grace_s=3)
        code, pod = cluster.api("GET", f"/api/v1/namespaces/shop/pods/{first}")
        assert code == 200 and pod["metadata"]["deletionGracePeriodSeconds"] == 3
        assert pod["metadata"]["deletionTimestamp"]
        node = pod["spec"]["nodeName"]
        assert PodRef("shop", first) in kube.pods_on_node(node)  # still listed, Terminating
        # a longer grace never extends it; the Deployment replaces the Pod at once
        kube.delete_pod(PodRef("shop", first), grace_s=30)
        again = cluster.api("GET", f"/api/v1/namespaces/shop/pods/{first}")[1]
        assert again["metadata"]["deletionGracePeriodSeconds"] == 3
        wait_for(lambda: len(_pods(cluster, "web")) == 4, 5, "a replacement beside it")
        wait_for(
            lambda: cluster.api("GET", f"/api/v1/namespaces/shop/pods/{first}")[0] == 404,
            10,
            "the Pod to go after its grace",
        )
        took = time.monotonic() - deleted
        assert 2.5 <= took <= 5.0, took
        # grace 0: gone at once
        kube.delete_pod(PodRef("shop", second), grace_s=0)
        assert cluster.api("GET", f"/api/v1/namespaces/shop/pods/{second}")[0] == 404
        # a Pod whose kubelet is gone stays Terminating past its grace, until grace 0
        on_agent = next(p for p in _pods(cluster, "web") if p["spec"].get("nodeName") == "a1")
        name = on_agent["metadata"]["name"]
        cluster.stop("a1")
        wait_for(lambda: cluster.node_ready("a1") is False, 15, "a1 NotReady")
        kube.delete_pod(PodRef("shop", name), grace_s=1)
        time.sleep(2.5)
        stuck = cluster.api("GET", f"/api/v1/namespaces/shop/pods/{name}")
        assert stuck[0] == 200 and stuck[1]["metadata"]["deletionTimestamp"]
        kube.delete_pod(PodRef("shop", name), grace_s=0)
        assert cluster.api("GET", f"/api/v1/namespaces/shop/pods/{name}")[0] == 404
    _, problems = schemas.audit_problems(cluster.state_dir)
    assert problems == [], "\n".join(problems[:20])


def test_hecate_drains_every_agent_at_once_past_pdbs_and_stuck_terminating_pods(
    tmp_path: Path,
) -> None:
    """Both agents hold Pods a PDB protects: evictions answer 429, the deletes that follow work
    on a1 and leave a2's Pods Terminating (its kubelet is gone), grace 0 removes them; the
    stage takes about one drain timeout (its three steps run on both agents at once)."""
    timeout = 12.0
    seed = _shop_seed(6, min_available="100%")
    with (
        LocalCluster(tmp_path, servers=["s1"], agents=["a1", "a2"], seed=seed) as cluster,
        Kube(cluster.kubeconfig) as kube,
    ):
        wait_for(lambda: sum(map(_ready, _pods(cluster, "web"))) == 6, 30, "web's Pods Ready")
        protected = {
            p["metadata"]["name"]
            for p in _pods(cluster, "web")
            if p["spec"].get("nodeName") in ("a1", "a2")
        }
        for agent in ("a1", "a2"):
            assert any(p["spec"].get("nodeName") == agent for p in _pods(cluster, "web")), agent
        for node in ("s1", "a1", "a2"):  # the shutdown cordons every node first
            kube.set_unschedulable(node, True)
        cluster.stop("a2")
        wait_for(lambda: cluster.node_ready("a2") is False, 15, "a2 NotReady")
        config = parse_config(
            {
                "kubeconfig": str(cluster.kubeconfig),
                "state_dir": str(tmp_path / "hecate"),
                "nodes": {"servers": ["s1"], "agents": ["a1", "a2"]},
                "ups": {"target": "pyrphoros@localhost"},
                "shutdown": {"drain": True, "drain_timeout_seconds": timeout},
            }
        )
        with AnsiblePort.from_config(config, preflight=False) as ansible:
            ctx = FlowContext(config, ansible, kube, StateStore(config.state_dir))
            stage = Stage("drain")
            started = time.monotonic()
            drain(ctx, stage, ["a1", "a2"])
            took = time.monotonic() - started
        assert stage.status == "ok", stage
        assert stage.nodes == {"a1": "ok", "a2": "ok"}
        assert stage.detail == "a1: deleted; a2: force-deleted", stage.detail
        assert kube.pods_on_node("a1") == [] and kube.pods_on_node("a2") == []
        # one step waits out its third (the refused evictions), one more for a2's stuck Pods:
        # two thirds of one timeout, where one agent after the other would take two timeouts
        assert timeout * 2 / 3 - 0.5 <= took < timeout, took
    entries = schemas.audit_entries(cluster.state_dir)
    refused = [e for e in entries if e["path"].endswith("/eviction") and e["code"] == 429]
    assert {e["path"].split("/")[-2] for e in refused} == protected  # each refused once
    assert len(refused) == len(protected)
    _, problems = schemas.audit_problems(cluster.state_dir)
    assert problems == [], "\n".join(problems[:20])


# ------------------------------------------------------------------------------------------------
# etcd quorum


def test_with_three_servers_the_api_answers_only_while_two_run(tmp_path: Path) -> None:
    servers = ["s1", "s2", "s3"]
    with LocalCluster(tmp_path, servers=servers) as cluster:
        wait_for(lambda: all(cluster.readyz(s) for s in servers), 20, "every server ready")
        cluster.stop("s1")  # 2 of 3: quorum
        assert cluster.readyz("s2") and cluster.readyz("s3")
        assert cluster.api("GET", "/api/v1/nodes", server="s3")[0] == 200
        cluster.stop("s2")  # 1 of 3: no quorum; the process still answers
        wait_for(lambda: not cluster.readyz("s3"), 2, "s3 to lose quorum")
        code, answer = cluster.api("GET", "/api/v1/nodes", server="s3")
        assert code == 504 and answer["reason"] == "Timeout", answer
        cluster.write_kubeconfig("s3")
        with Kube(cluster.kubeconfig, timeout_s=3) as kube:
            assert not kube.readyz()
            with pytest.raises(KubeUnavailableError):
                kube.nodes()
            cluster.stop("s3")
            # a server started alone waits for its peers: no quorum, whatever time passes
            cluster.start("s1")
            time.sleep(3)
            assert not cluster.readyz("s1")
            cluster.start("s2")  # the second one makes the quorum
            # real etcd: s2's member starts, a leader is elected, then both servers register;
            # about 3 s here, up to 6.5 s seen on a loaded 2-core host
            waited = wait_for(lambda: cluster.readyz("s1") and cluster.readyz("s2"), 15, "quorum")
            assert waited < 10, waited
        cluster.write_kubeconfig("s1")
        with Kube(cluster.kubeconfig, timeout_s=3) as kube:
            assert kube.readyz() and {n.name for n in kube.nodes()} == set(servers)
    _, problems = schemas.audit_problems(cluster.state_dir)
    assert problems == [], "\n".join(problems[:20])
