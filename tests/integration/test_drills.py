"""Every drill against the twin, through the operator's wrapper script, with --execute."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from hecate.adapters.metrics.registry import Metrics
from hecate.config.model import parse_config
from tests.integration.support import twin_config_data, write_config
from tests.testbed.nut import NutServer
from tests.testbed.pytest_twin import TwinFactory
from tests.testbed.twin import Twin

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
DRILLS = [
    "flux-gitea-deadlock",
    "foundation-recovery",
    "reconciliation-resume",
    "power-outage",
    "second-outage-during-startup",
    "power-race",
    "clock-skew",
    "storage-scaled-to-zero",
    "probe-failing",
    "partial-feed-loss",
    "shed-and-restore",
    "etcd-member-lost",
    "etcd-quorum-lost",
]
# need three servers with real etcd: their own twin (test_etcd_drills_on_three_servers)
ETCD_DRILLS = ("etcd-member-lost", "etcd-quorum-lost")
# the gates' drills and how their held startup ends
GATE_DRILLS = {
    "clock-skew": "failed",
    "storage-scaled-to-zero": "failed",
    "probe-failing": "partial",
}


# The storage drill's workload (its config only: the other drills run as before): owned by no
# Kustomization (Flux would scale it back), used by no other drill.
STORAGE = {"kind": "deployment", "namespace": "kube-system", "name": "csi-driver"}


def _ensure_storage_workload(twin: Twin) -> None:
    labels = {"app.kubernetes.io/name": STORAGE["name"]}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": STORAGE["name"], "namespace": STORAGE["namespace"]},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "csi", "image": "registry.local/csi:1"}]},
            },
        },
    }
    status, body = twin.api(
        "POST", f"/apis/apps/v1/namespaces/{STORAGE['namespace']}/deployments", deployment
    )
    assert status in (201, 409), body  # 409: an earlier test of this twin made it
    path = f"/apis/apps/v1/namespaces/{STORAGE['namespace']}/deployments/{STORAGE['name']}"
    deadline = time.monotonic() + 30
    while twin.get(path).get("status", {}).get("readyReplicas", 0) < 1:
        assert time.monotonic() < deadline, "the storage workload did not get Ready"
        time.sleep(0.5)


def _mark_for_shedding(twin: Twin) -> None:
    """apps/whoami (2 replicas, owned by the `apps` Kustomization, which scales it back unless
    suspended) marked for shedding, with an HPA targeting it."""
    path = "/apis/apps/v1/namespaces/apps/deployments/whoami"
    status, body = twin.api("PATCH", path, {"metadata": {"labels": {"hecate.dev/shed": "true"}}})
    assert status == 200, body
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "whoami", "namespace": "apps"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "whoami"},
            "minReplicas": 1,
            "maxReplicas": 4,
        },
    }
    status, body = twin.api(
        "POST", "/apis/autoscaling/v2/namespaces/apps/horizontalpodautoscalers", hpa
    )
    assert status in (201, 409), body


@pytest.fixture
def drill_config(twin: Twin, nut_server: NutServer, tmp_path: Path) -> Path:
    data = twin_config_data(
        twin,
        tmp_path / "state",
        nut_server,
        startup={
            "foundation_workloads": [
                {
                    "kind": "deployment",
                    "namespace": "kube-system",
                    "name": "coredns",
                    "timeout_seconds": 60,
                },
                {
                    "kind": "statefulset",
                    "namespace": "gitea",
                    "name": "gitea-postgresql",
                    "timeout_seconds": 60,
                },
            ],
        },
    )
    return write_config(tmp_path / "hecate.yaml", data)


def drills_sh(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "scripts" / "hecate-drills.sh"), *args],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def test_list_names_every_drill() -> None:
    result = drills_sh("list", "--json")
    assert result.returncode == 0, result.stderr
    assert [d["name"] for d in json.loads(result.stdout)] == DRILLS


def test_dry_run_changes_nothing(twin: Twin, drill_config: Path) -> None:
    result = drills_sh("run", "flux-gitea-deadlock", "--config", str(drill_config), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["executed"] is False
    assert "plan: scale deployment gitea/gitea to 0" in result.stderr
    status, scale = twin.api("GET", "/apis/apps/v1/namespaces/gitea/deployments/gitea")
    assert status == 200 and scale["spec"]["replicas"] == 1
    assert not (drill_config.parent / "state" / "drills.json").exists()


def test_execute_without_confirmation_is_refused(drill_config: Path) -> None:
    result = drills_sh("run", "power-outage", "--execute", "--config", str(drill_config))
    assert result.returncode == 2
    assert "confirmation" in result.stderr


# power-race needs the twin's BMCs (tests/integration/test_power_flows.py runs it); the etcd
# drills need three servers (test_etcd_drills_on_three_servers below)
@pytest.mark.parametrize("name", [d for d in DRILLS if d != "power-race" and d not in ETCD_DRILLS])
def test_drill_recovers_and_is_scored(twin: Twin, drill_config: Path, name: str) -> None:
    if name == "storage-scaled-to-zero":
        _ensure_storage_workload(twin)
        data = yaml.safe_load(drill_config.read_text())
        data["startup"]["storage_workloads"] = [STORAGE]
        write_config(drill_config, data)
    if name == "partial-feed-loss":  # the last agent alone on feed B, the rest on A
        data = yaml.safe_load(drill_config.read_text())
        names = [*data["nodes"]["servers"], *data["nodes"]["agents"]]
        data["power"] = {
            "feeds": {"A": {"instance": "alpha"}, "B": {"instance": "beta"}},
            "node_feeds": {n: ["B"] if n == names[-1] else ["A"] for n in names},
        }
        write_config(drill_config, data)
    if name == "shed-and-restore":  # apps/whoami and the last agent; the agent stays on
        _mark_for_shedding(twin)  # (marker: no BMC here; test_power_flows powers nodes off)
        data = yaml.safe_load(drill_config.read_text())
        data["power"] = {
            "shed": {
                "label_selector": "hecate.dev/shed=true",
                "agents": data["nodes"]["agents"][-1:],
            }
        }
        data["shutdown"]["poweroff_method"] = "marker"
        write_config(drill_config, data)
    started = time.monotonic()
    result = drills_sh("run", name, "--execute", "--yes", "--config", str(drill_config), "--json")
    took = time.monotonic() - started
    report = json.loads(result.stdout)
    failed = [c for c in report["checks"] if not c["ok"]]
    assert result.returncode == 0, (failed, result.stderr[-3000:])
    assert report["passed"] is True
    assert report["manual_steps"] == 0
    assert report["time_to_recover_s"] > 0
    if name == "flux-gitea-deadlock":
        assert "gitea_scale" in report["fallbacks"]
    if name == "shed-and-restore":
        checked = {c["name"] for c in report["checks"]}
        assert "their Flux owners were suspended" in checked, checked
        assert took < 60, took
    if name in GATE_DRILLS:  # the held run, then the one that passes
        assert [r["kind"] for r in report["runs"]] == ["startup", "startup"]
        assert report["runs"][0]["outcome"] == GATE_DRILLS[name], report["runs"]
        assert took < 90, took
    history = json.loads((drill_config.parent / "state" / "drills.json").read_text())
    assert history["drills"][-1]["drill"] == name
    # the drill history is exposed as metrics
    config = parse_config(
        {"state_dir": str(drill_config.parent / "state"), "ups": {"target": "pyrphoros@localhost"}}
    )
    metrics = Metrics()
    metrics.watch_drills(config.state_dir)
    port = metrics.serve("127.0.0.1:0")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    finally:
        metrics.close()
    assert f'hecate_drill_last_passed{{drill="{name}"}} 1.0' in text
    assert all(twin.nodes_ready().values())


def test_etcd_drills_on_three_servers(
    make_twin: TwinFactory, nut_server: NutServer, tmp_path: Path
) -> None:
    """Both etcd drills on one 3-server twin (real etcd), one after the other."""
    twin = make_twin(servers=3, agents=0)
    data = twin_config_data(
        twin,
        tmp_path / "state",
        nut_server,
        startup={"etcd_quorum_timeout_seconds": 15, "flux_ready_timeout_seconds": 5},
    )
    config = write_config(tmp_path / "hecate.yaml", data)
    for name in ETCD_DRILLS:
        started = time.monotonic()
        result = drills_sh("run", name, "--execute", "--yes", "--config", str(config), "--json")
        report = json.loads(result.stdout)
        failed = [c for c in report["checks"] if not c["ok"]]
        assert result.returncode == 0, (name, failed, report["message"], result.stderr[-3000:])
        assert report["passed"] is True and report["manual_steps"] == 0
        assert time.monotonic() - started < 240  # member-lost took 121 s on a loaded host
    history = json.loads((tmp_path / "state" / "drills.json").read_text())
    assert [d["drill"] for d in history["drills"]] == list(ETCD_DRILLS)
