"""Issue 25, item 2: startup's first stage powers on the nodes whose SSH does not answer,
servers first, waits for each (bounded, the power-on sent again with backoff), names a node
that cannot be powered on with its reason, and the others go on. The power port here is an
in-memory one (the twin's real BMCs: tests/integration/test_power_flows.py)."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from hecate.cli.main import app
from hecate.config.model import HecateConfig
from hecate.core.plans import StartupOptions, startup_plan
from hecate.core.power import PowerReading, PowerResult, PowerState
from hecate.core.power_steps import resend_delay
from hecate.core.run_history import Outcome
from hecate.flows.context import FlowContext
from hecate.flows.startup import run_startup
from tests.fakes import FakeAnsible
from tests.unit.flows.test_flows import _cluster, _config, _ctx


@dataclasses.dataclass
class FakePower:
    """Nodes that are off until powered on; `boots`: polls of SSH before a node answers;
    `refuses`: nodes whose power-on is refused (the reason); `mute`: on but SSH never answers."""

    up: set[str]
    refuses: dict[str, str] = dataclasses.field(default_factory=dict)
    mute: set[str] = dataclasses.field(default_factory=set)
    calls: list[str] = dataclasses.field(default_factory=list)
    powered: set[str] = dataclasses.field(default_factory=set)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def status(self, node: str) -> PowerReading:
        state: PowerState = "on" if node in self.up | self.powered else "off"
        return PowerReading(node, "ipmi", state, f"Chassis Power is {state}")

    def on(self, node: str) -> PowerResult:
        with self.lock:
            self.calls.append(node)
        if node in self.refuses:
            return PowerResult(node, "on", False, self.refuses[node])
        self.powered.add(node)
        return PowerResult(node, "on", True, "chassis power on accepted")

    def off(self, node: str, *, hard: bool) -> PowerResult:
        self.up.discard(node)
        self.powered.discard(node)
        return PowerResult(node, "hard_off" if hard else "off", True, "accepted")

    def answers(self, node: str) -> tuple[bool, str]:
        ok = node in self.up or (node in self.powered and node not in self.mute)
        return (
            ok,
            "SSH answers" if ok else "SSH at 127.0.0.1:22 does not answer: Connection refused",
        )


def _power_ctx(config: HecateConfig, power: FakePower) -> FlowContext:
    ctx = _ctx(config, _cluster(), FakeAnsible())
    ctx.power, ctx.node_answers = power, power.answers
    ctx.sleep = lambda s: time.sleep(min(s, 0.02))
    return ctx


def test_nodes_that_answer_are_left_alone(tmp_path: Path) -> None:
    power = FakePower(up={"s1", "a1", "a2"})
    report = run_startup(_power_ctx(_config(tmp_path), power), StartupOptions())
    assert report.outcome is Outcome.SUCCESS, report.to_json()
    stage = report.stages[0]
    assert stage.name == "power_on" and stage.status == "ok"
    assert stage.nodes == {"s1": "on", "a1": "on", "a2": "on"}
    assert power.calls == []


def test_servers_first_and_a_node_that_cannot_be_powered_on_is_named(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        nodes={"servers": ["s1", "s2"], "agents": ["a1", "a2"]},
        startup={"power_on_timeout_seconds": 1.0, "api_timeout_seconds": 2},
    )
    power = FakePower(up=set(), refuses={"a2": "no way to power it on (method none)"})
    ctx = _power_ctx(config, power)
    ctx.kube = _cluster()
    ctx.kube.nodes_up.update({"s2": True})
    report = run_startup(ctx, StartupOptions())
    stage = report.stages[0]
    # the servers' power-on first (both at once), then the agents'
    assert set(power.calls[:2]) == {"s1", "s2"} and set(power.calls[2:4]) == {"a1", "a2"}
    assert stage.nodes == {
        "s2": "powered_on",
        "s1": "powered_on",
        "a1": "powered_on",
        "a2": "failed",
    }
    assert stage.status == "partial"
    assert "a2: cannot be powered on: no way to power it on (method none)" in stage.detail
    assert "Connection refused" in stage.causes["a2"]
    # the others went on: k3s was started on them
    start = next(s for s in report.stages if s.name == "start_servers")
    assert start.nodes["s1"] == "ok" and start.nodes["s2"] == "ok"
    assert power.calls.count("a2") == 1  # the next one would be 5 s later, past the bound


class LosesFirstPacket(FakePower):
    def on(self, node: str) -> PowerResult:
        first = node not in self.calls
        result = super().on(node)
        if first:
            self.powered.discard(node)  # accepted, and lost on the way (a magic packet)
        return result


def test_a_lost_power_on_is_sent_again_with_backoff(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("hecate.flows.power_on.resend_delay", lambda attempt: 0.1 * attempt)
    config = _config(tmp_path, startup={"power_on_timeout_seconds": 3, "api_timeout_seconds": 2})
    power = LosesFirstPacket(up={"s1", "a2"})
    report = run_startup(_power_ctx(config, power), StartupOptions())
    assert report.stages[0].nodes["a1"] == "powered_on", report.to_json()
    assert power.calls == ["a1", "a1"]


def test_a_bmc_that_says_on_while_ssh_never_answers_is_bounded(tmp_path: Path) -> None:
    config = _config(tmp_path, startup={"power_on_timeout_seconds": 0.5, "api_timeout_seconds": 2})
    power = FakePower(up={"s1", "a2"}, mute={"a1"})
    started = time.monotonic()
    report = run_startup(_power_ctx(config, power), StartupOptions())
    assert time.monotonic() - started < 10
    stage = report.stages[0]
    assert stage.nodes == {"s1": "on", "a1": "failed", "a2": "on"}
    assert "a1: powered on, but SSH did not answer within 0s; its BMC says on" in stage.detail


def test_without_a_power_port_the_stage_is_skipped(tmp_path: Path) -> None:
    ctx = _ctx(_config(tmp_path), _cluster(), FakeAnsible())
    report = run_startup(ctx, StartupOptions())
    assert report.stages[0].name == "power_on"
    assert report.stages[0].status == "skipped"


def test_resend_backoff() -> None:
    assert [resend_delay(n) for n in range(1, 7)] == [5, 10, 20, 40, 60, 60]


def test_the_dry_run_lists_power_on_first(tmp_path: Path) -> None:
    data: dict[str, Any] = {
        "state_dir": str(tmp_path / "state"),
        "nodes": {"servers": ["s1", "s2"], "agents": ["a1"]},
        "ups": {"target": "pyrphoros@127.0.0.1:1"},
        "power": {"nodes": {"a1": {"method": "wol", "mac": "aa:bb:cc:dd:ee:01"}}},
    }
    path = tmp_path / "hecate.yaml"
    path.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(app, ["startup", "--config", str(path), "--json", "--no-probe"])
    plan = json.loads(result.output)["plan"]
    stages = [s["name"] for s in plan if s["name"] not in ("guards", "intent")]
    assert stages[0] == "power_on", stages
    assert plan[2]["nodes"] == ["s2", "s1", "a1"]
    assert "none (its BIOS): s2, s1; wol: a1" in plan[2]["description"]
    text = (
        CliRunner()
        .invoke(app, ["startup", "--config", str(path), "--no-probe", "--allow-on-battery"])
        .output
    )
    assert "power on the nodes whose SSH does not answer" in text
    spec = startup_plan(HecateConfig.model_validate(data), StartupOptions()).stages[0]
    assert spec.name == "power_on" and spec.skip is None
