"""The etcd decisions: datastore, quorum verdict per member, start order, recovery guards."""

from __future__ import annotations

import json
from typing import Any

from hecate.config.model import parse_config
from hecate.core.doctor.etcd import etcd_findings
from hecate.core.etcd import (
    EtcdReading,
    decide_datastore,
    member_of,
    parse_probe,
    quorum_verdict,
    render_verdict,
    start_order,
)
from hecate.core.etcd_recover import (
    RecoverRequest,
    RecoveryRecord,
    SnapshotFacts,
    plan_recovery,
    resume_plan,
)
from hecate.core.etcd_status import RecordedSnapshot, recorded_snapshots
from hecate.core.run_history import Outcome, RunRecord

SERVERS = ["s1", "s2", "s3"]


def _probe(node: str, *, health: bool = True, data: str = "present", unit: str = "active") -> str:
    members = {"header": {"cluster_id": "42"}, "members": [{"name": n} for n in SERVERS]}
    status = {"header": {"cluster_id": "42"}, "raftIndex": "100"}
    return "\n".join(
        [
            f"unit={unit}",
            f"data={data}",
            "cluster_init=yes",
            f"health={json.dumps({'health': str(health).lower()})}",
            f"member_list={json.dumps(members)}",
            f"status={json.dumps(status)}",
        ]
    )


def _healthy() -> dict[str, EtcdReading]:
    return {n: parse_probe(n, _probe(n)) for n in SERVERS}


def test_parse_probe_reads_etcd_gateway_json() -> None:
    reading = parse_probe("s1", _probe("s1"))
    assert reading.health is True
    assert reading.members == ("s1", "s2", "s3")
    assert reading.raft_index == 100 and reading.cluster_id == "42"
    assert reading.unit_active is True and reading.data == "present"


def test_parse_probe_curl_error_is_unhealthy_not_a_crash() -> None:
    reading = parse_probe("s1", "unit=active\ndata=present\nhealth=curl: (7) Failed to connect")
    assert reading.health is False and reading.members is None


def test_datastore_decision() -> None:
    etcd = [parse_probe("s1", _probe("s1"))]
    sqlite = [EtcdReading("s1", data="missing", cluster_init=False)]
    assert decide_datastore("auto", etcd) == "etcd"
    assert decide_datastore("auto", sqlite) == "sqlite"
    assert decide_datastore("auto", [EtcdReading("s1", reachable=False)]) == "unknown"
    assert decide_datastore("sqlite", etcd) == "sqlite"  # the config wins
    # one server's data lost, another with cluster-init: still etcd
    mixed = [
        EtcdReading("s1", data="missing"),
        EtcdReading("s2", data="missing", cluster_init=True),
    ]
    assert decide_datastore("auto", mixed) == "etcd"


def test_member_names_as_real_k3s_gives_them() -> None:
    assert member_of("s1", ["s1-1a2b3c4d", "s10-00000000"]) == "s1-1a2b3c4d"
    assert member_of("s1", ["s10-00000000"]) is None
    assert member_of("s1", ["s1"]) == "s1"


def test_healthy_quorum_has_no_next_step() -> None:
    verdict = quorum_verdict(SERVERS, _healthy())
    assert verdict.quorum and verdict.needed == 2 and not verdict.troubled
    assert verdict.next_step == ""


def test_member_lost_keeps_quorum_and_names_it() -> None:
    readings = _healthy()
    readings["s3"] = parse_probe("s3", _probe("s3", health=False, data="missing"))
    verdict = quorum_verdict(SERVERS, readings)
    assert verdict.quorum
    assert [(m.node, m.state) for m in verdict.troubled] == [("s3", "data_missing")]
    assert "repair s3" in verdict.next_step and "member remove" in verdict.next_step


def test_quorum_lost_with_two_data_dirs_gone_points_at_recover() -> None:
    readings = {
        "s1": parse_probe("s1", _probe("s1", health=False)),
        "s2": parse_probe("s2", _probe("s2", health=False, data="missing")),
        "s3": parse_probe("s3", _probe("s3", health=False, data="empty")),
    }
    verdict = quorum_verdict(SERVERS, readings)
    assert not verdict.quorum
    states = {m.node: m.state for m in verdict.members}
    assert states == {"s1": "unhealthy", "s2": "data_missing", "s3": "data_missing"}
    assert "hecate recover etcd" in verdict.next_step
    screen = render_verdict(verdict)
    assert screen[0].startswith("etcd quorum: NO") and len(screen) <= 24
    assert any("s2" in line and "data_missing" in line for line in screen)


def test_quorum_lost_with_members_down_says_bring_them_back() -> None:
    readings = {
        "s1": parse_probe("s1", _probe("s1", health=False)),
        "s2": EtcdReading("s2", reachable=False, error="no answer over SSH"),
        "s3": parse_probe("s3", _probe("s3", health=False, unit="inactive")),
    }
    verdict = quorum_verdict(SERVERS, readings)
    assert not verdict.quorum
    assert {m.node: m.state for m in verdict.troubled} == {
        "s1": "unhealthy",
        "s2": "unreachable",
        "s3": "unit_not_running",
    }
    assert "bring back" in verdict.next_step and "recover" not in verdict.next_step


def test_behind_member() -> None:
    readings = _healthy()
    readings["s2"] = parse_probe(
        "s2", _probe("s2").replace('"raftIndex": "100"', '"raftIndex": "100"')
    )
    readings["s1"] = parse_probe(
        "s1", _probe("s1").replace('"raftIndex": "100"', '"raftIndex": "5000"')
    )
    verdict = quorum_verdict(SERVERS, readings)
    assert {m.node for m in verdict.troubled if m.state == "behind"} == {"s2", "s3"}


def test_start_order_last_stopped_first() -> None:
    assert start_order(SERVERS, {"s1": 10.0, "s2": 30.0}) == ("s2", "s1", "s3")
    assert start_order(SERVERS, {}) == tuple(SERVERS)


SNAP = RecordedSnapshot("hecate-x", "s1", "/snaps/hecate-x-s1-1", 1000.0, "42", "shutdown-1")
GOOD = SnapshotFacts(exists=True, size=4096, mtime=1000.0, readable=True, token=True)
LOST = quorum_verdict(
    SERVERS,
    {n: parse_probe(n, _probe(n, health=False, data="missing")) for n in SERVERS},
)


def _plan(request: RecoverRequest, **kw: object):  # type: ignore[no-untyped-def]
    args: dict[str, object] = {
        "servers": SERVERS,
        "recorded": [SNAP],
        "verdict": LOST,
        "facts": GOOD,
        "cluster_id": "42",
        "max_age_s": 3600.0,
        "now": 2000.0,
    }
    args.update(kw)
    return plan_recovery(request, **args)  # type: ignore[arg-type]


def test_recovery_plan_from_latest() -> None:
    plan = _plan(RecoverRequest(None, None))
    assert plan.refusals == ()
    assert plan.server == "s1" and plan.snapshot == SNAP.path
    assert [s.kind for s in plan.steps] == [
        "stop_all",
        "reset",
        "move_aside",
        "start_first",
        "start_rest",
        "quorum",
    ]
    assert plan.steps[2].nodes == ("s2", "s3")
    assert plan.moved_to.startswith("/var/lib/rancher/k3s/server/db/etcd-old-")
    assert "--cluster-reset-restore-path=" + SNAP.path in plan.steps[1].text


def test_recovery_refused_with_healthy_quorum_even_forced() -> None:
    plan = _plan(
        RecoverRequest(None, None, force=True), verdict=quorum_verdict(SERVERS, _healthy())
    )
    assert any("healthy quorum" in r for r in plan.refusals)


def test_recovery_refusals() -> None:
    missing = _plan(
        RecoverRequest(None, None, force=True), facts=SnapshotFacts(exists=False, token=True)
    )
    assert any("does not exist" in r for r in missing.refusals)
    unreadable = _plan(
        RecoverRequest(None, None), facts=SnapshotFacts(exists=True, readable=False, token=True)
    )
    assert any("not readable" in r for r in unreadable.refusals)
    no_token = _plan(
        RecoverRequest(None, None), facts=GOOD.__class__(True, 10, 1000.0, True, False)
    )
    assert any("token" in r for r in no_token.refusals)
    unreachable = _plan(RecoverRequest(None, None), facts=None)
    assert any("could not be read" in r for r in unreachable.refusals)
    none = _plan(RecoverRequest(None, None), recorded=[])
    assert any("no snapshot recorded" in r for r in none.refusals)
    wrong_server = _plan(RecoverRequest(None, "s2"))
    assert any("taken on s1" in r for r in wrong_server.refusals)


def test_force_lifts_age_and_unrecorded_only() -> None:
    old = _plan(RecoverRequest(None, None), now=1000.0 + 7200)
    assert any("h old" in r and "--force" in r for r in old.refusals)
    forced = _plan(RecoverRequest(None, None, force=True), now=1000.0 + 7200)
    assert forced.refusals == () and any("h old" in w for w in forced.warnings)
    stranger = _plan(RecoverRequest("/tmp/other.db", "s1"))
    assert any("not recorded by Hecate" in r for r in stranger.refusals)
    assert _plan(RecoverRequest("/tmp/other.db", "s1", force=True)).refusals == ()


def test_snapshot_of_another_cluster_is_refused() -> None:
    plan = _plan(RecoverRequest(None, None), cluster_id="99")
    assert any("another cluster" in r for r in plan.refusals)


def test_recorded_snapshots_only_verified_ones() -> None:
    facts: list[dict[str, Any]] = [
        {
            "etcd_snapshot": {
                "name": "a",
                "node": "s1",
                "path": "/a",
                "taken_at": 1,
                "verified": True,
            }
        },
        {
            "etcd_snapshot": {
                "name": "b",
                "node": "s1",
                "path": "/b",
                "taken_at": 2,
                "verified": False,
            }
        },
        {"etcd_snapshot": "garbage"},
        # runs.json is the operator's file too: a number float() cannot hold is skipped, not a
        # crash of `hecate status` or `recover etcd`
        {"etcd_snapshot": {"node": "s1", "path": "/c", "taken_at": 10**400, "verified": True}},
        {},
    ]
    assert [s.path for s in recorded_snapshots(facts)] == ["/a"]


def test_interrupted_record_describes_and_resumes() -> None:
    plan = _plan(RecoverRequest(None, None))
    record = RecoveryRecord(plan.to_json(), started_at=1.0, done=["stop_all", "reset"])
    record.outcome, record.detail = "stopped", "move_aside: s3: unreachable"
    again = RecoveryRecord.from_json(json.loads(json.dumps(record.to_json())))
    assert again.unfinished
    text = again.describe()
    assert "after stop_all, reset" in text and "left: move_aside" in text
    assert plan.moved_to in text
    assert resume_plan(again).steps == plan.steps


def test_parse_probe_reads_etcdctl_json_too() -> None:
    """Where a server has etcdctl and no curl (the twin; some k3s nodes)."""
    stdout = "\n".join(
        [
            "unit=active",
            "data=present",
            'health=[{"endpoint":"https://127.0.0.1:2379","health":true,"took":"1ms"}]',
            'member_list={"header":{"cluster_id":42},"members":[{"ID":1,"name":"s1"}]}',
            'status=[{"Endpoint":"x","Status":{"header":{"cluster_id":42},"raftIndex":77}}]',
        ]
    )
    reading = parse_probe("s1", stdout)
    assert reading.health is True and reading.raft_index == 77
    assert reading.cluster_id == "42" and reading.members == ("s1",)
    down = parse_probe("s1", 'health=[{"endpoint":"x","health":false,"error":"timeout"}]')
    assert down.health is False


def test_doctor_warns_on_even_servers_and_old_snapshot() -> None:

    def config(servers: list[str]):  # type: ignore[no-untyped-def]
        return parse_config({"nodes": {"servers": servers}, "ups": {"target": "u@localhost"}})

    snap = {"name": "h", "node": "s1", "path": "/p", "taken_at": 0.0, "verified": True}
    run = RunRecord("r", "shutdown", 0, 1, Outcome.SUCCESS, facts={"etcd_snapshot": snap})
    even = {f.check: f for f in etcd_findings(config(["s1", "s2"]), [run], 60.0)}
    assert even["etcd servers"].status == "warn" and even["etcd snapshot"].status == "ok"
    old = {f.check: f for f in etcd_findings(config(SERVERS), [run], 8 * 86400.0)}
    assert old["etcd servers"].status == "ok"
    assert old["etcd snapshot"].status == "warn" and "days old" in old["etcd snapshot"].detail
    none = {f.check: f for f in etcd_findings(config(SERVERS), [], 0.0)}
    assert none["etcd snapshot"].status == "warn"
    sqlite = parse_config(
        {
            "nodes": {"servers": ["s1"]},
            "ups": {"target": "u@localhost"},
            "cluster": {"datastore": "sqlite"},
        }
    )
    assert etcd_findings(sqlite, [run], 0.0) == []
