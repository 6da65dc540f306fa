"""Load shedding's restore and drain, after review (issue 28): the startup's shed_restore stage
never fails a startup, an agent is uncordoned only once it is back, an agent Hecate cannot
power on is not hammered, and the shed's drain evicts (PodDisruptionBudgets and grace
honoured), never deletes. Real files, in-memory cluster and playbooks."""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hecate.adapters.ansible.events import EventCallback
from hecate.adapters.ansible.protocol import PlaybookRequest, PlaybookResult
from hecate.adapters.kube.types import PodRef
from hecate.adapters.statedir.shed_file import SHED_FILE, load_shed
from hecate.config.model import HecateConfig
from hecate.core.intent import IntentState
from hecate.core.plans import StartupOptions
from hecate.core.power import NONE_ON, PowerReading, PowerResult
from hecate.core.run_history import Outcome
from hecate.core.shed import ShedRecord
from hecate.errors import AnsibleRunError, KubeError
from hecate.flows.context import FlowAbortedError, FlowContext
from hecate.flows.shed import shed
from hecate.flows.shed_restore import restore
from hecate.flows.startup import run_startup
from tests.fakes import FakeAnsible, FakeKube
from tests.unit.flows.test_flows import _config, _ctx
from tests.unit.flows.test_shed_flow import SEL, _cluster, _replicas, load_or_fail


def _cfg(tmp_path: Path, *, selector: str | None = SEL, **extra: dict[str, object]) -> HecateConfig:
    """power.shed: the selector and agent a2; `extra`: sections merged over test_flows'."""
    startup = {
        "flux_ready_timeout_seconds": 2,
        "nodes_ready_timeout_seconds": 2,
        "api_timeout_seconds": 2,
        **extra.pop("startup", {}),
    }
    shed_cfg = {"label_selector": selector, "agents": ["a2"], "after_seconds": 60}
    return _config(tmp_path, power={"shed": shed_cfg}, startup=startup, **extra)


def _timed(ctx: FlowContext) -> FlowContext:
    """The context on a clock of its own that a sleep moves on: waits take no real time."""
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += max(seconds, 0.001)

    return dataclasses.replace(ctx, monotonic=lambda: now[0], sleep=sleep)


@pytest.fixture
def listener() -> Iterator[str]:
    """A real TCP port on 127.0.0.1 that accepts: the target of a probe that passes."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"127.0.0.1:{sock.getsockname()[1]}"


@dataclasses.dataclass
class ShedStartFails(FakeAnsible):
    """The shed restore's own start_agents (a2 alone) cannot run at all."""

    def run(
        self,
        request: PlaybookRequest,
        *,
        on_event: EventCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> PlaybookResult:
        if request.playbook == "start_agents" and tuple(request.limit or ()) == ("a2",):
            raise AnsibleRunError("ansible-playbook could not start: exec format error")
        return super().run(request, on_event=on_event, cancel=cancel)


def test_an_adapter_error_in_shed_restore_never_fails_the_startup(
    tmp_path: Path, listener: str
) -> None:
    """Review 1: an AnsibleRunError in the shed_restore stage failed the whole startup (the
    intent left at startup_in_progress, the probes never run) although the cluster was up."""
    config = _cfg(tmp_path, startup={"probes": [{"name": "web", "target": listener}]})
    kube, ansible = _cluster(), ShedStartFails()
    ctx = _ctx(config, kube, ansible)
    shed(ctx, "runtime low")
    report = run_startup(ctx, StartupOptions(reason="power back"))
    stages = {s.name: s for s in report.stages}
    assert report.outcome is Outcome.PARTIAL, report.to_json()
    assert stages["shed_restore"].status.value in ("failed", "partial")
    assert "exec format error" in stages["shed_restore"].detail
    assert stages["probes"].status.value == "ok"  # the stages after it still ran
    assert ctx.store.read_intent().state is IntentState.NORMAL
    left = load_shed(config.state_dir)
    assert isinstance(left, ShedRecord) and left.agents == ("a2",)  # kept for the next try
    assert _replicas(kube)["web"] == 3  # the rest was restored


def test_an_agent_that_did_not_start_is_not_uncordoned(tmp_path: Path) -> None:
    """Review 2: a restore after a failed start_agents uncordoned the agent and struck it from
    the record as if it were back."""
    config, kube, ansible = _cfg(tmp_path), _cluster(), FakeAnsible()
    ctx = _ctx(config, kube, ansible)
    record = load_or_fail(shed(ctx, "r").record)
    assert record.agents == ("a2",) and "a2" in kube.cordoned and not kube.nodes_up["a2"]
    ansible.unreachable = {"a2"}  # its start fails
    result = restore(ctx, record)
    assert "a2" in kube.cordoned
    left = load_or_fail(result.record)
    assert left.agents == ("a2",) and left.cordoned == ("a2",)
    assert any("a2" in f and "not started" in f for f in result.failed)
    assert left.workloads == () and _replicas(kube)["web"] == 3  # the rest restored
    ansible.unreachable = set()  # the next try brings it back
    assert restore(ctx, left).record is None
    assert kube.cordoned == set()


class NeverReady(FakeKube):
    def node_action(self, playbook: str, host: str) -> None:
        if playbook != "start_agents":
            super().node_action(playbook, host)


def test_an_agent_that_started_but_is_not_ready_stays_cordoned(tmp_path: Path) -> None:
    config, base = _cfg(tmp_path), _cluster()
    kube = NeverReady(nodes_up=base.nodes_up, flux=base.flux, shed=base.shed)
    ctx = _timed(_ctx(config, kube, FakeAnsible()))
    record = load_or_fail(shed(ctx, "r").record)
    result = restore(ctx, record)
    assert "a2" in kube.cordoned
    left = load_or_fail(result.record)
    assert left.agents == ("a2",) and left.cordoned == ("a2",)
    assert any("a2" in f and "not Ready" in f for f in result.failed)


@dataclasses.dataclass
class Switchless:
    """A power port whose nodes have method none: `on` is refused, as the real NoneDriver."""

    calls: list[str] = dataclasses.field(default_factory=list)

    def status(self, node: str) -> PowerReading:
        return PowerReading(node, "none", "unknown", "ssh: refused")

    def on(self, node: str) -> PowerResult:
        self.calls.append(node)
        return PowerResult(node, "on", False, NONE_ON)

    def off(self, node: str, *, hard: bool) -> PowerResult:
        return PowerResult(node, "off", False, "no BMC")


def _with_power(ctx: FlowContext, power: Switchless, kube: FakeKube) -> FlowContext:
    def answers(node: str) -> tuple[bool, str]:
        return kube.nodes_up.get(node, False), "ssh: connection refused"

    return dataclasses.replace(ctx, power=power, node_answers=answers)


def test_an_agent_hecate_cannot_power_on_is_not_tried(tmp_path: Path) -> None:
    """Review 3: an agent with no power method (power.nodes) whose SSH is silent got a
    power-on (refused), SSH polls until power_on_timeout and a start, at every retry."""
    config = _cfg(tmp_path, startup={"power_on_timeout_seconds": 1})
    kube, ansible, power = _cluster(), FakeAnsible(), Switchless()
    ctx = _with_power(_ctx(config, kube, ansible), power, kube)
    record = load_or_fail(shed(ctx, "r").record)
    started = time.monotonic()
    result = restore(ctx, record)
    assert time.monotonic() - started < 0.9  # no wait for a power-on that cannot come
    assert power.calls == []
    assert ("start_agents", ("a2",)) not in ansible.playbooks
    left = load_or_fail(result.record)
    assert left.agents == ("a2",) and "a2" in kube.cordoned
    assert any("a2" in f and "by hand" in f for f in result.failed)
    kube.nodes_up["a2"] = True  # an operator powered it on: the next try starts it
    assert restore(ctx, left).record is None
    assert ("start_agents", ("a2",)) in ansible.playbooks and kube.cordoned == set()


class Pods(FakeKube):
    """Pods on a2: `pdb` refuses evictions of web-0 that many times (429), `ds` is a
    DaemonSet's pod (it stays); every delete is recorded (none is expected)."""

    pods: dict[str, list[PodRef]]
    refusals: int
    deleted: list[str]

    def pods_on_node(self, node: str) -> list[PodRef]:
        return list(self.pods.get(node, []))

    def evict(self, pod: PodRef) -> None:
        if pod.stays:
            return  # its controller puts it back at once
        if self.refusals > 0:
            self.refusals -= 1
            raise KubeError("evict: 429 Cannot evict pod as it would violate the pod's budget")
        self.pods = {n: [p for p in ps if p != pod] for n, ps in self.pods.items()}

    def delete_pod(self, pod: PodRef, *, grace_s: int = 0) -> None:
        self.deleted.append(f"{pod.name} grace={grace_s}")


def _pods(refusals: int) -> Pods:
    base = _cluster()
    kube = Pods(nodes_up=base.nodes_up, flux=base.flux, shed=base.shed)
    kube.pods = {"a2": [PodRef("apps", "web-0"), PodRef("kube-system", "svclb-a2", stays=True)]}
    kube.refusals, kube.deleted = refusals, []
    return kube


def _drain_config(tmp_path: Path, bound: float) -> HecateConfig:
    return _cfg(tmp_path, selector=None, shutdown={"drain_timeout_seconds": bound})


def test_the_shed_drain_evicts_through_a_pdb_and_never_deletes(tmp_path: Path) -> None:
    """Review 6: the shed drained with the shutdown's escalation (delete, then delete with
    grace 0), ignoring PodDisruptionBudgets although nothing is urgent on battery."""
    config, kube, ansible = _drain_config(tmp_path, 20), _pods(refusals=2), FakeAnsible()
    ctx = _timed(_ctx(config, kube, ansible))
    result = shed(ctx, "r")
    assert kube.deleted == []
    assert kube.pods["a2"] == [PodRef("kube-system", "svclb-a2", stays=True)]  # left: it stays
    assert load_or_fail(result.record).agents == ("a2",)
    assert ("poweroff", ("a2",)) in ansible.playbooks


def test_an_agent_a_pdb_keeps_busy_is_left_on_and_cordoned(tmp_path: Path) -> None:
    config, kube, ansible = _drain_config(tmp_path, 60), _pods(refusals=10**6), FakeAnsible()
    ctx = _timed(_ctx(config, kube, ansible))
    result = shed(ctx, "r")
    assert kube.deleted == []
    assert [p.name for p in kube.pods["a2"]] == ["web-0", "svclb-a2"]
    assert ansible.playbooks == []  # neither stopped nor powered off
    record = load_or_fail(result.record)
    assert record.agents == () and record.cordoned == ("a2",) and "a2" in kube.cordoned
    assert any("a2" in f and "web-0" in f and "left on" in f for f in result.failed)
    assert restore(ctx, record).record is None  # the restore lifts the cordon
    assert kube.cordoned == set() and not (config.state_dir / SHED_FILE).exists()


def test_a_restore_stops_between_its_phases_when_a_flow_starts(tmp_path: Path) -> None:
    """Review 5: the daemon's restore asks its guard (a flow running here or in another
    process, an intent not normal) before each phase; a flow that starts meanwhile stops it
    there, the record on disk still naming everything."""
    config, kube, ansible = _cfg(tmp_path), _cluster(), FakeAnsible()
    ctx = _ctx(config, kube, ansible)
    record = load_or_fail(shed(ctx, "r").record)
    answers = iter([None, "another flow runs (pid 4242 holds hecate.lock)"])
    with pytest.raises(FlowAbortedError, match="pid 4242"):
        restore(ctx, record, guard=lambda: next(answers))
    assert _replicas(kube)["web"] == 0  # the workloads' phase never ran
    assert load_shed(config.state_dir) == record
    assert restore(ctx, record, guard=lambda: None).record is None
