"""Staged shutdown and startup end to end on the twin: real SSH, real systemd units, the API
stand-in, real upsd for the guards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hecate.adapters.ansible.port import AnsiblePort
from hecate.adapters.kube.client import Kube
from hecate.adapters.nut.port import Ups, poll
from hecate.adapters.statedir.store import StateStore
from hecate.config.model import HecateConfig
from hecate.core.intent import IntentState
from hecate.core.plans import ShutdownOptions, StartupOptions
from hecate.core.run_history import Outcome
from hecate.flows.context import FlowContext
from hecate.flows.report import FlowReport
from hecate.flows.shutdown import run_shutdown
from hecate.flows.startup import run_startup
from tests.integration.support import twin_config, twin_config_data, write_config
from tests.testbed.nut import NutServer
from tests.testbed.pytest_twin import TwinFactory
from tests.testbed.twin import Twin

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
HECATE = [sys.executable, "-m", "hecate"]


@contextmanager
def flow_context(config: HecateConfig) -> Iterator[FlowContext]:
    with AnsiblePort.from_config(config) as ansible, Kube(config.kubeconfig) as kube:
        client = Ups.from_config(config).client
        yield FlowContext(
            config,
            ansible,
            kube,
            StateStore(config.state_dir),
            read_ups=lambda: poll(client),
            ups_command=client.instant_command,
        )


def shutdown(config: HecateConfig, **options: object) -> FlowReport:
    with flow_context(config) as ctx:
        return run_shutdown(ctx, ShutdownOptions(**options))  # type: ignore[arg-type]


def startup(config: HecateConfig, **options: object) -> FlowReport:
    with flow_context(config) as ctx:
        return run_startup(ctx, StartupOptions(**options))  # type: ignore[arg-type]


def flux_item(twin: Twin, kind: str, namespace: str, name: str) -> dict[str, object]:
    group = {
        "kustomizations": "kustomize.toolkit.fluxcd.io/v1",
        "gitrepositories": "source.toolkit.fluxcd.io/v1",
        "helmreleases": "helm.toolkit.fluxcd.io/v2",
    }[kind]
    item = twin.get(f"/apis/{group}/namespaces/{namespace}/{kind}/{name}")
    assert isinstance(item, dict)
    return item


def is_suspended(twin: Twin, kind: str, namespace: str, name: str) -> bool:
    spec = flux_item(twin, kind, namespace, name).get("spec", {})
    assert isinstance(spec, dict)
    return bool(spec.get("suspend", False))


def is_ready(twin: Twin, kind: str, namespace: str, name: str) -> bool:
    status = flux_item(twin, kind, namespace, name).get("status", {})
    assert isinstance(status, dict)
    return any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", [])
    )


def test_round_trip_shutdown_then_startup(
    make_twin: TwinFactory, nut_server: NutServer, tmp_path: Path
) -> None:
    twin = make_twin(1, 2)
    config = twin_config(twin, tmp_path / "state", nut_server)
    # An operator paused this one before the outage: it must stay paused afterwards.
    status, _ = twin.api(
        "PATCH",
        "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations/infrastructure",
        {"spec": {"suspend": True}},
    )
    assert status == 200

    down = shutdown(config, mode="cluster-only", reason="test round trip")
    assert down.outcome is Outcome.SUCCESS, down.to_json()
    for node in twin.nodes:
        assert not twin.unit_active(node), f"{node.name} still runs {node.unit}"
    assert not twin.api_ready()
    snapshot = next(s for s in down.stages if s.name == "etcd_snapshot")
    assert snapshot.status == "ok"
    listing = twin.exec(twin.servers[0], "ls", "/var/lib/rancher/k3s/server/db/snapshots")
    assert "hecate-shutdown-" in listing.stdout
    store = StateStore(config.state_dir)
    assert store.read_intent().state is IntentState.SHUTDOWN_COMPLETE

    up = startup(config)
    assert up.outcome is Outcome.SUCCESS, up.to_json()
    assert twin.api_ready()
    assert all(twin.nodes_ready().values())
    assert is_suspended(twin, "kustomizations", "flux-system", "infrastructure")
    for name in ("flux-system", "apps", "gitea"):
        assert not is_suspended(twin, "kustomizations", "flux-system", name)
    assert not is_suspended(twin, "helmreleases", "apps", "nextcloud")
    nodes = twin.get("/api/v1/nodes")["items"]
    assert not any(n.get("spec", {}).get("unschedulable") for n in nodes)
    assert store.read_intent().state is IntentState.NORMAL
    assert [r.outcome for r in store.load_runs()] == [Outcome.SUCCESS, Outcome.SUCCESS]


def test_gitea_deadlock_is_recovered_by_the_fallback(
    make_twin: TwinFactory, nut_server: NutServer, tmp_path: Path
) -> None:
    twin = make_twin(1, 1)
    config = twin_config(twin, tmp_path / "state", nut_server)
    status, _ = twin.api(
        "PATCH",
        "/apis/apps/v1/namespaces/gitea/deployments/gitea/scale",
        {"spec": {"replicas": 0}},
    )
    assert status == 200
    deadline = time.monotonic() + 20
    while is_ready(twin, "gitrepositories", "flux-system", "flux-system"):
        assert time.monotonic() < deadline, "GitRepository stayed Ready without Gitea"
        time.sleep(0.5)
    assert shutdown(config, mode="cluster-only", skip_etcd_snapshot=True).outcome is (
        Outcome.SUCCESS
    )
    up = startup(config)
    assert "gitea_scale" in up.fallbacks
    assert up.outcome is Outcome.SUCCESS, up.to_json()
    assert is_ready(twin, "gitrepositories", "flux-system", "flux-system")
    assert is_ready(twin, "kustomizations", "flux-system", "gitea")


def test_unreachable_agent_does_not_stop_the_others(
    make_twin: TwinFactory, nut_server: NutServer, tmp_path: Path
) -> None:
    twin = make_twin(1, 2)
    config = twin_config(twin, tmp_path / "state", nut_server)
    lost = twin.agents[1]
    twin.poweroff(lost)
    report = shutdown(config, mode="cluster-only", skip_etcd_snapshot=True)
    assert report.outcome is Outcome.PARTIAL
    stage = next(s for s in report.stages if s.name == "stop_agents")
    assert stage.nodes[lost.name] == "unreachable"
    assert stage.nodes[twin.agents[0].name] == "ok"
    assert not twin.unit_active(twin.agents[0])
    assert not twin.unit_active(twin.servers[0])
    assert report.to_json()["nodes"][lost.name]["stop_agents"] == "unreachable"


def test_poweroff_mode_powers_the_nodes_off(
    make_twin: TwinFactory, nut_server: NutServer, tmp_path: Path
) -> None:
    twin = make_twin(1, 2)
    # load.off is the instant command dummy-ups supports (a real UPS: shutdown.return)
    config = twin_config(
        twin,
        tmp_path / "state",
        nut_server,
        shutdown={"ups_kill_power": True, "ups_kill_command": "load.off"},
    )
    report = shutdown(config, mode="poweroff", skip_etcd_snapshot=True)
    assert report.outcome is Outcome.SUCCESS, report.to_json()
    kill = next(s for s in report.stages if s.name == "ups_kill_power")
    assert (kill.status, kill.detail) == ("ok", "load.off sent")
    deadline = time.monotonic() + 30
    while any(twin.is_running(n) for n in twin.nodes):
        assert time.monotonic() < deadline, "nodes still running after poweroff"
        time.sleep(0.5)
    for node in twin.nodes:  # power returns: the hosts boot, k3s is enabled at boot
        twin.power_on(node)
    up = startup(config)
    assert up.outcome is Outcome.SUCCESS, up.to_json()


def _run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HECATE, *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env=env,
        check=False,
    )


def test_startup_guards_with_real_ups(twin: Twin, nut_server: NutServer, tmp_path: Path) -> None:
    state = tmp_path / "state"
    config_file = write_config(tmp_path / "hecate.yaml", twin_config_data(twin, state, nut_server))
    nut_server.set_reading(status="OB DISCHRG", runtime=900, charge=90)
    result = _run_cli("startup", "--execute", "--config", str(config_file), "--json")
    assert result.returncode == 3, result.stderr
    assert [r["guard"] for r in json.loads(result.stdout)["refused"]] == ["battery"]

    nut_server.set_reading(status="OL CHRG", runtime=900, charge=20)
    result = _run_cli("startup", "--execute", "--config", str(config_file), "--json")
    assert result.returncode == 3
    assert [r["guard"] for r in json.loads(result.stdout)["refused"]] == ["charge"]

    nut_server.set_reading(status="OL", runtime=1800, charge=100)
    StateStore(state).set_intent(IntentState.SHUTTING_DOWN, reason="ups", run_id="r1")
    result = _run_cli("startup", "--execute", "--config", str(config_file))
    assert result.returncode == 3
    assert "re-run `hecate shutdown --execute`" in result.stderr

    peer = twin_config_data(
        twin,
        tmp_path / "peer-state",
        nut_server,
        coordination={
            "role": "peer",
            "coordinator_address": "127.0.0.1:9",
            "listen": "127.0.0.1:0",
        },
    )
    peer_file = write_config(tmp_path / "peer.yaml", peer)
    result = _run_cli("startup", "--execute", "--config", str(peer_file))
    assert result.returncode == 3
    assert "peer" in result.stderr
    for node in twin.nodes:  # nothing was touched by the refused startups
        assert twin.unit_active(node)


def test_sigkill_mid_shutdown_then_rerun(
    make_twin: TwinFactory, nut_server: NutServer, tmp_path: Path
) -> None:
    twin = make_twin(1, 2)
    state = tmp_path / "state"
    config_file = write_config(tmp_path / "hecate.yaml", twin_config_data(twin, state, nut_server))
    with subprocess.Popen(
        [*HECATE, "shutdown", "--execute", "--mode", "cluster-only", "--config", str(config_file)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as proc:
        try:
            assert proc.stderr is not None
            deadline = time.monotonic() + 120
            for line in proc.stderr:
                if "stop k3s on agents" in line and "running" in line:  # its progress line
                    break
                assert time.monotonic() < deadline
            os.killpg(proc.pid, signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait(30)
    status = _run_cli("status", "--config", str(config_file), "--json")
    report = json.loads(status.stdout)
    assert report["intent"]["state"] == "shutting_down"
    assert report["intent"]["stale"] is False
    refused = _run_cli("startup", "--execute", "--config", str(config_file))
    assert refused.returncode == 3
    rerun = _run_cli(
        "shutdown", "--execute", "--mode", "cluster-only", "--config", str(config_file), "--json"
    )
    assert rerun.returncode == 0, rerun.stderr
    final = json.loads(rerun.stdout)
    assert final["outcome"] == "success"
    runs = StateStore(state).load_runs()
    assert [r.outcome for r in runs] == [Outcome.INTERRUPTED, Outcome.SUCCESS]
    for node in twin.nodes:
        assert not twin.unit_active(node)


def test_drain_evicts_the_agents_pods(
    make_twin: TwinFactory, nut_server: NutServer, tmp_path: Path
) -> None:
    twin = make_twin(1, 2)
    config = twin_config(
        twin,
        tmp_path / "state",
        nut_server,
        shutdown={"drain": True, "drain_timeout_seconds": 60, "etcd_snapshot": False},
    )
    agents = {a.name for a in twin.agents}

    def pods_on_agents() -> list[str]:
        pods = twin.get("/api/v1/pods")["items"]
        return [p["metadata"]["name"] for p in pods if p.get("spec", {}).get("nodeName") in agents]

    deadline = time.monotonic() + 30  # the scheduler binds on its next tick after Ready
    while not pods_on_agents() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert pods_on_agents(), "the twin should run pods on its agents"
    report = shutdown(config, mode="cluster-only")
    drain = next(s for s in report.stages if s.name == "drain")
    assert drain.status == "ok", drain.to_json()
    assert set(drain.nodes) == {a.name for a in twin.agents}
    assert report.outcome is Outcome.SUCCESS
    assert startup(config).outcome is Outcome.SUCCESS
