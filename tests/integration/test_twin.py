"""The cluster twin itself: image, nodes, units, SSH, the API stand-in and its Flux model."""

from __future__ import annotations

import base64
import json
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.testbed.image import ensure_image, image_exists, podman
from tests.testbed.node.kube_standin import is_ready
from tests.testbed.pytest_twin import TwinFactory
from tests.testbed.twin import (
    LABEL,
    LABEL_OWNER,
    LABEL_RUN,
    Twin,
    TwinApiDownError,
    remove_leftovers,
    wait_until,
)

pytestmark = pytest.mark.integration

FLUX_KS = "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations"
FLUX_GIT = "/apis/source.toolkit.fluxcd.io/v1/namespaces/flux-system/gitrepositories"
FLUX_HR = "/apis/helm.toolkit.fluxcd.io/v2"
GITEA = "/apis/apps/v1/namespaces/gitea/deployments/gitea"
WHOAMI = "/apis/apps/v1/namespaces/apps/deployments/whoami"
NOT_READY_BOUND_S = 6.0


def ready(obj: dict[str, Any]) -> dict[str, Any]:
    for cond in obj["status"]["conditions"]:
        if cond["type"] == "Ready":
            assert set(cond) >= {"type", "status", "reason", "message", "lastTransitionTime"}
            return dict(cond)
    raise AssertionError(f"no Ready condition in {obj['status']}")


def ok(twin: Twin, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
    status, answer = twin.api(method, path, body, **kwargs)
    assert status in (200, 201), (method, path, status, answer)
    return answer


def replicas(twin: Twin, path: str) -> tuple[int, int]:
    obj = ok(twin, "GET", path)
    return int(obj["spec"]["replicas"]), int(obj["status"].get("readyReplicas", 0))


def node_ssh(
    twin: Twin, node: str, command: str, known_hosts: Path, user: str = "hecate"
) -> subprocess.CompletedProcess[str]:
    argv = [
        "ssh",
        "-F",
        "/dev/null",
        "-i",
        str(twin.ssh_key),
        "-p",
        str(twin.node(node).ssh_port),
        "-o",
        "StrictHostKeyChecking=accept-new",
        "-o",
        f"UserKnownHostsFile={known_hosts}",
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "ConnectTimeout=5",
        f"{user}@127.0.0.1",
        command,
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


# ------------------------------------------------------------------------------------------------
# Image


def test_image_is_reused_when_cached(twin_image: str) -> None:
    started = time.monotonic()
    again = ensure_image()
    elapsed = time.monotonic() - started
    assert again == twin_image
    assert again.startswith("localhost/hecate-node:") and len(again.rsplit(":", 1)[1]) == 12
    assert elapsed < 5.0, f"a cached image took {elapsed:.1f} s"
    assert image_exists("localhost/hecate-node:latest")
    inspect = podman("image", "inspect", "--format", "{{.Config.Cmd}}", again)
    assert "/sbin/init" in inspect.stdout


# ------------------------------------------------------------------------------------------------
# Nodes, units, SSH


def test_nodes_boot_with_units_active_and_ssh(twin: Twin, tmp_path: Path) -> None:
    assert [n.name for n in twin.nodes] == ["twin-s1", "twin-a1", "twin-a2"]
    assert [n.role for n in twin.nodes] == ["server", "agent", "agent"]
    known_hosts = tmp_path / "known_hosts"
    for node in twin.nodes:
        assert twin.is_running(node)
        assert twin.unit_active(node)
        assert twin.exec(node, "systemctl", "is-enabled", node.unit).stdout.strip() == "enabled"
        result = node_ssh(
            twin, node.name, "id -un; hostname; systemctl is-active " + node.unit, known_hosts
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["hecate", node.name, "active"]
        root = node_ssh(twin, node.name, "id -u", known_hosts, user="root")
        assert root.stdout.strip() == "0", root.stderr
    keys = {line.split()[2] for line in known_hosts.read_text().splitlines() if "ed25519" in line}
    assert len(keys) == len(twin.nodes), "each node must have its own SSH host key"
    assert twin.started_seconds is not None and twin.started_seconds < 30


def test_sudo_is_limited_like_real_nodes(twin: Twin, tmp_path: Path) -> None:
    kh = tmp_path / "known_hosts"
    agent = "twin-a1"
    refused = node_ssh(twin, agent, "sudo -n cat /etc/shadow", kh)
    assert refused.returncode != 0
    assert "password is required" in refused.stderr
    assert node_ssh(twin, agent, "sudo -n systemctl restart ssh", kh).returncode != 0
    try:
        stop = node_ssh(twin, agent, "sudo -n systemctl stop k3s-agent", kh)
        assert stop.returncode == 0, stop.stderr
        assert not twin.unit_active(agent)
    finally:
        start = node_ssh(twin, agent, "sudo -n systemctl start k3s-agent", kh)
        assert start.returncode == 0, start.stderr
    assert twin.unit_active(agent)
    listing = node_ssh(twin, "twin-s1", "sudo -n -l", kh).stdout
    for allowed in ("/usr/local/bin/k3s-killall.sh", "etcd-snapshot save", "poweroff"):
        assert allowed in listing
    twin.wait_node_ready(agent)


# ------------------------------------------------------------------------------------------------
# API availability, node readiness


def test_stopping_k3s_takes_the_api_down_and_state_survives(twin: Twin) -> None:
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "survivor", "namespace": "default"},
        "data": {"k": "v"},
    }
    created = ok(twin, "POST", "/api/v1/namespaces/default/configmaps", cm)
    try:
        twin.stop_unit("twin-s1")
        assert not twin.unit_active("twin-s1")
        assert not twin.api_ready()
        with pytest.raises(TwinApiDownError):
            twin.api("GET", "/api/v1/nodes")
    finally:
        twin.start_unit("twin-s1")
    assert twin.api_ready()
    again = ok(twin, "GET", "/api/v1/namespaces/default/configmaps/survivor")
    assert again["metadata"]["uid"] == created["metadata"]["uid"]
    assert again["data"] == {"k": "v"}
    ok(twin, "DELETE", "/api/v1/namespaces/default/configmaps/survivor")
    twin.wait_node_ready("twin-s1")


def test_agent_stop_makes_node_not_ready_within_bound(twin: Twin) -> None:
    node = "twin-a2"
    try:
        twin.stop_unit(node)
        took = twin.wait_node_ready(node, ready=False, timeout=NOT_READY_BOUND_S + 2)
        assert took <= NOT_READY_BOUND_S
        obj = ok(twin, "GET", f"/api/v1/nodes/{node}")
        cond = ready(obj)
        assert cond["status"] == "Unknown"
        assert cond["reason"] == "NodeStatusUnknown"
        assert cond["message"] == "Kubelet stopped posting node status."
        taints = {(t["key"], t["effect"]) for t in obj["spec"]["taints"]}
        assert ("node.kubernetes.io/unreachable", "NoExecute") in taints
        assert twin.nodes_ready()["twin-a1"] and twin.nodes_ready()["twin-s1"]
    finally:
        twin.start_unit(node)
    assert twin.wait_node_ready(node, timeout=10) < 10
    obj = ok(twin, "GET", f"/api/v1/nodes/{node}")
    assert ready(obj)["reason"] == "KubeletReady"
    assert "taints" not in obj["spec"]


# ------------------------------------------------------------------------------------------------
# Kubernetes REST shapes


def test_discovery_version_and_errors(twin: Twin) -> None:
    assert twin.api("GET", "/readyz") == (200, "ok")
    version = ok(twin, "GET", "/version")
    assert version["gitVersion"].endswith("+k3s1") and version["major"] == "1"
    assert ok(twin, "GET", "/api")["versions"] == ["v1"]
    groups = {g["name"]: g for g in ok(twin, "GET", "/apis")["groups"]}
    assert groups["helm.toolkit.fluxcd.io"]["preferredVersion"]["groupVersion"] == (
        "helm.toolkit.fluxcd.io/v2"
    )
    assert {"apps", "kustomize.toolkit.fluxcd.io", "source.toolkit.fluxcd.io"} <= set(groups)
    apps = ok(twin, "GET", "/apis/apps/v1")
    names = {r["name"]: r for r in apps["resources"]}
    assert names["deployments/scale"]["kind"] == "Scale"
    assert names["deployments"]["namespaced"] is True
    core = {r["name"] for r in ok(twin, "GET", "/api/v1")["resources"]}
    assert {"nodes", "pods", "pods/eviction", "namespaces", "configmaps"} <= core

    status, body = twin.api("GET", "/apis/apps/v1/namespaces/apps/deployments/nope")
    assert status == 404
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'deployments.apps "nope" not found',
        "reason": "NotFound",
        "details": {"name": "nope", "group": "apps", "kind": "deployments"},
        "code": 404,
    }
    listing = ok(twin, "GET", "/apis/apps/v1/deployments")
    assert listing["kind"] == "DeploymentList" and listing["metadata"]["resourceVersion"]
    assert "kind" not in listing["items"][0]  # built-in lists omit items' kind, as the API does

    tls = ssl.create_default_context(cafile=str(twin.ca_cert))
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        urllib.request.urlopen(  # noqa: S310 - https://127.0.0.1
            f"{twin.api_url}/api/v1/nodes", timeout=10, context=tls
        )
    with anonymous.value as err:
        assert err.code == 401
        assert json.loads(err.read())["reason"] == "Unauthorized"


def test_create_conflict_and_server_side_apply(twin: Twin) -> None:
    base = "/api/v1/namespaces/default/configmaps"
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "made"}, "data": {"a": "1"}}
    status, created = twin.api("POST", base, cm)
    assert status == 201 and created["metadata"]["resourceVersion"]
    status, conflict = twin.api("POST", base, cm)
    assert (status, conflict["kind"], conflict["reason"], conflict["code"]) == (
        409,
        "Status",
        "AlreadyExists",
        409,
    )
    stale = dict(created, data={"a": "2"})
    ok(twin, "PUT", f"{base}/made", stale)
    status, body = twin.api("PUT", f"{base}/made", stale)  # same resourceVersion again
    assert (status, body["reason"]) == (409, "Conflict")
    ok(twin, "DELETE", f"{base}/made")

    apply = "application/apply-patch+yaml"
    deployment: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "applied", "namespace": "apps"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "applied"}},
            "template": {
                "metadata": {"labels": {"app": "applied"}},
                "spec": {"containers": [{"name": "c", "image": "x:1"}]},
            },
        },
    }
    path = "/apis/apps/v1/namespaces/apps/deployments/applied"
    status, _ = twin.api(
        "PATCH", f"{path}?fieldManager=hecate&force=true", deployment, content_type=apply
    )
    assert status == 201
    status, body = twin.api("PATCH", path, deployment, content_type=apply)
    assert (status, body["reason"]) == (422, "Invalid")  # apply needs a fieldManager
    deployment["spec"]["replicas"] = 3
    status, body = twin.api("PATCH", f"{path}?fieldManager=hecate", deployment, content_type=apply)
    assert status == 200 and body["spec"]["replicas"] == 3 and body["metadata"]["generation"] == 2
    wait_until(lambda: replicas(twin, path) == (3, 3), 10, "applied deployment ready")
    pods = ok(twin, "GET", "/api/v1/namespaces/apps/pods?labelSelector=app%3Dapplied")
    assert len(pods["items"]) == 3
    assert all(p["status"]["phase"] == "Running" for p in pods["items"])
    ok(twin, "DELETE", path)
    wait_until(
        lambda: (
            not ok(twin, "GET", "/api/v1/namespaces/apps/pods?labelSelector=app%3Dapplied")["items"]
        ),
        5,
        "pods of a deleted deployment",
    )

    for kind, plural, group in (
        ("Service", "services", "/api/v1"),
        ("PersistentVolumeClaim", "persistentvolumeclaims", "/api/v1"),
    ):
        obj = {"apiVersion": "v1", "kind": kind, "metadata": {"name": "x"}, "spec": {}}
        status, _ = twin.api(
            "PATCH",
            f"{group}/namespaces/default/{plural}/x?fieldManager=t",
            obj,
            content_type=apply,
        )
        assert status == 201
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "made-ns"}}
    status, made = twin.api(
        "PATCH", "/api/v1/namespaces/made-ns?fieldManager=t", ns, content_type=apply
    )
    assert status == 201 and made["status"]["phase"] == "Active"
    status, body = twin.api(
        "PATCH", "/api/v1/namespaces/made-ns?fieldManager=t", None, content_type=apply
    )
    assert status == 400
    ok(twin, "DELETE", "/api/v1/namespaces/made-ns")


def test_scale_subresource_and_ready_replicas(twin: Twin) -> None:
    scale_path = f"{WHOAMI}/scale"
    scale = ok(twin, "GET", scale_path)
    assert scale["kind"] == "Scale" and scale["apiVersion"] == "autoscaling/v1"
    assert scale["spec"] == {"replicas": 2}
    assert scale["status"]["selector"] == "app.kubernetes.io/name=whoami"
    ok(twin, "PATCH", f"{FLUX_KS}/apps", {"spec": {"suspend": True}})
    try:
        stale = dict(scale, spec={"replicas": 4})
        ok(twin, "PUT", scale_path, stale)
        status, body = twin.api("PUT", scale_path, stale)
        assert (status, body["reason"]) == (409, "Conflict")
        assert replicas(twin, WHOAMI) == (4, 2)  # new pods need about a second to be Ready
        took = wait_until(lambda: replicas(twin, WHOAMI) == (4, 4), 10, "whoami 4 ready")
        assert took < 5
        ok(twin, "PATCH", scale_path, {"spec": {"replicas": 0}})
        wait_until(lambda: replicas(twin, WHOAMI) == (0, 0), 5, "whoami at 0")
        obj = ok(twin, "GET", WHOAMI)
        assert "readyReplicas" not in obj["status"]  # omitted at 0, as the real API does
        assert ok(twin, "GET", scale_path)["spec"] == {}
    finally:
        ok(twin, "PATCH", f"{FLUX_KS}/apps", {"spec": {"suspend": False}})
    wait_until(lambda: replicas(twin, WHOAMI) == (2, 2), 10, "Flux puts whoami back to 2")


def test_cordon_and_evict_like_drain(twin: Twin) -> None:
    node = "twin-a1"
    patches = [
        ({"spec": {"unschedulable": True}}, "application/strategic-merge-patch+json"),
        (
            [{"op": "add", "path": "/spec/unschedulable", "value": True}],
            "application/json-patch+json",
        ),
    ]
    pods_path = f"/api/v1/pods?fieldSelector=spec.nodeName%3D{node}"
    # run first on a fresh twin, the scheduler may not have bound anything yet
    wait_until(lambda: bool(ok(twin, "GET", pods_path)["items"]), 30, f"pods on {node}")
    try:
        for body, ctype in patches:
            cordoned = ok(twin, "PATCH", f"/api/v1/nodes/{node}", body, content_type=ctype)
            assert cordoned["spec"]["unschedulable"] is True
        wait_until(
            lambda: any(
                t["key"] == "node.kubernetes.io/unschedulable"
                for t in ok(twin, "GET", f"/api/v1/nodes/{node}")["spec"].get("taints", [])
            ),
            5,
            "cordon taint",
        )
        on_node = ok(twin, "GET", f"/api/v1/pods?fieldSelector=spec.nodeName%3D{node}")["items"]
        assert on_node, "the seed's pods are spread over every node"
        evicted: list[str] = []
        for pod in on_node:
            md = pod["metadata"]
            assert md["ownerReferences"][0]["kind"] in ("ReplicaSet", "StatefulSet")
            eviction = {
                "apiVersion": "policy/v1",
                "kind": "Eviction",
                "metadata": {"name": md["name"], "namespace": md["namespace"]},
            }
            status, body = twin.api(
                "POST", f"/api/v1/namespaces/{md['namespace']}/pods/{md['name']}/eviction", eviction
            )
            assert (status, body["kind"], body["status"]) == (201, "Status", "Success")
            # the evicted Pod sits in Terminating for its grace period, then goes
            path = f"/api/v1/namespaces/{md['namespace']}/pods/{md['name']}"
            status, leaving = twin.api("GET", path)
            assert status == 200, leaving
            grace = leaving["spec"]["terminationGracePeriodSeconds"]
            assert leaving["metadata"]["deletionGracePeriodSeconds"] == grace
            assert leaving["metadata"]["deletionTimestamp"]
            evicted.append(path)

        def gone() -> bool:
            return all(twin.api("GET", path)[0] == 404 for path in evicted)

        wait_until(gone, 6, "the evicted Pods gone after their grace")

        def rescheduled() -> bool:
            pods = ok(twin, "GET", "/api/v1/pods")["items"]
            return all(p["spec"].get("nodeName") not in (None, node) and is_ready(p) for p in pods)

        wait_until(rescheduled, 10, "evicted pods ready on other nodes")
    finally:
        ok(twin, "PATCH", f"/api/v1/nodes/{node}", {"spec": {"unschedulable": None}})
    assert "taints" not in ok(twin, "GET", f"/api/v1/nodes/{node}")["spec"]


# ------------------------------------------------------------------------------------------------
# Flux model


def test_gitea_deadlock_and_the_way_out(twin: Twin) -> None:
    assert ready(ok(twin, "GET", f"{FLUX_GIT}/flux-system"))["status"] == "True"
    ok(twin, "PATCH", f"{GITEA}/scale", {"spec": {"replicas": 0}})

    def source_failed() -> bool:
        return bool(ready(ok(twin, "GET", f"{FLUX_GIT}/flux-system"))["status"] == "False")

    wait_until(source_failed, 10, "GitRepository not Ready without Gitea")
    cond = ready(ok(twin, "GET", f"{FLUX_GIT}/flux-system"))
    assert cond["reason"] == "GitOperationFailed"
    wait_until(
        lambda: ready(ok(twin, "GET", f"{FLUX_KS}/gitea"))["status"] == "False",
        5,
        "Kustomization gitea not Ready",
    )
    ks = ready(ok(twin, "GET", f"{FLUX_KS}/gitea"))
    assert ks["reason"] == "ArtifactFailed"
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:  # deadlocked: nothing brings Gitea back
        assert replicas(twin, GITEA) == (0, 0)
        assert ready(ok(twin, "GET", f"{FLUX_KS}/gitea"))["status"] == "False"
        time.sleep(0.5)

    scale = ok(twin, "GET", f"{GITEA}/scale")
    scale["spec"]["replicas"] = 1
    ok(twin, "PUT", f"{GITEA}/scale", scale)  # the way out: scale Gitea outside Flux
    wait_until(lambda: not source_failed(), 10, "GitRepository Ready again")

    def all_ready() -> bool:
        items = ok(twin, "GET", FLUX_KS)["items"]
        return len(items) == 4 and all(ready(k)["status"] == "True" for k in items)

    wait_until(all_ready, 10, "every Kustomization Ready again")
    assert replicas(twin, GITEA) == (1, 1)


def test_suspend_resume_branch_and_requested_reconcile(twin: Twin) -> None:
    ks_path = f"{FLUX_KS}/apps"
    before = ready(ok(twin, "GET", ks_path))
    ok(twin, "PATCH", ks_path, {"spec": {"suspend": True}})
    try:
        ok(twin, "PATCH", f"{WHOAMI}/scale", {"spec": {"replicas": 0}})
        time.sleep(1.5)
        assert replicas(twin, WHOAMI) == (0, 0)  # suspended: Flux changes nothing
        assert ready(ok(twin, "GET", ks_path)) == before  # and keeps its last Ready condition
    finally:
        ok(twin, "PATCH", ks_path, {"spec": {"suspend": False}})
    wait_until(lambda: replicas(twin, WHOAMI) == (2, 2), 10, "resumed Flux restores whoami")

    git = f"{FLUX_GIT}/flux-system"
    try:
        patched = ok(twin, "PATCH", git, {"spec": {"ref": {"branch": "recovery"}}})
        assert patched["spec"]["ref"]["branch"] == "recovery"
        wait_until(
            lambda: ready(ok(twin, "GET", git))["status"] == "False", 5, "unknown branch fails"
        )
        cond = ready(ok(twin, "GET", git))
        assert cond["reason"] == "GitOperationFailed"
        assert 'couldn\'t find remote ref "refs/heads/recovery"' in cond["message"]
        twin.set_config({"gitea": {"branches": {"recovery": "ab" * 20}}})
        wait_until(lambda: ready(ok(twin, "GET", git))["status"] == "True", 5, "branch exists")
        assert ok(twin, "GET", git)["status"]["artifact"]["revision"] == (
            "recovery@sha1:" + "ab" * 20
        )
    finally:
        ok(twin, "PATCH", git, {"spec": {"ref": {"branch": "main"}}})

    stamp = "2026-01-01T00:00:00.000000001Z"
    annotation = {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": stamp}}}
    for path in (git, ks_path, f"{FLUX_HR}/namespaces/apps/helmreleases/nextcloud"):
        ok(twin, "PATCH", path, annotation)

        def handled(path: str = path) -> bool:
            return bool(ok(twin, "GET", path)["status"].get("lastHandledReconcileAt") == stamp)

        wait_until(handled, 5, f"{path} handled the reconcile request")
    releases = ok(twin, "GET", "/apis/helm.toolkit.fluxcd.io/v2/helmreleases")
    assert releases["kind"] == "HelmReleaseList"
    assert {r["metadata"]["name"] for r in releases["items"]} == {"ingress-nginx", "nextcloud"}
    assert all(r["kind"] == "HelmRelease" for r in releases["items"])
    hr = f"{FLUX_HR}/namespaces/infrastructure/helmreleases/ingress-nginx"
    assert ready(ok(twin, "GET", hr))["reason"] == "InstallSucceeded"
    assert ok(twin, "PATCH", hr, {"spec": {"suspend": True}})["spec"]["suspend"] is True
    ok(twin, "PATCH", hr, {"spec": {"suspend": None}})


# ------------------------------------------------------------------------------------------------
# k3s commands, power


def test_etcd_snapshot_writes_a_file(twin: Twin, tmp_path: Path) -> None:
    kh = tmp_path / "known_hosts"
    result = node_ssh(twin, "twin-s1", "sudo -n k3s etcd-snapshot save --name pre-shutdown", kh)
    assert result.returncode == 0, result.stderr
    path = result.stdout.strip().splitlines()[-1]
    assert path.startswith("/var/lib/rancher/k3s/server/db/snapshots/pre-shutdown-twin-s1-")
    # a real etcd snapshot (k3s's etcd-snapshot runs etcdctl snapshot save)
    status = twin.exec("twin-s1", "etcdctl", "snapshot", "status", path, "-w", "json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["totalKey"] >= 1
    default = twin.exec("twin-s1", "k3s", "etcd-snapshot", "save")
    assert "/snapshots/on-demand-twin-s1-" in default.stdout
    unsupported = twin.exec("twin-s1", "k3s", "etcd-snapshot", "prune")
    assert unsupported.returncode != 0
    on_agent = twin.exec("twin-a1", "k3s", "etcd-snapshot", "save")
    assert on_agent.returncode != 0  # no etcd on an agent


def test_k3s_killall_stops_units_and_leftover_processes(twin: Twin, tmp_path: Path) -> None:
    node = "twin-a1"
    kh = tmp_path / "known_hosts"

    def shims() -> int:
        return int(twin.exec(node, "pgrep", "-c", "-f", "^containerd-shim").stdout.strip() or 0)

    assert shims() == 1
    try:
        twin.stop_unit(node)
        assert shims() == 1, "systemctl stop leaves the containers running (KillMode=process)"
        twin.start_unit(node)
        result = node_ssh(twin, node, "sudo -n /usr/local/bin/k3s-killall.sh", kh)
        assert result.returncode == 0, result.stderr
        assert not twin.unit_active(node)
        assert shims() == 0
    finally:
        twin.start_unit(node)
    assert shims() == 1
    twin.wait_node_ready(node)


def test_poweroff_and_power_on(twin: Twin, tmp_path: Path) -> None:
    node = "twin-a2"
    kh = tmp_path / "known_hosts"
    try:
        twin.poweroff(node)
        assert not twin.is_running(node)
        assert twin.wait_node_ready(node, ready=False, timeout=NOT_READY_BOUND_S + 2) <= (
            NOT_READY_BOUND_S
        )
        assert node_ssh(twin, node, "true", kh).returncode == 255
    finally:
        twin.power_on(node)
    assert twin.is_running(node)
    assert twin.unit_active(node)
    twin.wait_node_ready(node, timeout=10)

    started = time.monotonic()
    node_ssh(twin, node, "sudo -n systemctl poweroff --force", kh)  # from inside, as Hecate would
    wait_until(lambda: not twin.is_running(node), 10, "poweroff from inside exits the container")
    assert time.monotonic() - started < 10
    twin.power_on(node)
    twin.wait_node_ready(node, timeout=10)


def test_memory_of_a_small_twin(twin: Twin) -> None:
    used = twin.memory_bytes()
    print(f"1+2 twin memory: {used / 2**20:.0f} MiB")
    assert 0 < used < 2 * 2**30


def test_kubeconfig_points_at_the_api(twin: Twin) -> None:
    config = yaml.safe_load(twin.kubeconfig.read_text())
    current = config["current-context"]
    context = next(c["context"] for c in config["contexts"] if c["name"] == current)
    cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
    user = next(u["user"] for u in config["users"] if u["name"] == context["user"])
    assert cluster["server"] == twin.api_url and user["token"] == twin.token
    assert cluster["server"].startswith("https://127.0.0.1:")
    tls = ssl.create_default_context(
        cadata=base64.b64decode(cluster["certificate-authority-data"]).decode()
    )
    request = urllib.request.Request(  # noqa: S310
        f"{cluster['server']}/api/v1/nodes", headers={"Authorization": f"Bearer {user['token']}"}
    )
    with urllib.request.urlopen(request, timeout=10, context=tls) as response:  # noqa: S310
        assert len(json.loads(response.read())["items"]) == 3
    if shutil.which("kubectl"):  # optional: CI need not have kubectl
        result = subprocess.run(
            ["kubectl", "--kubeconfig", str(twin.kubeconfig), "get", "nodes", "--no-headers"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert sorted(line.split()[0] for line in result.stdout.splitlines()) == [
            "twin-a1",
            "twin-a2",
            "twin-s1",
        ]


# ------------------------------------------------------------------------------------------------
# Bigger twins, leftovers


def test_three_servers_five_agents(make_twin: TwinFactory) -> None:
    started = time.monotonic()
    big = make_twin(servers=3, agents=5)
    took = time.monotonic() - started
    print(f"3+5 twin started in {took:.1f} s, memory {big.memory_bytes() / 2**20:.0f} MiB")
    assert took < 90
    assert len(big.api_urls) == 3 and big.api_url == big.api_urls["twin-s1"]
    assert all(big.nodes_ready().values()) and len(big.nodes_ready()) == 8
    servers = ok(big, "GET", "/api/v1/nodes?labelSelector=node-role.kubernetes.io%2Fcontrol-plane")
    assert {n["metadata"]["name"] for n in servers["items"]} == {"twin-s1", "twin-s2", "twin-s3"}
    ok(
        big,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        {"metadata": {"name": "replicated"}, "data": {}},
    )
    replicated = "/api/v1/namespaces/default/configmaps/replicated"
    big.stop_unit("twin-s1")  # 2 of 3 etcd members: quorum
    assert not big.api_ready("twin-s1") and big.api_ready("twin-s3")
    big.stop_unit("twin-s2")  # 1 of 3: no quorum, s3's API times out
    wait_until(lambda: not big.api_ready("twin-s3"), 3, "s3 to lose quorum")
    assert big.api("GET", replicated, server="twin-s3")[0] == 504
    big.start_unit("twin-s2")
    wait_until(lambda: big.api_ready("twin-s3"), 10, "quorum with s2 back")
    status, body = big.api("GET", replicated, server="twin-s3")
    assert status == 200 and body["metadata"]["name"] == "replicated"
    big.wait_node_ready("twin-s1", ready=False, timeout=NOT_READY_BOUND_S + 2)
    big.stop_unit("twin-s3")
    big.stop_unit("twin-s2")
    assert not big.api_ready()
    big.start_unit("twin-s2")  # alone, it waits for a peer (systemctl start returns after 5 s)
    assert not big.api_ready("twin-s2")
    big.start_unit("twin-s3")
    wait_until(lambda: big.api_ready("twin-s2"), 10, "quorum with s2 and s3")
    big.wait_node_ready("twin-s2")


def test_leftovers_of_dead_runs_are_removed(twin: Twin, twin_image: str) -> None:
    name = "hecate-twin-leftover-test"
    podman("rm", "-f", "-t", "0", name, check=False)
    podman(
        "create",
        "--name",
        name,
        "--label",
        f"{LABEL}=1",
        "--label",
        f"{LABEL_RUN}=dead",
        "--label",
        f"{LABEL_OWNER}=999999999:1",
        twin_image,
    )
    removed = remove_leftovers()
    assert name in removed
    assert podman("container", "exists", name, check=False).returncode != 0
    assert all(twin.is_running(n) for n in twin.nodes), "a live run's containers are kept"
    assert not any(n.container in removed for n in twin.nodes)
