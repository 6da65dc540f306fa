"""The time-sync gate end to end on the twin: the real time_sync role over SSH reads each node's
NTP state and clock (node/timedatectl and node/date let a test skew a container's clock).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hecate.adapters.statedir.store import StateStore
from hecate.core.intent import IntentState
from hecate.core.run_history import Outcome
from hecate.flows.context import StageResult
from hecate.flows.report import FlowReport, load_report
from tests.integration.support import twin_config
from tests.integration.test_flows import shutdown, startup
from tests.testbed.nut import NutServer
from tests.testbed.twin import Twin

pytestmark = pytest.mark.integration


def _time_sync(report: FlowReport) -> StageResult:
    """The time_sync gate's stage (power_on comes before it since issue 25)."""
    return next(stage for stage in report.stages if stage.name == "time_sync")


def _active(twin: Twin, node: str, unit: str) -> bool:
    return twin.exec(node, "systemctl", "is-active", "--quiet", unit).returncode == 0


def test_skewed_node_holds_k3s_back_until_its_clock_is_fixed(
    twin: Twin, nut_server: NutServer, tmp_path: Path
) -> None:
    server, agent = twin.servers[0].name, twin.agents[0].name
    config = twin_config(
        twin,
        tmp_path / "state",
        nut_server,
        startup={"time_sync_timeout_seconds": 8, "max_clock_skew_seconds": 5},
    )
    assert shutdown(config, mode="cluster-only", skip_etcd_snapshot=True).outcome in (
        Outcome.SUCCESS,
        Outcome.PARTIAL,
    )
    assert not _active(twin, server, "k3s")
    try:
        twin.set_clock(agent, 3600)
        held = startup(config)
        assert held.outcome is Outcome.FAILED, held.to_json()
        gate = _time_sync(held)
        assert gate.name == "time_sync" and gate.status == "failed"
        assert gate.nodes[agent] == "skewed" and gate.nodes[server] == "ok"
        assert f"{agent}: clock 3600" in held.message or f"{agent}: clock 359" in held.message
        assert not _active(twin, server, "k3s")  # k3s was never started
        assert StateStore(config.state_dir).read_intent().state is IntentState.STARTUP_IN_PROGRESS
        kept = load_report(config.state_dir, "startup")
        assert kept is not None and kept["outcome"] == "failed"
    finally:
        twin.set_clock(agent, 0)
    fixed = startup(config)
    assert fixed.outcome is Outcome.SUCCESS, fixed.to_json()
    gate = _time_sync(fixed)
    assert gate.status == "ok" and set(gate.nodes.values()) == {"ok"}
    assert _active(twin, server, "k3s")


def test_unsynchronised_node_with_start_anyway_is_named_and_startup_goes_on(
    twin: Twin, nut_server: NutServer, tmp_path: Path
) -> None:
    agent = twin.agents[-1].name
    config = twin_config(
        twin,
        tmp_path / "state",
        nut_server,
        startup={"time_sync_timeout_seconds": 3, "time_sync_unsynced": "start_anyway"},
    )
    try:
        twin.set_clock(agent, 0, ntp_synchronized=False)
        report = startup(config)
    finally:
        twin.set_clock(agent, 0)
    gate = _time_sync(report)
    assert gate.status == "warning" and gate.nodes[agent] == "unsynchronized"
    assert f"{agent}: clock not synchronised" in gate.detail
    assert report.outcome is Outcome.SUCCESS, report.to_json()
