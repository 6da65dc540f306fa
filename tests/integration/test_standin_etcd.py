"""The stand-in's real etcd on this host (no podman): ``k3s server --cluster-reset``.

Each server of a LocalCluster is ``kube_standin.py server`` with its own etcd member (plain HTTP
on 127.0.0.1), the same code as in the twin (``node/etcd_member.py``). The restore from a
snapshot is tested on the twin (tests/integration/test_twin_etcd.py).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.testbed.node import etcd_member
from tests.testbed.standin_host import STANDIN, LocalCluster, wait_for

NS = "/api/v1/namespaces"


def _namespace(cluster: LocalCluster, name: str, server: str = "s1") -> None:
    code, answer = cluster.api("POST", NS, {"metadata": {"name": name}}, server=server)
    assert code == 201, answer


def _names(cluster: LocalCluster, server: str) -> set[str]:
    code, answer = cluster.api("GET", NS, server=server)
    assert code == 200, answer
    return {item["metadata"]["name"] for item in answer["items"]}


def _reset(cluster: LocalCluster, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, str(STANDIN), "--conf", str(cluster.conf_path(name)), "server"]
    return subprocess.run(
        [*argv, "--cluster-reset", *args], capture_output=True, text=True, timeout=60, check=False
    )


def _members(conf: dict[str, Any]) -> list[dict[str, Any]]:
    with etcd_member.local_client(conf) as client:
        return client.members()


def test_a_reset_without_a_snapshot_keeps_the_data_as_a_one_member_cluster(
    tmp_path: Path,
) -> None:
    servers = ["s1", "s2", "s3"]
    with LocalCluster(tmp_path, servers=servers) as cluster:
        wait_for(lambda: all(cluster.readyz(s) for s in servers), 30, "every server ready")
        _namespace(cluster, "kept")
        for server in servers:
            cluster.stop(server)
        done = _reset(cluster, "s1")
        assert done.returncode == 0, done.stderr
        cluster.start("s1")  # alone, and yet it has quorum: the others are no longer members
        wait_for(lambda: cluster.readyz("s1"), 30, "s1 alone after the reset")
        assert "kept" in _names(cluster, "s1")
        assert [m["name"] for m in _members(cluster.node_conf("s1")["etcd"])] == ["s1"]
