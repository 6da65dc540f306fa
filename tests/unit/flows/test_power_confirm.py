"""Issue 25, item 3: after the poweroff, each node with a BMC is confirmed off from it; one
still on after shutdown.poweroff_timeout_seconds is powered off hard when bmc_hard_off says
so; one SSH could not reach is shut down through its BMC (soft, then hard)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from hecate.config.model import HecateConfig
from hecate.core.plans import ShutdownOptions, shutdown_plan
from hecate.core.power import PowerResult
from hecate.core.power_steps import confirm_step
from hecate.core.run_history import Outcome
from hecate.flows.report import FlowReport
from hecate.flows.shutdown import run_shutdown
from tests.fakes import FakeAnsible
from tests.unit.flows.test_flows import _cluster, _config, _ctx
from tests.unit.flows.test_power_on import FakePower


class SoftIgnored(FakePower):
    """A node whose OS ignores the ACPI soft off (hung); a hard off always works."""

    stuck: set[str]
    actions: list[str]

    def off(self, node: str, *, hard: bool) -> PowerResult:
        self.actions.append(f"{node} {'hard' if hard else 'soft'}")
        if node in self.stuck and not hard:
            return PowerResult(node, "off", True, "accepted")
        return super().off(node, hard=hard)


def _bmc_config(tmp_path: Path, **shutdown: object) -> HecateConfig:
    secret = tmp_path / "bmc"
    secret.write_text("pw\n")
    secret.chmod(0o600)
    bmc = {"method": "ipmi", "address": "127.0.0.1:1623", "user": "admin"}
    nodes = {n: bmc | {"password_file": str(secret)} for n in ("s1", "a1")}
    return _config(
        tmp_path,
        power={"nodes": nodes},
        shutdown={"poweroff_timeout_seconds": 0.3, **shutdown},
    )


def _run(config: HecateConfig, power: FakePower, unreachable: set[str]) -> FlowReport:
    ansible = FakeAnsible(unreachable=unreachable)
    ctx = _ctx(config, _cluster(), ansible)
    ctx.power, ctx.node_answers = power, power.answers
    ctx.sleep = lambda s: time.sleep(min(s, 0.02))
    return run_shutdown(ctx, ShutdownOptions(reason="ups"))


def test_the_plan_confirms_bmc_nodes_only(tmp_path: Path) -> None:
    config = _bmc_config(tmp_path)
    plan = shutdown_plan(config, ShutdownOptions())
    names = list(plan.stage_names)
    assert names[names.index("poweroff_servers") + 1] == "power_confirm"
    assert plan.stages[names.index("power_confirm")].nodes == ("s1", "a1")
    assert "power_confirm" not in shutdown_plan(_config(tmp_path), ShutdownOptions()).stage_names


def test_a_node_ssh_cannot_reach_is_shut_down_through_its_bmc(tmp_path: Path) -> None:
    power = SoftIgnored(up={"s1", "a1", "a2"})
    power.stuck, power.actions = {"a1"}, []
    report = _run(_bmc_config(tmp_path), power, unreachable={"s1", "a1"})
    confirm = next(s for s in report.stages if s.name == "power_confirm")
    assert confirm.nodes == {"s1": "off", "a1": "off"}, confirm.to_json()
    # s1 went off on the soft request; a1 ignored it and was cut after the timeout
    assert sorted(power.actions) == ["a1 hard", "a1 soft", "s1 soft"]
    assert power.actions.index("a1 soft") < power.actions.index("a1 hard")
    assert "a1: off through its BMC (SSH did not reach it), hard" in confirm.detail
    # known down thanks to the BMC: not a shutdown that stopped nothing
    assert report.cluster is not None
    assert dict(report.cluster.down) == {"s1": "off", "a1": "off", "a2": "off"}
    assert report.outcome is Outcome.PARTIAL  # the stop stages did miss two nodes


def test_still_on_after_the_timeout_is_cut_only_with_bmc_hard_off(tmp_path: Path) -> None:
    # reached over SSH, its poweroff accepted, and yet on (a hung shutdown)
    power = SoftIgnored(up={"s1", "a1", "a2"})
    power.stuck, power.actions = set(), []
    report = _run(_bmc_config(tmp_path), power, unreachable=set())
    confirm = next(s for s in report.stages if s.name == "power_confirm")
    assert confirm.nodes == {"s1": "on", "a1": "on"}
    assert "shutdown.bmc_hard_off is false" in confirm.detail
    assert power.actions == []
    power = SoftIgnored(up={"s1", "a1", "a2"})
    power.stuck, power.actions = set(), []
    (tmp_path / "again").mkdir()
    report = _run(_bmc_config(tmp_path / "again", bmc_hard_off=True), power, set())
    confirm = next(s for s in report.stages if s.name == "power_confirm")
    assert confirm.nodes == {"s1": "off", "a1": "off"}
    assert sorted(power.actions) == ["a1 hard", "s1 hard"]


def test_confirm_step_decisions() -> None:
    base: dict[str, Any] = {
        "reached": True,
        "asked_soft": False,
        "asked_hard": False,
        "timeout_s": 10.0,
    }
    assert confirm_step(state="off", waited_s=0, hard_allowed=False, **base) == "done"
    assert confirm_step(state="on", waited_s=1, hard_allowed=False, **base) == "wait"
    assert confirm_step(state="unknown", waited_s=11, hard_allowed=False, **base) == "give_up"
    assert confirm_step(state="on", waited_s=11, hard_allowed=True, **base) == "hard_off"
    unreached = base | {"reached": False}
    assert confirm_step(state="on", waited_s=0, hard_allowed=False, **unreached) == "soft_off"
    soft = unreached | {"asked_soft": True}
    assert confirm_step(state="on", waited_s=11, hard_allowed=False, **soft) == "hard_off"
    hard = soft | {"asked_hard": True}
    assert confirm_step(state="on", waited_s=11, hard_allowed=False, **hard) == "give_up"
