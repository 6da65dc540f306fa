"""Which stages share one ansible-playbook is the plan's to say (plan_runs.playbook_batches):
the dry run prints it, the runner walks it, and a step table that disagrees with the plan is
refused before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hecate.adapters.statedir.store import StateStore
from hecate.cli.plan_text import plan_json, plan_lines
from hecate.config.model import HecateConfig, parse_config
from hecate.core.plan_runs import playbook_batches
from hecate.core.plans import (
    FlowPlan,
    ShutdownOptions,
    StageSpec,
    shutdown_plan,
)
from hecate.flows.context import FlowContext, PlaybookStep
from hecate.flows.runner import MissingStepError, StageRecorder, StepTable, walk
from tests.fakes import FakeAnsible, FakeKube


def spec(name: str, playbook: bool = True, skip: str | None = None) -> StageSpec:
    return StageSpec(name, name, ("n",), skip, name if playbook else None)


# (stages, expected ranges, why)
CASES = [
    ([spec("a"), spec("b")], [(0, 2)], "two playbook stages in a row"),
    ([spec("a")], [], "one alone is a plain run"),
    ([spec("a"), spec("x", False), spec("b")], [], "a Python step between them decides"),
    ([spec("a"), spec("s", skip="none"), spec("b")], [(0, 3)], "a skipped stage does not split"),
    ([spec("s", skip="none"), spec("a"), spec("b")], [(1, 3)], "a skipped stage before: outside"),
    ([spec("a"), spec("b"), spec("s", skip="none")], [(0, 2)], "a skipped stage after: outside"),
    ([spec("a"), spec("s", skip="none")], [], "one runnable and one skipped: alone"),
    (
        [spec("a"), spec("b"), spec("x", False), spec("c"), spec("d"), spec("e")],
        [(0, 2), (3, 6)],
        "two batches either side of a decision",
    ),
    ([spec("x", False), spec("y", False)], [], "no playbook stages"),
]


@pytest.mark.parametrize(("stages", "expected", "why"), CASES, ids=[c[2] for c in CASES])
def test_playbook_batches(
    stages: list[StageSpec], expected: list[tuple[int, int]], why: str
) -> None:
    assert playbook_batches(tuple(stages)) == expected, why


@given(st.lists(st.sampled_from(["p", "x", "s"]), max_size=12))
def test_batches_hold_only_playbook_or_skipped_stages_and_start_and_end_runnable(
    kinds: list[str],
) -> None:
    stages = tuple(
        spec(f"{k}{i}", playbook=k == "p", skip="none" if k == "s" else None)
        for i, k in enumerate(kinds)
    )
    ranges = playbook_batches(stages)
    for start, end in ranges:
        inside = stages[start:end]
        assert all(s.playbook is not None or s.skip is not None for s in inside)
        assert inside[0].skip is None and inside[-1].skip is None
        assert sum(1 for s in inside if s.skip is None) >= 2
    # ranges never overlap and are in order
    flat = [i for start, end in ranges for i in (start, end)]
    assert flat == sorted(flat)


def _config(tmp_path: Path) -> HecateConfig:
    return parse_config(
        {
            "state_dir": str(tmp_path / "s"),
            "nodes": {"servers": ["s1"], "agents": ["a1"]},
            "ups": {"target": "pyrphoros@localhost"},
        }
    )


def test_the_dry_run_says_which_steps_share_one_ansible_playbook(tmp_path: Path) -> None:
    plan = shutdown_plan(_config(tmp_path), ShutdownOptions())
    lines = plan_lines("t", plan)
    names = [s.name for s in plan.steps]
    first, last = names.index("stop_agents") + 1, names.index("poweroff_servers") + 1
    assert f"      (steps {first}-{last} share one ansible-playbook)" in lines
    batch = {e["name"]: e["batch"] for e in plan_json(plan)}
    assert batch["stop_agents"] == batch["poweroff_servers"] == 0
    assert batch["cordon"] is None and batch["intent"] is None


def test_cluster_only_batches_the_two_stops(tmp_path: Path) -> None:
    plan = shutdown_plan(_config(tmp_path), ShutdownOptions(mode="cluster-only"))
    [(start, end)] = playbook_batches(plan.stages)
    assert [s.name for s in plan.stages[start:end]] == ["stop_agents", "stop_servers"]


def test_steps_that_disagree_with_the_plan_are_refused_before_anything_runs(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path)
    ansible = FakeAnsible()
    ctx = FlowContext(config, ansible, FakeKube(), StateStore(config.state_dir))
    plan = FlowPlan("shutdown", (), (spec("a"), spec("b")), ())
    steps: StepTable = {"a": PlaybookStep("a", 10), "b": lambda _stage, _spec: None}
    with pytest.raises(MissingStepError, match="disagree on b"):
        walk(ctx, plan, steps, StageRecorder(ctx))
    wrong = {"a": PlaybookStep("a", 10), "b": PlaybookStep("other", 10)}
    with pytest.raises(MissingStepError, match="disagree on b"):
        walk(ctx, plan, wrong, StageRecorder(ctx))
    assert ansible.requests == []
