"""The stand-in's real etcd on this host (no podman): k3s's cluster-reset-from-snapshot procedure.

Each server of a LocalCluster is ``kube_standin.py server`` with its own etcd member (plain HTTP
on 127.0.0.1). What the twin's ``k3s server --cluster-reset --cluster-reset-restore-path`` does
is the same code (``node/etcd_member.py``), so the whole recovery runs here in seconds.
"""

from __future__ import annotations

import json
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


def test_restore_from_a_snapshot_then_the_others_rejoin_as_new_members(tmp_path: Path) -> None:
    servers = ["s1", "s2", "s3"]
    with LocalCluster(tmp_path, servers=servers) as cluster:
        wait_for(lambda: all(cluster.readyz(s) for s in servers), 30, "every server ready")
        conf = {s: cluster.node_conf(s)["etcd"] for s in servers}
        assert {m["name"] for m in _members(conf["s1"])} == set(servers)
        _namespace(cluster, "before-snapshot")
        snapshots = tmp_path / "snapshots"
        saved = etcd_member.snapshot_save(conf["s1"], "pre-shutdown", snapshots)
        assert saved == 0
        (snapshot,) = snapshots.glob("pre-shutdown-s1-*")
        _namespace(cluster, "after-snapshot", server="s2")
        for server in servers:
            cluster.stop(server)
        token = (cluster.state_dir / "token").read_text().strip()

        refused = _reset(
            cluster, "s1", "--cluster-reset-restore-path", str(snapshot), "--token", "wrong"
        )
        assert refused.returncode == 1 and "different token" in refused.stderr
        (cluster.state_dir / "token").unlink()  # no token file, none given: k3s refuses
        refused = _reset(cluster, "s1", "--cluster-reset-restore-path", str(snapshot))
        assert refused.returncode == 1 and "token is required" in refused.stderr
        data_dir = Path(conf["s1"]["dataDir"])
        assert (data_dir / "member").is_dir(), "a refused restore leaves the data alone"

        done = _reset(
            cluster, "s1", "--cluster-reset-restore-path", str(snapshot), "--token", token
        )
        assert done.returncode == 0, done.stderr
        assert "restart without --cluster-reset flag now" in done.stderr
        (aside,) = data_dir.parent.glob("etcd-old-*")
        assert (aside / "member").is_dir(), "the old data is kept beside, never deleted"
        for server in ("s2", "s3"):  # the operator's part: move the peers' data aside
            peer_dir = Path(conf[server]["dataDir"])
            peer_dir.rename(peer_dir.with_name("etcd-moved"))
        cluster.start("s1")
        wait_for(lambda: cluster.readyz("s1"), 30, "the restored one-member cluster")
        assert [m["name"] for m in _members(conf["s1"])] == ["s1"]
        cluster.start("s2")
        cluster.start("s3")
        wait_for(lambda: cluster.readyz("s2") and cluster.readyz("s3"), 60, "the peers rejoin")
        members = _members(conf["s1"])
        assert sorted(m["name"] for m in members) == servers, json.dumps(members)
        names = _names(cluster, "s3")
        assert "before-snapshot" in names and "after-snapshot" not in names


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
