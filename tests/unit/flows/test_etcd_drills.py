"""The etcd drills against in-memory ports (on the twin: tests/integration/test_drills.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from hecate.drills.base import DrillEnv, run_drill
from hecate.drills.catalog import get_drill
from hecate.flows.context import FlowContext
from tests.fakes import FakeAnsible
from tests.unit.flows.test_etcd_flows import _config, _ctx


def _env(tmp_path: Path, ansible: FakeAnsible) -> DrillEnv:
    config = _config(tmp_path)
    ctx = _ctx(config, ansible)

    @contextlib.contextmanager
    def factory() -> Iterator[FlowContext]:
        yield ctx

    return DrillEnv(config, ctx.kube, factory, log=lambda _: None, sleep=lambda _: None)


def test_member_lost_drill_passes_and_puts_the_data_back(tmp_path: Path) -> None:
    ansible = FakeAnsible()
    report = run_drill(get_drill("etcd-member-lost"), _env(tmp_path, ansible), execute=True)
    assert report.passed, report.to_json()
    actions = [a for a, _ in ansible.etcd_actions if a != "probe"]
    assert actions == ["move_aside", "move_back"]
    assert not ansible.etcd_data_lost


def test_quorum_lost_drill_recovers_from_the_snapshot(tmp_path: Path) -> None:
    ansible = FakeAnsible()
    env = _env(tmp_path, ansible)
    env.kube.live_manifest = dict  # type: ignore[method-assign,assignment]
    env.kube.apply = lambda manifest: "Namespace/-/x"  # type: ignore[method-assign]
    report = run_drill(get_drill("etcd-quorum-lost"), env, execute=True)
    assert report.passed, report.to_json()
    assert [r["outcome"] for r in report.runs] == ["failed", "success"]
    assert ("reset", ("s1",)) in ansible.etcd_actions


def test_etcd_drills_refuse_without_healthy_etcd(tmp_path: Path) -> None:
    ansible = FakeAnsible(etcd_data_lost={"s3"})
    report = run_drill(get_drill("etcd-member-lost"), _env(tmp_path, ansible), execute=True)
    assert not report.executed and "s3 data_missing" in report.checks[0].name
