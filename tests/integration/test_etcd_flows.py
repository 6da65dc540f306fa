"""Hecate's etcd work against the twin's real etcd (3 servers, k3s's layout), in one story to
stay lean: the shutdown's snapshot is verified and recorded; with two servers' etcd data
destroyed the startup stops at etcd_quorum naming them; `hecate recover etcd` refuses while
quorum is healthy, is a dry run without --execute, and brings the cluster back from the
pre-shutdown snapshot with the objects created before it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hecate.adapters.ansible.port import AnsiblePort
from hecate.adapters.kube.client import Kube
from hecate.adapters.statedir.store import StateStore
from hecate.config.model import HecateConfig
from hecate.core.etcd_recover import RecoverRequest
from hecate.core.plans import ShutdownOptions, StartupOptions
from hecate.core.run_history import Outcome
from hecate.flows.context import FlowContext
from hecate.flows.recover_etcd import RecoverRefusedError, recover_etcd
from hecate.flows.shutdown import run_shutdown
from hecate.flows.startup import run_startup
from tests.integration.support import twin_config
from tests.testbed.pytest_twin import TwinFactory
from tests.testbed.twin import wait_until
from tests.testbed.twin_etcd import DATA_DIR

pytestmark = pytest.mark.integration
NS = "/api/v1/namespaces"


@contextmanager
def _ctx(config: HecateConfig) -> Iterator[FlowContext]:
    with AnsiblePort.from_config(config) as ansible, Kube(config.kubeconfig) as kube:
        yield FlowContext(config, ansible, kube, StateStore(config.state_dir))


def test_snapshot_quorum_lost_and_recover(make_twin: TwinFactory, tmp_path: Path) -> None:
    twin = make_twin(servers=3, agents=0)
    config = twin_config(
        twin,
        tmp_path / "state",
        startup={"etcd_quorum_timeout_seconds": 15, "api_timeout_seconds": 30},
        shutdown={"etcd_snapshots_kept": 1},
    )
    assert twin.api("POST", NS, {"metadata": {"name": "before-snapshot"}})[0] == 201
    with _ctx(config) as ctx:
        with pytest.raises(RecoverRefusedError, match="healthy quorum"):
            recover_etcd(ctx, RecoverRequest("latest", None), execute=True)
        report = run_shutdown(ctx, ShutdownOptions(mode="cluster-only"))
    snap = report.facts["etcd_snapshot"]
    assert snap["verified"] and snap["checked_by"] == "etcdctl snapshot status", snap
    assert snap["path"].startswith("/var/lib/rancher/k3s/server/db/snapshots/hecate-shutdown-")
    assert set(report.facts["node_times"]["stop_servers"]) == {n.name for n in twin.servers}

    # two of three servers' etcd data destroyed: no quorum can come back
    for server in ("twin-s2", "twin-s3"):
        assert twin.exec(server, "rm", "-rf", DATA_DIR).returncode == 0
    with _ctx(config) as ctx:
        failed = run_startup(ctx, StartupOptions())
    assert failed.outcome is Outcome.FAILED
    assert failed.stages[-1].name == "etcd_quorum", failed.to_json()
    assert "twin-s2 data_missing" in failed.message and "twin-s3 data_missing" in failed.message
    assert "hecate recover etcd" in failed.message

    with _ctx(config) as ctx:
        dry = recover_etcd(ctx, RecoverRequest("latest", None), execute=False)
        assert dry.plan.server == "twin-s1" and dry.done == []
        done = recover_etcd(ctx, RecoverRequest("latest", None), execute=True)
    assert done.done[-1] == "quorum" and done.verdict is not None and done.verdict.quorum
    wait_until(lambda: twin.api_ready("twin-s1"), 30, "the API after the recovery")
    status, body = twin.api("GET", NS, server="twin-s2")
    assert status == 200 and "before-snapshot" in {i["metadata"]["name"] for i in body["items"]}
