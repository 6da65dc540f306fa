"""Load shedding (issue 28) with a real `hecate daemon` on a real upsd, against the twin's
stand-in run as local processes (no podman, no lock): shed after `after_seconds` on battery,
restored on stable mains. The stand-in's Kustomization scales its workloads back unless
suspended (the first test), so "stays at 0" is a real check. The drill, with real Ansible on
the twin, is in tests/integration/test_drills.py."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.daemon_process import DaemonProcess, daemon_config_data, write_yaml
from tests.testbed.nut import NutServer
from tests.testbed.standin_host import LocalCluster, wait_for

pytestmark = pytest.mark.integration
WHOAMI = "/apis/apps/v1/namespaces/apps/deployments/whoami"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster(
        tmp_path_factory.mktemp("standin-shed"), servers=["s1"], agents=["a1", "a2"]
    ) as running:
        wait_for(lambda: all(running.node_ready(n) for n in ("s1", "a1", "a2")), 30, "Nodes Ready")
        wait_for(lambda: _replicas(running, ready=True) == 2, 60, "apps/whoami Ready")
        yield running


def _replicas(cluster: LocalCluster, *, ready: bool = False) -> int:
    _, obj = cluster.api("GET", WHOAMI)
    key, part = ("readyReplicas", "status") if ready else ("replicas", "spec")
    return int(obj.get(part, {}).get(key, 0))


def test_without_the_suspend_the_stand_in_scales_it_back(cluster: LocalCluster) -> None:
    """What the drill's check guards against: the owning Kustomization, not suspended,
    puts the replicas back within a few reconcile ticks."""
    scale: Callable[[int], tuple[int, object]] = lambda n: cluster.api(  # noqa: E731
        "PATCH", f"{WHOAMI}/scale", {"spec": {"replicas": n}}
    )
    assert scale(0)[0] == 200
    wait_for(lambda: _replicas(cluster) == 2, 10, "the Kustomization to scale whoami back")


def test_a_real_daemon_sheds_on_battery_and_restores_on_stable_mains(
    cluster: LocalCluster, nut_server: NutServer, tmp_path: Path
) -> None:
    """`hecate daemon` as a process, on a real upsd: after `after_seconds` on battery it sheds
    apps/whoami (the record on disk, status shows it); mains stable, it restores it."""
    cluster.api("PATCH", WHOAMI, {"metadata": {"labels": {"hecate.dev/shed": "true"}}})
    wait_for(lambda: _replicas(cluster) == 2, 20, "apps/whoami at 2")
    data = daemon_config_data(
        tmp_path,
        nut_server,
        {"a1": 1, "a2": 1, "s1": 1},  # port 1: refused at once (no node is reached)
        kubeconfig=str(cluster.kubeconfig),
        startup={"power_stable_seconds": 2},
        power={"shed": {"label_selector": "hecate.dev/shed=true", "after_seconds": 2}},
    )
    config = write_yaml(tmp_path / "hecate.yaml", data)
    daemon = DaemonProcess(config)
    try:
        daemon.wait_for("metrics on")
        nut_server.set_reading(status="OB DISCHRG", runtime=1800, charge=90)
        daemon.wait_for("action=shed", timeout=20)
        wait_for((tmp_path / "state" / "shed.json").exists, 10, "the record")
        wait_for(lambda: _replicas(cluster) == 0, 20, "apps/whoami at 0")
        # the gauge follows the shed's result, a moment after the scale the API shows
        wait_for(lambda: "hecate_shed_workloads 1.0" in daemon.metrics(), 10, "the shed gauge")
        status = subprocess.run(
            [sys.executable, "-m", "hecate", "status", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert "deployment/apps/whoami at 0 (was 2)" in status.stdout, status.stdout
        time.sleep(2)
        assert _replicas(cluster) == 0  # its Kustomization is suspended: not scaled back
        nut_server.set_reading(status="OL", runtime=1800, charge=90)
        daemon.wait_for("action=restore", timeout=30)
        wait_for(lambda: _replicas(cluster) == 2, 20, "apps/whoami back at 2")
        wait_for(lambda: not (tmp_path / "state" / "shed.json").exists(), 10, "no record")
        code, _ = daemon.stop()
        assert code == 0, daemon.text[-2000:]
    finally:
        daemon.kill()
