"""etcd in the flows against in-memory ports: the etcd_quorum stage, the snapshot record, the
start order, and `recover etcd` (refusals, the steps, an interrupted recovery)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hecate.adapters.ansible.events import HostStats, TaskTiming
from hecate.adapters.ansible.protocol import PlaybookResult
from hecate.adapters.statedir.store import StateStore
from hecate.config.model import HecateConfig, parse_config
from hecate.core.etcd_recover import RecoverRequest
from hecate.core.plans import ShutdownOptions, StartupOptions, startup_plan
from hecate.core.readings import UpsReading, parse_status
from hecate.core.run_history import Outcome
from hecate.flows.context import FlowContext, Stage, apply_playbook_result
from hecate.flows.recover_etcd import (
    RecoverFailedError,
    RecoverRefusedError,
    load_record,
    recover_etcd,
)
from hecate.flows.shutdown import run_shutdown
from hecate.flows.startup import run_startup
from tests.fakes import FakeAnsible, FakeKube

SERVERS = ["s1", "s2", "s3"]


def _config(tmp_path: Path, **extra: object) -> HecateConfig:
    data: dict[str, object] = {
        "state_dir": str(tmp_path / "state"),
        "nodes": {"servers": SERVERS, "agents": ["a1"]},
        "ups": {"target": "ups@localhost"},
        "startup": {
            "flux_ready_timeout_seconds": 1,
            "nodes_ready_timeout_seconds": 1,
            "api_timeout_seconds": 1,
            "etcd_quorum_timeout_seconds": 20,
        },
    }
    data.update(extra)
    return parse_config(data)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def sleep(self, s: float) -> None:
        self.t += max(s, 0.5)


def _ctx(config: HecateConfig, ansible: FakeAnsible) -> FlowContext:
    kube = FakeKube(nodes_up=dict.fromkeys([*SERVERS, "a1"], True))
    kube.add_flux("GitRepository", "flux-system", "flux-system")
    ansible.cluster = kube
    clock = Clock()
    return FlowContext(
        config=config,
        ansible=ansible,
        kube=kube,
        store=StateStore(config.state_dir),
        read_ups=lambda: UpsReading(parse_status("OL"), 1800, 100),
        sleep=clock.sleep,
        monotonic=lambda: clock.t,
    )


def test_dry_run_plan_names_etcd_quorum_after_start_servers(tmp_path: Path) -> None:
    names = startup_plan(_config(tmp_path), StartupOptions()).stage_names
    assert names.index("etcd_quorum") == names.index("start_servers") + 1
    sqlite = _config(tmp_path, cluster={"datastore": "sqlite"})
    assert "etcd_quorum" not in startup_plan(sqlite, StartupOptions()).stage_names


def test_startup_with_quorum_records_the_verdict(tmp_path: Path) -> None:
    ansible = FakeAnsible()
    report = run_startup(_ctx(_config(tmp_path), ansible), StartupOptions())
    stage = next(s for s in report.stages if s.name == "etcd_quorum")
    assert stage.status.value == "ok", report.to_json()
    assert report.facts["etcd_quorum"]["quorum"] is True
    runs = StateStore(_config(tmp_path).state_dir).load_runs()
    assert runs[-1].facts["etcd_quorum"]["needed"] == 2


def test_member_lost_startup_goes_on_and_names_it(tmp_path: Path) -> None:
    ansible = FakeAnsible(etcd_data_lost={"s3"})
    report = run_startup(_ctx(_config(tmp_path), ansible), StartupOptions())
    stage = next(s for s in report.stages if s.name == "etcd_quorum")
    assert stage.status.value == "partial"
    assert "repair s3" in stage.detail
    assert stage.nodes["s3"] == "data_missing"
    assert "wait_api" in [s.name for s in report.stages]  # it went on


def test_quorum_lost_stops_startup_at_etcd_quorum(tmp_path: Path) -> None:
    ansible = FakeAnsible(etcd_data_lost={"s2", "s3"}, etcd_quorum=False)
    report = run_startup(_ctx(_config(tmp_path), ansible), StartupOptions())
    assert report.outcome is Outcome.FAILED
    assert report.stages[-1].name == "etcd_quorum"
    assert "s2 data_missing" in report.message and "hecate recover etcd" in report.message


def test_sqlite_detected_skips_the_stage(tmp_path: Path) -> None:
    probe = "unit=active\ndata=missing\ncluster_init=no\nhealth=curl: (7) refused"
    ansible = FakeAnsible(etcd_stdout=dict.fromkeys(SERVERS, probe))
    report = run_startup(_ctx(_config(tmp_path), ansible), StartupOptions())
    stage = next(s for s in report.stages if s.name == "etcd_quorum")
    assert stage.status.value == "skipped" and "sqlite" in stage.detail


def test_shutdown_records_snapshot_and_stop_times_then_startup_orders(tmp_path: Path) -> None:
    config = _config(tmp_path)
    ansible = FakeAnsible()
    report = run_shutdown(_ctx(config, ansible), ShutdownOptions(mode="cluster-only"))
    snap = report.facts["etcd_snapshot"]
    assert snap["verified"] and snap["node"] == "s1"
    assert snap["path"].startswith("/var/lib/rancher/k3s/server/db/snapshots/hecate-shutdown-")
    request = next(r for r in ansible.requests if r.playbook == "etcd_snapshot")
    assert request.extravars["etcd_snapshot_verify_keep"] == 5
    # the stop times as a real run records them (the fake has no task timings): s2 last
    store = StateStore(config.state_dir)
    run = store.load_runs()[-1]
    facts = {**run.facts, "node_times": {"stop_servers": {"s1": 1.0, "s2": 3.0, "s3": 2.0}}}
    store.record_run(run.__class__(**{**run.__dict__, "facts": facts}), keep=10)
    ansible.requests.clear()
    run_startup(_ctx(config, ansible), StartupOptions())
    started = next(limit for name, limit in ansible.playbooks if name == "start_servers")
    assert started == ("s2", "s3", "s1")


def _shutdown_then_lose(tmp_path: Path, lost: set[str]) -> tuple[HecateConfig, FakeAnsible]:
    config = _config(tmp_path)
    ansible = FakeAnsible()
    run_shutdown(_ctx(config, ansible), ShutdownOptions(mode="cluster-only"))
    ansible.etcd_data_lost = set(lost)
    ansible.etcd_quorum = False
    return config, ansible


def _snapshot_ok() -> str:
    return "exists=yes\nsize=4096\nmtime=" + "9" * 10 + "\nreadable=yes\ntoken=yes"


def test_recover_is_a_dry_run_and_refuses_with_quorum(tmp_path: Path) -> None:
    config = _config(tmp_path)
    ansible = FakeAnsible()
    run_shutdown(_ctx(config, ansible), ShutdownOptions(mode="cluster-only"))
    with pytest.raises(RecoverRefusedError, match="healthy quorum"):
        recover_etcd(_ctx(config, ansible), RecoverRequest("latest", None), execute=True)
    assert not [a for a, _ in ansible.etcd_actions if a in ("reset", "move_aside")]


def test_recover_dry_run_changes_nothing(tmp_path: Path) -> None:
    config, ansible = _shutdown_then_lose(tmp_path, {"s2", "s3"})
    ansible.etcd_stdout = {"s1": _snapshot_ok()}
    ansible.requests.clear()
    outcome = recover_etcd(_ctx(config, ansible), RecoverRequest("latest", None), execute=False)
    assert outcome.plan.server == "s1" and not outcome.done
    assert {name for name, _ in ansible.playbooks} == {"etcd"}  # reads only
    assert {a for a, _ in ansible.etcd_actions} == {"probe", "snapshot"}
    assert load_record(config.state_dir) is None


def test_recover_unrecorded_snapshot_refused_unless_forced(tmp_path: Path) -> None:
    config, ansible = _shutdown_then_lose(tmp_path, {"s2", "s3"})
    ansible.etcd_stdout = {"s1": _snapshot_ok()}
    with pytest.raises(RecoverRefusedError, match="not recorded by Hecate"):
        recover_etcd(_ctx(config, ansible), RecoverRequest("/tmp/x.db", "s1"), execute=False)
    recover_etcd(_ctx(config, ansible), RecoverRequest("/tmp/x.db", "s1", True), execute=False)


def test_recover_server_unreachable_stops_and_second_run_finishes(tmp_path: Path) -> None:
    config, ansible = _shutdown_then_lose(tmp_path, {"s2", "s3"})
    ansible.etcd_stdout = {"s1": _snapshot_ok()}
    ctx = _ctx(config, ansible)
    plan = recover_etcd(ctx, RecoverRequest("latest", None), execute=False).plan
    ansible.unreachable = {"s3"}
    with pytest.raises(RecoverFailedError, match="s3 unreachable") as failure:
        recover_etcd(ctx, RecoverRequest("latest", None), execute=True)
    assert "nothing was deleted" in str(failure.value)
    record = load_record(config.state_dir)
    assert record is not None and record.unfinished and record.done == []
    assert not [a for a, _ in ansible.etcd_actions if a in ("reset", "move_aside")]
    # s3 back: the second run resumes the recorded plan, whatever it is asked
    ansible.unreachable = set()
    ansible.etcd_stdout = {}  # (s2's and s3's data still lost: no quorum, so it resumes)
    described = recover_etcd(ctx, RecoverRequest("/other", "s2"), execute=False)
    assert "stopped" in described.resumed and described.plan.snapshot == plan.snapshot
    outcome = recover_etcd(ctx, RecoverRequest("latest", None), execute=True)
    assert outcome.done == [
        "stop_all",
        "reset",
        "move_aside",
        "start_first",
        "start_rest",
        "quorum",
    ]
    actions = [(a, limit) for a, limit in ansible.etcd_actions if a in ("reset", "move_aside")]
    assert actions == [("reset", ("s1",)), ("move_aside", ("s2", "s3"))]
    reset = next(r for r in ansible.requests if r.extravars.get("etcd_action") == "reset")
    assert reset.extravars["etcd_args"] == [plan.snapshot, "/var/lib/rancher/k3s/server/token"]
    saved = json.loads((config.state_dir / "etcd-recovery.json").read_text())
    assert saved["outcome"] == "success"


def test_stop_times_from_the_playbook_timings_ok_or_changed() -> None:
    """A stopped unit is a `changed` task: its end time is recorded too (it was not, first)."""

    def at(second: int) -> datetime:
        return datetime(2026, 1, 1, 0, 0, second, tzinfo=UTC)

    timings = [
        TaskTiming("stop", "s1", "ok", at(0), at(1), 1.0),
        TaskTiming("stop", "s2", "changed", at(0), at(3), 3.0),
        TaskTiming("stop", "s3", "failed", at(0), at(2), 2.0),
    ]
    hosts = {"s1": HostStats(ok=1), "s2": HostStats(changed=1), "s3": HostStats(failed=1)}
    result = PlaybookResult("stop_servers", "failed", 2, hosts, 3.0, timings, None)
    stage = Stage("stop_servers")
    apply_playbook_result(stage, result, SERVERS)
    assert stage.node_times == {"s1": at(1).timestamp(), "s2": at(3).timestamp()}


def test_member_that_rejoined_empty_is_still_named(tmp_path: Path) -> None:
    """k3s may rejoin a server whose data is gone as a new member: healthy after the start,
    so its data is read before k3s starts, and it is named."""
    ansible = FakeAnsible(etcd_data_lost={"s3"}, etcd_reset=True)  # start_servers heals it
    report = run_startup(_ctx(_config(tmp_path), ansible), StartupOptions())
    stage = next(s for s in report.stages if s.name == "etcd_quorum")
    assert stage.status.value == "partial", report.to_json()
    assert stage.nodes["s3"] == "data_missing" and "rejoined" in json.dumps(report.facts)
    start = next(s for s in report.stages if s.name == "start_servers")
    assert "missing before the start: s3" in start.detail
