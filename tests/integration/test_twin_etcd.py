"""The twin's real etcd: quorum, snapshots and k3s's cluster-reset-from-snapshot procedure.

One 3-server twin (no agents) for the whole story, to keep it lean: the API answers exactly while
etcd has quorum; ``k3s etcd-snapshot save`` makes a real snapshot; ``k3s server --cluster-reset
--cluster-reset-restore-path`` brings back what the snapshot holds, the other servers rejoin as new
members once their data is moved aside.
"""

from __future__ import annotations

import json
from typing import Any

from tests.testbed.pytest_twin import TwinFactory
from tests.testbed.twin import Twin, TwinApiDownError, wait_until
from tests.testbed.twin_etcd import DATA_DIR, etcdctl_argv

NS = "/api/v1/namespaces"
SERVERS = ["twin-s1", "twin-s2", "twin-s3"]


def _members(twin: Twin, server: str) -> list[dict[str, Any]]:
    listing = twin.exec(server, *etcdctl_argv(), "member", "list", "-w", "json")
    assert listing.returncode == 0, listing.stderr
    members: list[dict[str, Any]] = json.loads(listing.stdout)["members"]
    return members


def _namespaces(twin: Twin, server: str) -> set[str]:
    status, body = twin.api("GET", NS, server=server)
    assert status == 200, body
    return {item["metadata"]["name"] for item in body["items"]}


def _api_down(twin: Twin, server: str) -> bool:
    try:
        status, _ = twin.api("GET", NS, server=server, timeout=5)
    except TwinApiDownError:
        return True
    return status == 504


def test_quorum_snapshot_and_restore_with_three_servers(make_twin: TwinFactory) -> None:
    twin = make_twin(servers=3, agents=0)
    assert sorted(m["name"] for m in _members(twin, "twin-s1")) == SERVERS
    assert twin.api("POST", NS, {"metadata": {"name": "before-snapshot"}})[0] == 201
    saved = twin.exec("twin-s1", "k3s", "etcd-snapshot", "save", "--name", "pre-shutdown")
    assert saved.returncode == 0, saved.stderr
    snapshot = saved.stdout.strip().splitlines()[-1]
    assert snapshot.startswith("/var/lib/rancher/k3s/server/db/snapshots/pre-shutdown-twin-s1-")
    assert twin.api("POST", NS, {"metadata": {"name": "after-snapshot"}})[0] == 201

    # Quorum: two of three servers' k3s stopped, the third's API times out; one back, it answers.
    twin.stop_unit("twin-s2")
    twin.stop_unit("twin-s3")
    wait_until(lambda: not twin.api_ready("twin-s1"), 10, "s1 to lose quorum")
    assert _api_down(twin, "twin-s1")
    twin.start_unit("twin-s3")
    wait_until(lambda: twin.api_ready("twin-s1"), 20, "quorum with s3 back")
    assert {"before-snapshot", "after-snapshot"} <= _namespaces(twin, "twin-s1")

    # k3s's restore: every server stopped, one reset from the snapshot (with the server token),
    # the others' etcd data moved aside, all started: they rejoin as new members.
    for server in ("twin-s1", "twin-s3"):
        twin.stop_unit(server)
    reset = ["k3s", "server", "--cluster-reset", "--cluster-reset-restore-path", snapshot]
    refused = twin.exec("twin-s1", *reset, "--token", "not-the-token")
    assert refused.returncode == 1 and "different token" in refused.stderr
    done = twin.exec("twin-s1", *reset, "--token", twin.server_token)
    assert done.returncode == 0, done.stderr
    assert "restart without --cluster-reset flag now" in done.stderr
    for server in ("twin-s2", "twin-s3"):
        moved = twin.exec(server, "mv", DATA_DIR, f"{DATA_DIR}-moved-aside")
        assert moved.returncode == 0, moved.stderr
    for server in SERVERS:
        twin.start_unit(server)
    wait_until(lambda: all(twin.api_ready(s) for s in SERVERS), 60, "every server rejoined")
    assert sorted(m["name"] for m in _members(twin, "twin-s2")) == SERVERS
    names = _namespaces(twin, "twin-s3")
    assert "before-snapshot" in names and "after-snapshot" not in names
