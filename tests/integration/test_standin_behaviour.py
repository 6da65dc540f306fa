"""Behaviours of the stand-in the flows must survive on a real cluster, with Hecate's adapter
against it (local processes: no podman, no lock)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hecate.kube import Kube, KubeUnavailableError
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
