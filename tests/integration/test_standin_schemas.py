"""The stand-in and Hecate's Kubernetes calls, held to the published schemas.

Every object the stand-in serves and every object or patch Hecate sends (through the real
adapter, hecate.adapters.kube.client.Kube) is checked against Kubernetes' schemas
(kubernetes-validate, the versions in schemas.K8S_VERSIONS) and Flux's CRD schemas
(@kubernetes-models/flux-cd). The stand-in runs as local processes (tests/testbed/standin_host.py):
no podman, no lock needed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from hecate.adapters.kube.client import Kube
from hecate.adapters.kube.types import PodRef
from tests.testbed import schemas
from tests.testbed.node import kube_standin
from tests.testbed.standin_host import LocalCluster, wait_for


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster(
        tmp_path_factory.mktemp("standin"), servers=["s1"], agents=["a1", "a2"]
    ) as running:
        wait_for(lambda: all(running.node_ready(n) for n in ("s1", "a1", "a2")), 30, "Nodes Ready")
        yield running


def _pods_running(cluster: LocalCluster) -> bool:
    code, pods = cluster.api("GET", "/api/v1/pods")
    return code == 200 and any(p.get("status", {}).get("phase") == "Running" for p in pods["items"])


def test_every_call_hecate_makes_and_every_answer_match_the_published_schemas(
    cluster: LocalCluster,
) -> None:
    wait_for(lambda: _pods_running(cluster), 30, "some Pod Running")
    with Kube(cluster.kubeconfig) as kube:
        assert kube.readyz()
        names = {n.name for n in kube.nodes()}
        assert names == {"s1", "a1", "a2"}
        # cordon and uncordon (shutdown's cordon, startup's uncordon)
        kube.set_unschedulable("a1", True)
        kube.set_unschedulable("a1", False)
        # drain: list, evict, delete
        pods = [p for n in sorted(names) for p in kube.pods_on_node(n)]
        assert pods, "the seed's workloads have Pods"
        kube.evict(pods[0])
        if len(pods) > 1:
            kube.delete_pod(pods[1], grace_s=0)
        # workloads: read and scale (foundation, Gitea fallback)
        info = kube.workload("deployment", "gitea", "gitea")
        kube.scale("deployment", "gitea", "gitea", info.replicas)
        sts = kube.workload("statefulset", "gitea", "gitea-postgresql")
        kube.scale("statefulset", "gitea", "gitea-postgresql", sts.replicas)
        # Flux: list, get, suspend/resume, reconcile, branch
        for kind in ("Kustomization", "HelmRelease", "GitRepository"):
            for obj in kube.flux_objects(kind):
                kube.flux_object(kind, obj.namespace, obj.name)
                if kind != "GitRepository":
                    kube.set_suspend(kind, obj.namespace, obj.name, True)
                    kube.set_suspend(kind, obj.namespace, obj.name, False)
                kube.request_reconcile(kind, obj.namespace, obj.name, "2026-12-01T10:00:00Z")
        kube.set_git_branch("flux-system", "flux-system", "main")
        # load shedding (issue 28): the selector's listing, PriorityClasses, HPAs; the scale
        # subresource (kube.scale above) is what it scales with
        _shed_objects(cluster)
        [web] = kube.shed_candidates("hecate.dev/shed=true,tier!=core")
        assert (web.name, web.replicas, web.priority_class) == ("shed-web", 2, "shed-low")
        assert ("kustomize.toolkit.fluxcd.io/name", "apps") in web.labels
        assert kube.shed_candidates("hecate.dev/shed=true,!tier") == []
        classes = {pc.name: pc.value for pc in kube.priority_classes()}
        assert classes["shed-low"] == 10
        [hpa] = kube.autoscalers()
        assert (hpa.name, hpa.target_kind, hpa.target_name) == (
            "shed-web",
            "Deployment",
            "shed-web",
        )
        kube.scale("deployment", "gitea", "shed-web", 0)
        assert kube.workload("deployment", "gitea", "shed-web").replicas == 0
        # the bootstrap cache: read live manifests, apply them back (server-side apply)
        for path in (
            "/apis/apps/v1/namespaces/gitea/deployments/gitea",
            "/apis/apps/v1/namespaces/gitea/statefulsets/gitea-postgresql",
            "/apis/source.toolkit.fluxcd.io/v1/namespaces/flux-system/gitrepositories/flux-system",
        ):
            live = kube.live_manifest(cluster.api("GET", path)[1])
            meta = live["metadata"]
            assert kube.apply(live) == f"{live['kind']}/{meta['namespace']}/{meta['name']}"
    # what kubectl and the tests read: every collection, every object, and an error
    for res in kube_standin.RESOURCES:
        base = f"/api/{res.version}" if not res.group else f"/apis/{res.group}/{res.version}"
        code, listing = cluster.api("GET", f"{base}/{res.plural}")
        assert code == 200, (res.kind, listing)
        for item in listing["items"][:3]:
            md = item["metadata"]
            ns = f"/namespaces/{md['namespace']}" if res.namespaced else ""
            assert cluster.api("GET", f"{base}{ns}/{res.plural}/{md['name']}")[0] == 200
    code, _ = cluster.api("GET", "/api/v1/namespaces/gitea/pods/no-such-pod")
    assert code == 404
    code, _ = cluster.api("GET", "/apis/apps/v1/namespaces/gitea/deployments/gitea/scale")
    assert code == 200
    for path in ("/api", "/apis", "/api/v1", "/apis/apps/v1", "/apis/apps"):
        assert cluster.api("GET", path)[0] == 200

    checked, problems = schemas.audit_problems(cluster.state_dir)
    assert problems == [], "\n".join(problems[:40])
    kinds = _kinds_checked(cluster.state_dir)
    expected = {
        "Node", "Pod", "Deployment", "StatefulSet", "Kustomization", "HelmRelease",
        "GitRepository", "Status", "Eviction", "Scale", "Namespace", "APIResourceList",
        "HorizontalPodAutoscaler", "PriorityClass",
    }  # fmt: skip
    assert expected <= kinds, expected - kinds
    assert checked > 100


def _shed_objects(cluster: LocalCluster) -> None:
    """A marked Deployment owned by a Kustomization, its HPA and its PriorityClass."""
    labels = {"app": "shed-web"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "shed-web",
            "namespace": "gitea",
            "labels": {
                "hecate.dev/shed": "true",
                "tier": "batch",
                "kustomize.toolkit.fluxcd.io/name": "apps",
                "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
            },
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "priorityClassName": "shed-low",
                    "containers": [{"name": "web", "image": "registry.local/web:1"}],
                },
            },
        },
    }
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "shed-web", "namespace": "gitea"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "shed-web"},
            "minReplicas": 1,
            "maxReplicas": 4,
        },
    }
    low = {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {"name": "shed-low"},
        "value": 10,
        "description": "may be shed on battery",
    }
    for path, body in (
        ("/apis/scheduling.k8s.io/v1/priorityclasses", low),
        ("/apis/apps/v1/namespaces/gitea/deployments", deployment),
        ("/apis/autoscaling/v2/namespaces/gitea/horizontalpodautoscalers", hpa),
    ):
        code, answer = cluster.api("POST", path, body)
        assert code == 201, answer


def _kinds_checked(state_dir: Path) -> set[str]:
    kinds = set()
    for _, obj in schemas.audit_objects(schemas.audit_entries(state_dir)):
        kinds.add(str(obj.get("kind")))
    return kinds


def test_a_request_the_real_api_would_reject_fails_the_check(tmp_path: Path) -> None:
    """The check is not vacuous: a mistyped patch and an unknown field are caught, on the
    object the stand-in answered with the patch applied."""
    with LocalCluster(tmp_path, servers=["s1"], agents=[]) as cluster:
        cases = [
            ("/api/v1/nodes/s1", {"spec": {"unschedulable": "yes"}}, "unschedulable"),
            (
                "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations/apps",
                {"spec": {"suspend": "true"}},
                "suspend must be boolean",
            ),
            (
                "/apis/apps/v1/namespaces/gitea/deployments/gitea",
                {"spec": {"replica": 1}},
                "'replica' was unexpected",
            ),
        ]
        for path, patch, _ in cases:
            cluster.api("PATCH", path, patch)
        _, problems = schemas.audit_problems(cluster.state_dir)
    text = "\n".join(problems)
    for path, _, expected in cases:
        assert expected in text, (path, text[:2000])


def test_the_checker_knows_every_kind_the_stand_in_serves() -> None:
    """A kind the stand-in serves without a published schema would pass unnoticed."""
    for res in kube_standin.RESOURCES:
        obj = {"apiVersion": res.group_version, "kind": res.kind, "metadata": {"name": "x"}}
        found = schemas.problems([("probe", obj)])
        assert not any("no published" in p for p in found), found


def test_the_audit_log_is_json_lines(cluster: LocalCluster) -> None:
    for path in (cluster.state_dir / "audit").glob("*.jsonl"):
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            assert {"method", "path", "code", "request", "response"} <= set(entry)


def test_pod_ref_shape() -> None:
    assert PodRef("ns", "p") == PodRef(namespace="ns", name="p")
