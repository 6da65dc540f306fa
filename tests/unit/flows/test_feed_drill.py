"""The `partial-feed-loss` drill (issue 28) against in-memory ports: scored as the others; its
preconditions name what is missing. The twin runs it in tests/integration/test_drills.py."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hecate.config.model import HecateConfig
from hecate.drills.base import DrillEnv, run_drill
from hecate.drills.catalog import get_drill
from hecate.flows.context import FlowContext
from tests.fakes import FakeAnsible, FakeKube
from tests.unit.flows.test_flows_feeds import EVERY, _config, _ctx


def _env(config: HecateConfig, kube: FakeKube) -> DrillEnv:
    ansible = FakeAnsible()

    @contextmanager
    def factory() -> Iterator[FlowContext]:
        ctx = _ctx(config, kube, ansible)
        ctx.poweroff_local = None
        yield ctx

    return DrillEnv(config, kube, factory, log=lambda _: None, sleep=lambda _: None)


def test_the_drill_passes_and_stops_only_the_feeds_nodes(tmp_path: Path) -> None:
    # s3 on feed A: the fake API goes down with any server stopped (a real one keeps quorum)
    config = _config(tmp_path, s3="A")
    kube = FakeKube(nodes_up=dict.fromkeys(EVERY, True))
    report = run_drill(get_drill("partial-feed-loss"), _env(config, kube), execute=True)
    assert report.passed, [c for c in report.checks if not c.ok]
    names = {c.name: c for c in report.checks}
    assert names["only the feed's nodes were stopped"].detail == "['a2']"
    assert kube.cordoned == set() and all(kube.nodes_up.values())
    assert [r["kind"] for r in report.runs] == ["shutdown", "startup"]
    assert report.manual_steps == 0


def test_without_feeds_the_drill_does_not_run(tmp_path: Path) -> None:
    config = _config(tmp_path).model_copy(
        update={"power": _config(tmp_path).power.model_copy(update={"feeds": {}})}
    )
    kube = FakeKube(nodes_up=dict.fromkeys(EVERY, True))
    report = run_drill(get_drill("partial-feed-loss"), _env(config, kube), execute=True)
    assert not report.executed and not report.passed
    assert "power.feeds is not set" in report.checks[0].name
