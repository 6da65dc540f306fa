"""Startup gates against in-memory ports: time sync, storage, probes, soak; the plan walks the
same stages as the run; the reports and the progress that `hecate status` shows.

Probes hit real local servers (http.server, a closed port): no mocks of the network.
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hecate.adapters.kube.types import Readiness, VolumeAttachmentInfo
from hecate.adapters.probes import probe_once, run_probe
from hecate.adapters.statedir.store import StateStore
from hecate.cli.plan_text import PLAN_ONLY_STEPS, startup_plan
from hecate.cli.status_show import report_summary, startup_progress
from hecate.config.model import HecateConfig, parse_config
from hecate.config.startup import StartupProbe
from hecate.core.intent import IntentState
from hecate.core.plans import ShutdownOptions, StartupOptions
from hecate.core.readings import UpsReading, parse_status
from hecate.core.run_history import Outcome
from hecate.flows.context import FlowContext
from hecate.flows.ledger import load_ledger
from hecate.flows.report import load_progress, load_report
from hecate.flows.shutdown import run_shutdown
from hecate.flows.startup import run_startup
from hecate.flows.startup_gates import (
    ClockReading,
    clock_verdict,
    health_problems,
    parse_epoch,
    parse_ntp,
    storage_pending,
)
from tests.fakes import FakeAnsible, FakeKube

# --------------------------------------------------------------------------- helpers


def _config(tmp_path: Path, **startup: object) -> HecateConfig:
    base: dict[str, object] = {
        "flux_ready_timeout_seconds": 1,
        "nodes_ready_timeout_seconds": 1,
        "api_timeout_seconds": 1,
        "time_sync_timeout_seconds": 0.3,
        "storage_timeout_seconds": 0.3,
    }
    base.update(startup)
    return parse_config(
        {
            "state_dir": str(tmp_path / "state"),
            "nodes": {"servers": ["s1"], "agents": ["a1"]},
            "ups": {"target": "pyrphoros@localhost"},
            "startup": base,
        }
    )


def _cluster() -> FakeKube:
    kube = FakeKube(nodes_up={"s1": True, "a1": True})
    kube.add_flux("Kustomization", "flux-system", "apps")
    kube.add_flux("GitRepository", "flux-system", "flux-system")
    return kube


def _ctx(config: HecateConfig, kube: FakeKube, ansible: FakeAnsible) -> FlowContext:
    ansible.cluster = kube
    return FlowContext(
        config=config,
        ansible=ansible,
        kube=kube,
        store=StateStore(config.state_dir),
        read_ups=lambda: UpsReading(parse_status("OL"), 1800, 100),
        sleep=lambda _: None,
    )


def _shutdown_first(config: HecateConfig, kube: FakeKube) -> None:
    """A shutdown so that startup has something to resume (suspended Flux, cordons)."""
    run_shutdown(_ctx(config, kube, FakeAnsible()), ShutdownOptions(mode="cluster-only"))


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code = 200 if self.path == "/ok" else 503
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        del format, args


@pytest.fixture
def web() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --------------------------------------------------------------------------- time sync: pure


@given(
    true_time=st.floats(1e9, 2e9),
    offset=st.floats(-1e5, 1e5),
    before=st.floats(0, 5),
    after=st.floats(0, 5),
)
def test_measured_skew_is_never_larger_than_the_true_one(
    true_time: float, offset: float, before: float, after: float
) -> None:
    """The node read its clock at some real instant inside the controller's window: the skew
    measured against the window never exceeds the real offset (it can only under-estimate by
    the window's width)."""
    reading = ClockReading("n", True, true_time + offset, (true_time - before, true_time + after))
    skew = reading.skew_s
    assert skew is not None
    assert abs(skew) <= abs(offset) + 1e-6
    assert abs(skew) >= abs(offset) - (before + after) - 1e-6


@pytest.mark.parametrize(
    ("reading", "verdict"),
    [
        (ClockReading("n", True, 100.0, (99.0, 101.0)), "ok"),  # inside the window
        (ClockReading("n", True, 106.5, (99.0, 101.0)), "skewed"),  # 5.5 s ahead > 5
        (ClockReading("n", True, 105.0, (99.0, 101.0)), "ok"),  # exactly 4 s ahead
        (ClockReading("n", True, 90.0, (99.0, 101.0)), "skewed"),  # 9 s behind
        (ClockReading("n", False, 100.0, (99.0, 101.0)), "unsynchronized"),  # NTP says no
        (ClockReading("n", None, 100.0, (99.0, 101.0)), "no_reading"),  # timedatectl unknown
        (ClockReading("n", True, None, None), "no_reading"),  # the clock was not read
    ],
)
def test_clock_verdicts(reading: ClockReading, verdict: str) -> None:
    assert clock_verdict(reading, 5.0) == verdict


@pytest.mark.parametrize(
    ("text", "expected"),
    [("yes\n", True), ("no", False), (" YES ", True), ("", None), ("unknown", None)],
)
def test_parse_ntp(text: str, expected: bool | None) -> None:
    assert parse_ntp(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1764584400.123456789\n", 1764584400.123456789), ("", None), ("x", None), ("0", None)],
)
def test_parse_epoch(text: str, expected: float | None) -> None:
    assert parse_epoch(text) == expected


# --------------------------------------------------------------------------- time sync: flow


def test_a_skewed_node_stops_startup_before_k3s_and_says_which(tmp_path: Path) -> None:
    config = _config(tmp_path)
    kube = _cluster()
    _shutdown_first(config, kube)
    ansible = FakeAnsible(clock_offsets={"a1": 3600.0})
    report = run_startup(_ctx(config, kube, ansible), StartupOptions())
    assert report.outcome is Outcome.FAILED
    assert "a1: clock 3600" in report.message and "ahead of this host" in report.message
    assert [p for p, _ in ansible.playbooks if p != "time_sync"] == []  # k3s never started
    stage = report.stages[1]  # after power_on
    assert (stage.name, stage.status) == ("time_sync", "failed")
    assert stage.nodes == {"s1": "ok", "a1": "skewed"}
    store = StateStore(config.state_dir)
    assert store.read_intent().state is IntentState.STARTUP_IN_PROGRESS
    progress = load_progress(config.state_dir)
    assert progress is not None and progress["stage"] == "time_sync"


def test_the_gate_waits_and_retries_only_the_nodes_that_are_not_ready(tmp_path: Path) -> None:
    config = _config(tmp_path, time_sync_timeout_seconds=0.5)
    ansible = FakeAnsible(unsynced={"a1"})
    run_startup(_ctx(config, _cluster(), ansible), StartupOptions())
    limits = [limit for p, limit in ansible.playbooks if p == "time_sync"]
    assert limits[0] == ("s1", "a1")
    assert len(limits) >= 2 and all(limit == ("a1",) for limit in limits[1:])


def test_start_anyway_names_the_nodes_and_goes_on(tmp_path: Path) -> None:
    config = _config(tmp_path, time_sync_unsynced="start_anyway")
    ansible = FakeAnsible(unsynced={"s1"})
    report = run_startup(_ctx(config, _cluster(), ansible), StartupOptions())
    stage = report.stages[1]  # after power_on
    assert stage.status == "warning"
    assert "s1: clock not synchronised" in stage.detail
    assert ("start_servers", ("s1",)) in ansible.playbooks
    assert report.outcome is Outcome.SUCCESS  # a warning: the operator accepted it


def test_unreachable_node_is_named_in_the_time_sync_gate(tmp_path: Path) -> None:
    config = _config(tmp_path)
    ansible = FakeAnsible(unreachable={"a1"})
    report = run_startup(_ctx(config, _cluster(), ansible), StartupOptions())
    assert report.stages[1].nodes["a1"] == "unreachable"
    assert "a1: unreachable over SSH" in report.message


def test_time_sync_check_off_skips_the_gate(tmp_path: Path) -> None:
    config = _config(tmp_path, time_sync_check=False)
    ansible = FakeAnsible(clock_offsets={"a1": 3600.0})
    report = run_startup(_ctx(config, _cluster(), ansible), StartupOptions())
    assert "time_sync" not in [s.name for s in report.stages]
    assert report.outcome is Outcome.SUCCESS


# --------------------------------------------------------------------------- storage


def test_storage_pending_reasons() -> None:
    items: list[Readiness | str] = [
        Readiness("daemonset", "longhorn-system", "longhorn-manager", 3, 3),
        Readiness("deployment", "longhorn-system", "csi-attacher", 0, 0),
        Readiness("deployment", "longhorn-system", "csi-provisioner", 2, 1),
        "daemonset/x/y: not found",
    ]
    attachments = [
        VolumeAttachmentInfo("va-1", "a1", True),
        VolumeAttachmentInfo("va-2", "a1", False),
        VolumeAttachmentInfo("va-3", "a2", False, "rpc error: volume busy"),
    ]
    assert storage_pending(items, attachments) == [
        "deployment/longhorn-system/csi-attacher: 0 pods wanted (scaled to 0?)",
        "deployment/longhorn-system/csi-provisioner: 1/2 Ready",
        "daemonset/x/y: not found",
        "VolumeAttachment va-2 on a1: not attached yet",
        "VolumeAttachment va-3 on a2: rpc error: volume busy",
    ]
    assert storage_pending([items[0]], [attachments[0]]) == []


def test_storage_scaled_to_zero_holds_flux_suspended(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        storage_workloads=[
            {"kind": "daemonset", "namespace": "longhorn-system", "name": "longhorn-manager"},
            {"kind": "deployment", "namespace": "longhorn-system", "name": "csi-attacher"},
        ],
    )
    kube = _cluster()
    kube.storage = {
        "daemonset/longhorn-system/longhorn-manager": (2, 2),
        "deployment/longhorn-system/csi-attacher": (0, 0),
    }
    _shutdown_first(config, kube)
    report = run_startup(_ctx(config, kube, FakeAnsible()), StartupOptions())
    assert report.outcome is Outcome.FAILED
    assert "csi-attacher: 0 pods wanted (scaled to 0?)" in report.message
    assert "Flux stays suspended" in report.message
    storage = next(s for s in report.stages if s.name == "storage")
    assert storage.nodes == {
        "daemonset/longhorn-system/longhorn-manager": "ok",
        "deployment/longhorn-system/csi-attacher": "not_ready",
    }
    assert "flux_resume" not in [s.name for s in report.stages]
    assert load_ledger(config.state_dir).suspended  # still suspended, for the next startup
    # the storage is fixed: the next startup passes the gate and resumes Flux
    kube.storage["deployment/longhorn-system/csi-attacher"] = (1, 1)
    again = run_startup(_ctx(config, kube, FakeAnsible()), StartupOptions())
    assert again.outcome is Outcome.SUCCESS, again.to_json()
    assert not load_ledger(config.state_dir).suspended


def test_stuck_volume_attachment_holds_the_gate(tmp_path: Path) -> None:
    config = _config(tmp_path, storage_check_volume_attachments=True)
    kube = _cluster()
    kube.attachments = [VolumeAttachmentInfo("csi-123", "a1", False, "timed out waiting")]
    report = run_startup(_ctx(config, kube, FakeAnsible()), StartupOptions())
    assert report.outcome is Outcome.FAILED
    assert "VolumeAttachment csi-123 on a1: timed out waiting" in report.message


# --------------------------------------------------------------------------- probes


def test_probes_http_and_tcp(web: str) -> None:
    ok = StartupProbe(target=f"{web}/ok")
    assert probe_once(ok) == (True, f"GET {web}/ok: 200")
    bad = StartupProbe(target=f"{web}/down", retries=2, retry_interval_seconds=0)
    result = run_probe(bad, sleep=lambda _: None)
    assert not result.ok and result.attempts == 3
    assert "status 503, expected 200" in result.detail
    expect_503 = StartupProbe(target=f"{web}/down", expected_status=503)
    assert probe_once(expect_503)[0]
    port = web.rsplit(":", 1)[1]
    assert probe_once(StartupProbe(target=f"127.0.0.1:{port}"))[0]
    closed = probe_once(StartupProbe(target=f"127.0.0.1:{_closed_port()}", timeout_seconds=1))
    assert closed[0] is False and "TCP 127.0.0.1:" in closed[1]


def test_probe_sleeps_only_between_attempts(web: str) -> None:
    sleeps: list[float] = []
    probe = StartupProbe(target=f"{web}/ok", retries=3, retry_interval_seconds=2)
    result = run_probe(probe, sleep=sleeps.append)
    assert result.ok and result.attempts == 1 and sleeps == []  # no retry after a pass
    failing = StartupProbe(target=f"{web}/down", retries=2, retry_interval_seconds=2)
    run_probe(failing, sleep=sleeps.append)
    assert sleeps == [2, 2]  # between attempts only, not after the last


@pytest.mark.parametrize(
    ("target", "valid"),
    [
        ("https://ingress.example.org/healthz", True),
        ("http://10.0.0.5:8080/", True),
        ("10.0.0.5:5432", True),
        ("[fd00::1]:443", True),
        ("10.0.0.5", False),  # no port
        ("10.0.0.5:0", False),  # port 0
        ("10.0.0.5:65536", False),  # out of range
        ("https://", False),  # no host
        (":443", False),  # no host
    ],
)
def test_probe_target_grammar(target: str, valid: bool) -> None:
    data = {"ups": {"target": "pyrphoros@localhost"}, "startup": {"probes": [{"target": target}]}}
    if valid:
        assert parse_config(data).startup.probes[0].target == target
    else:
        with pytest.raises(Exception, match=r"startup\.probes\.0\.target"):
            parse_config(data)


def test_failing_probe_makes_the_run_partial_and_names_it(tmp_path: Path, web: str) -> None:
    probes = [
        {"name": "ingress", "target": f"{web}/ok"},
        {"name": "nextcloud", "target": f"{web}/down", "retries": 1, "retry_interval_seconds": 0},
    ]
    config = _config(tmp_path, probes=probes)
    report = run_startup(_ctx(config, _cluster(), FakeAnsible()), StartupOptions())
    assert report.outcome is Outcome.PARTIAL
    stage = next(s for s in report.stages if s.name == "probes")
    assert stage.nodes == {"ingress": "ok", "nextcloud": "failed"}
    assert "nextcloud: GET" in stage.detail and "503" in stage.detail
    assert StateStore(config.state_dir).read_intent().state is IntentState.NORMAL


# --------------------------------------------------------------------------- soak


def test_health_problems() -> None:
    config = _config(Path("/nonexistent"))
    assert health_problems(config, {"s1", "a1"}, [], {}) == []
    assert health_problems(config, {"s1"}, ["Kustomization/flux-system/apps"], {"web": "503"}) == [
        "not Ready: a1",
        "Flux not Ready: Kustomization/flux-system/apps",
        "probe web: 503",
    ]
    assert health_problems(config, "API down", "API down", {}) == [
        "nodes: API down",
        "Flux: API down",
    ]


def test_soak_passes_when_healthy_and_reports_a_failure(tmp_path: Path) -> None:
    config = _config(tmp_path, soak_seconds=0.3, soak_interval_seconds=0.1)
    report = run_startup(_ctx(config, _cluster(), FakeAnsible()), StartupOptions())
    soak = next(s for s in report.stages if s.name == "soak")
    assert soak.status == "ok" and "healthy for 0s" in soak.detail
    assert report.outcome is Outcome.SUCCESS

    class Flaky(FakeKube):
        checks = 0

        def nodes(self):  # type: ignore[no-untyped-def]
            self.checks += 1
            found = super().nodes()
            return found if self.checks < 4 else [n for n in found if n.name != "a1"]

    kube = Flaky(nodes_up={"s1": True, "a1": True})
    kube.add_flux("GitRepository", "flux-system", "flux-system")
    config = _config(tmp_path / "2", soak_seconds=30, soak_interval_seconds=0.05)
    report = run_startup(_ctx(config, kube, FakeAnsible()), StartupOptions())
    soak = next(s for s in report.stages if s.name == "soak")
    assert soak.status == "partial" and "not Ready: a1" in soak.detail
    assert report.outcome is Outcome.PARTIAL
    assert report.duration_s < 10  # ended at the failure, not after 30 s


# --------------------------------------------------------------------------- plan = run


def test_dry_run_plan_lists_the_stages_the_run_walks(tmp_path: Path, web: str) -> None:
    config = _config(
        tmp_path,
        storage_workloads=[{"kind": "deployment", "namespace": "s", "name": "csi"}],
        foundation_workloads=[{"namespace": "kube-system", "name": "coredns"}],
        probes=[{"target": f"{web}/ok"}],
        soak_seconds=0.1,
        soak_interval_seconds=0.05,
    )
    kube = _cluster()
    kube.storage = {"deployment/s/csi": (1, 1)}
    plan = [s.name for s in startup_plan(config, force_flux_branch=None)]
    report = run_startup(_ctx(config, kube, FakeAnsible()), StartupOptions())
    assert report.outcome is Outcome.SUCCESS, report.to_json()
    assert [s for s in plan if s not in PLAN_ONLY_STEPS] == [s.name for s in report.stages]
    assert plan[:2] == ["guards", "intent"] and plan[-1] == "record"
    for gate in ("time_sync", "storage", "probes", "soak"):
        assert gate in plan
    minimal = _config(tmp_path / "m", time_sync_check=False)
    bare = [s.name for s in startup_plan(minimal, force_flux_branch=None)]
    assert not {"time_sync", "storage", "probes", "soak", "foundation"} & set(bare)


# --------------------------------------------------------------------------- reports, status


def test_reports_are_kept_and_summarised_for_status(tmp_path: Path) -> None:
    config = _config(tmp_path)
    kube = _cluster()
    shutdown = run_shutdown(_ctx(config, kube, FakeAnsible()), ShutdownOptions(mode="cluster-only"))
    startup = run_startup(_ctx(config, kube, FakeAnsible(unreachable={"a1"})), StartupOptions())
    for kind, report in (("shutdown", shutdown), ("startup", startup)):
        kept = load_report(config.state_dir, kind)
        assert kept is not None
        assert {k: kept[k] for k in report.to_json()} == json.loads(json.dumps(report.to_json()))
        assert kept["ended_at"] >= kept["started_at"]
    summary = report_summary(load_report(config.state_dir, "startup"))
    assert summary is not None and summary["outcome"] == "failed"
    assert summary["not_ok"][0]["name"] == "time_sync"
    assert report_summary(None) is None


def test_status_shows_the_gate_only_for_the_startup_under_way(tmp_path: Path) -> None:
    config = _config(tmp_path)
    kube = _cluster()
    run_startup(_ctx(config, kube, FakeAnsible(clock_offsets={"s1": -60})), StartupOptions())
    intent = StateStore(config.state_dir).read_intent()
    assert intent.state is IntentState.STARTUP_IN_PROGRESS
    shown = startup_progress(config.state_dir, intent.state.value, intent.run_id, intent.since + 9)
    assert shown is not None and shown["stage"] == "time_sync"
    assert "s1: clock 60" in shown["detail"] and "behind" in shown["detail"]
    # another run's progress, or a finished startup: nothing shown
    assert startup_progress(config.state_dir, intent.state.value, "other", 0) is None
    assert startup_progress(config.state_dir, "normal", intent.run_id, 0) is None
