"""The startup's ansible-playbook processes (issue 29 item 1): start_servers is one run, the
servers' etcd data read before the start and etcd_quorum's first read after it (the plan's
`reads_ahead`), so a startup with embedded etcd runs three processes (time_sync, start_servers,
start_agents), not five. What stays: every decision is Python's (the time_sync gate before
any start, the quorum gate after it, the API before the agents), each stage is judged on its
own nodes, one server's problem never keeps the others from their start, and the dry run says
what runs."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from hecate.adapters.ansible.events import EventCallback
from hecate.adapters.ansible.protocol import PlaybookRequest, PlaybookResult
from hecate.adapters.statedir.store import StateStore
from hecate.cli.main import app
from hecate.cli.plan_text import plan_json, plan_lines
from hecate.config.model import HecateConfig, parse_config
from hecate.core.plan_runs import reads_ahead
from hecate.core.plans import StageStatus, StartupOptions, startup_plan
from hecate.core.readings import UpsReading, parse_status
from hecate.core.run_history import Outcome
from hecate.flows.context import FlowContext
from hecate.flows.report import FlowReport
from hecate.flows.startup import run_startup
from tests.fakes import FakeAnsible, FakeKube

SERVERS = ["s1", "s2", "s3"]
AGENTS = ["a1", "a2"]


@dataclass
class Counting(FakeAnsible):
    """FakeAnsible that counts ansible-playbook processes (a run alone, or a whole batch) and
    can turn etcd's quorum on from the n-th etcd probe (1: the first)."""

    processes: int = 0
    probes: int = 0
    quorum_from_probe: int = 0
    _in_batch: bool = False

    def run(
        self,
        request: PlaybookRequest,
        *,
        on_event: EventCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> PlaybookResult:
        if not self._in_batch:
            self.processes += 1
        if request.playbook == "etcd" and request.extravars.get("etcd_action") == "probe":
            self.probes += 1
            if self.quorum_from_probe:
                self.etcd_quorum = self.probes >= self.quorum_from_probe
        return super().run(request, on_event=on_event, cancel=cancel)

    def run_batch(
        self,
        requests: Sequence[PlaybookRequest],
        *,
        on_event: EventCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> list[PlaybookResult]:
        self.processes += 1
        self._in_batch = True
        try:
            return super().run_batch(requests, on_event=on_event, cancel=cancel)
        finally:
            self._in_batch = False


def _data(tmp_path: Path, **startup: object) -> dict[str, object]:
    return {
        "state_dir": str(tmp_path / "state"),
        "nodes": {"servers": SERVERS, "agents": AGENTS},
        "ups": {"target": "ups@localhost"},
        "startup": {
            "flux_ready_timeout_seconds": 1,
            "nodes_ready_timeout_seconds": 1,
            "api_timeout_seconds": 1,
            "etcd_quorum_timeout_seconds": 20,
            "time_sync_check": True,
            **startup,
        },
    }


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def sleep(self, s: float) -> None:
        self.t += max(s, 0.5)


def _ctx(config: HecateConfig, ansible: FakeAnsible) -> FlowContext:
    kube = FakeKube(nodes_up=dict.fromkeys([*SERVERS, *AGENTS], True))
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


def _stage(report: FlowReport, name: str) -> dict[str, object]:
    found: dict[str, object] = next(s.to_json() for s in report.stages if s.name == name)
    return found


def _request_list(ansible: FakeAnsible) -> list[tuple[str, str, tuple[str, ...]]]:
    return [
        (r.playbook, str(r.extravars.get("etcd_action", "")), tuple(r.limit or ()))
        for r in ansible.requests
    ]


def test_a_startup_with_etcd_runs_three_ansible_playbooks(tmp_path: Path) -> None:
    """Five on main: time_sync, the etcd data read, start_servers, the quorum read,
    start_agents. Now the three a decision separates: the clock gate decides before any k3s
    starts, the API before the agents."""
    ansible = Counting()
    report = run_startup(_ctx(parse_config(_data(tmp_path)), ansible), StartupOptions())
    assert report.outcome is Outcome.SUCCESS, report.to_json()
    assert ansible.processes == 3
    servers = tuple(SERVERS)
    assert _request_list(ansible) == [
        ("time_sync", "", (*servers, *AGENTS)),
        # start_servers' one run: the data read while k3s is stopped, the start, the quorum read
        ("etcd", "probe", servers),
        ("start_servers", "", servers),
        ("etcd", "probe", servers),
        ("start_agents", "", tuple(AGENTS)),
    ]
    assert ansible.batches == [["etcd", "start_servers", "etcd"]]
    # every stage reported as before, each on its own nodes
    assert [s.name for s in report.stages][:6] == [
        "power_on",
        "time_sync",
        "start_servers",
        "etcd_quorum",
        "wait_api",
        "start_agents",
    ]
    assert _stage(report, "start_servers")["nodes"] == dict.fromkeys(SERVERS, "ok")
    assert _stage(report, "etcd_quorum")["nodes"] == dict.fromkeys(SERVERS, "ok")
    assert _stage(report, "etcd_quorum")["status"] == "ok"
    assert report.facts["etcd_quorum"]["quorum"] is True


def test_without_time_sync_the_startup_runs_two(tmp_path: Path) -> None:
    ansible = Counting()
    config = parse_config(_data(tmp_path, time_sync_check=False))
    report = run_startup(_ctx(config, ansible), StartupOptions())
    assert report.outcome is Outcome.SUCCESS, report.to_json()
    assert ansible.processes == 2


def test_etcd_quorum_judges_the_carried_read_once_then_reads_on_its_own(tmp_path: Path) -> None:
    """No quorum in the read start_servers' run took (the servers still electing): the gate
    decides to wait, and each later read is a run of its own, as before."""
    ansible = Counting(quorum_from_probe=4)  # probes 1-2 in the batch, 3 alone: none; 4: quorum
    report = run_startup(_ctx(parse_config(_data(tmp_path)), ansible), StartupOptions())
    assert report.outcome is Outcome.SUCCESS, report.to_json()
    stage = _stage(report, "etcd_quorum")
    assert stage["status"] == "ok" and stage["nodes"] == dict.fromkeys(SERVERS, "ok")
    probes_alone = [r for r in _request_list(ansible) if r[:2] == ("etcd", "probe")][2:]
    assert probes_alone == [("etcd", "probe", tuple(SERVERS))] * 2
    assert ansible.processes == 5  # time_sync, start_servers, two reads alone, start_agents


def test_the_gate_still_stops_without_quorum(tmp_path: Path) -> None:
    ansible = Counting(etcd_data_lost={"s2", "s3"}, etcd_quorum=False)
    config = parse_config(_data(tmp_path, etcd_quorum_timeout_seconds=2))
    report = run_startup(_ctx(config, ansible), StartupOptions())
    assert report.outcome is Outcome.FAILED
    assert report.stages[-1].name == "etcd_quorum"
    assert report.stages[-1].status is StageStatus.FAILED
    assert "s2 data_missing" in report.message
    # the data read before the start named them: still judged before k3s could hide it
    assert "etcd data missing before the start: s2, s3" in str(
        _stage(report, "start_servers")["detail"]
    )


def test_an_unreachable_server_is_judged_per_node_and_the_others_start(tmp_path: Path) -> None:
    ansible = Counting(unreachable={"s2"})
    config = parse_config(_data(tmp_path, time_sync_unsynced="start_anyway"))
    report = run_startup(_ctx(config, ansible), StartupOptions())
    start = _stage(report, "start_servers")
    assert start["status"] == "partial"
    assert start["nodes"] == {"s1": "ok", "s2": "unreachable", "s3": "ok"}
    assert "s2" in json.dumps(start.get("causes", {}))  # ansible's own reason, per node
    quorum = _stage(report, "etcd_quorum")
    assert quorum["status"] == "partial", quorum
    assert quorum["nodes"] == {"s1": "ok", "s2": "unreachable", "s3": "ok"}
    assert _stage(report, "start_agents")["nodes"] == dict.fromkeys(AGENTS, "ok")


class CancelledAfterTheStart(Counting):
    """The operator cancels while start_servers' run takes the quorum read: the start stands,
    the read is cut short (as the port reports a stage it stopped)."""

    ctx: FlowContext | None = None

    def run_batch(
        self,
        requests: Sequence[PlaybookRequest],
        *,
        on_event: EventCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> list[PlaybookResult]:
        results = super().run_batch(requests[:2], on_event=on_event, cancel=cancel)
        assert cancel is not None
        cancel.set()
        last = requests[2]
        cut = PlaybookResult(last.playbook, "canceled", 254, {}, 0.0, [], None, detail="canceled")
        return [*results, cut]


def test_a_cancel_during_the_carried_read_keeps_the_start_and_stops_before_etcd_quorum(
    tmp_path: Path,
) -> None:
    ansible = CancelledAfterTheStart()
    report = run_startup(_ctx(parse_config(_data(tmp_path)), ansible), StartupOptions())
    assert report.outcome is Outcome.ABORTED
    assert report.stages[-1].name == "start_servers"
    assert report.stages[-1].status is StageStatus.OK
    assert "etcd_quorum" in report.message


def test_a_partial_startup_starts_its_servers_and_reads_every_member(tmp_path: Path) -> None:
    """Issue 28: only s2 lost its feed; quorum is judged over all the members, as the gate
    reads them."""
    ansible = Counting()
    config = parse_config(_data(tmp_path))
    report = run_startup(_ctx(config, ansible), StartupOptions(nodes=("s2", "a1")))
    assert report.outcome is Outcome.SUCCESS, report.to_json()
    batch = [r for r in _request_list(ansible) if r[0] in ("etcd", "start_servers")]
    assert batch == [
        ("etcd", "probe", ("s2",)),
        ("start_servers", "", ("s2",)),
        ("etcd", "probe", tuple(SERVERS)),
    ]
    assert _stage(report, "start_servers")["nodes"] == {"s2": "ok"}


# --------------------------------------------------------------------------- the plan


@pytest.mark.parametrize(
    ("datastore", "nodes", "carried"),
    [
        ("auto", None, True),
        ("etcd", None, True),
        ("sqlite", None, False),
        ("external", None, False),
        ("etcd", ("a1",), False),  # a partial startup without servers: nothing to start
        ("etcd", ("s1", "a1"), True),
    ],
)
def test_the_plan_says_which_read_start_servers_carries(
    tmp_path: Path, datastore: str, nodes: tuple[str, ...] | None, carried: bool
) -> None:
    data = _data(tmp_path)
    data["cluster"] = {"datastore": datastore}
    plan = startup_plan(parse_config(data), StartupOptions(nodes=nodes))
    names = plan.stage_names
    expected = {"start_servers": "etcd_quorum"} if carried else {}
    assert reads_ahead(plan.stages) == expected
    for spec in plan.stages:  # a read carried ahead is always the very next stage's
        if spec.reads_ahead is not None and spec.skip is None:
            assert names[names.index(spec.name) + 1] == spec.reads_ahead
    lines = plan_lines("startup plan:", plan)
    said = [line for line in lines if "also takes step" in line]
    if carried:
        number = [s.name for s in plan.steps].index("etcd_quorum") + 1
        assert said == [
            f"      (its ansible-playbook also takes step {number}'s first read: "
            "etcd_quorum judges it)"
        ]
    else:
        assert said == []
    entries = {e["name"]: e["reads_ahead"] for e in plan_json(plan)}
    assert entries.get("start_servers") == ("etcd_quorum" if carried else None)


def test_the_dry_run_prints_what_the_run_does(tmp_path: Path) -> None:
    """`hecate startup --json --no-probe`: the printed plan names the carried read; the run
    of the same config carries exactly that one."""
    data = _data(tmp_path)
    path = tmp_path / "hecate.yaml"
    path.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(app, ["startup", "--config", str(path), "--json", "--no-probe"])
    assert result.exit_code in (0, 3), result.output
    printed = {e["name"]: e["reads_ahead"] for e in json.loads(result.output)["plan"]}
    assert {k: v for k, v in printed.items() if v} == {"start_servers": "etcd_quorum"}
    ansible = Counting()
    run_startup(_ctx(parse_config(data), ansible), StartupOptions())
    [batch] = ansible.batches
    assert batch[1:] == ["start_servers", "etcd"]  # the start, then etcd_quorum's read
