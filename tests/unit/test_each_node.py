"""Cordon and uncordon go to every node at once: one node's API error never stops the others,
the ledger records exactly what Hecate cordoned, and N slow calls take about one call's time."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from hecate.errors import KubeError
from hecate.flows.each_node import for_each_node
from hecate.flows.ledger import load_ledger
from hecate.flows.shutdown import ShutdownOptions, run_shutdown
from hecate.flows.startup import StartupOptions, run_startup
from hecate.runs import Outcome
from tests.unit.fakes import FakeAnsible, FakeKube
from tests.unit.test_flows import _cluster, _config, _ctx


def test_every_node_is_called_once_and_errors_stay_per_node() -> None:
    called: list[str] = []
    lock = threading.Lock()

    def action(node: str) -> None:
        with lock:
            called.append(node)
        if node == "a2":
            raise KubeError("a2: 500 from the API")

    errors = for_each_node(["s1", "a1", "a2", "a3"], action)
    assert sorted(called) == ["a1", "a2", "a3", "s1"]
    assert list(errors) == ["s1", "a1", "a2", "a3"]  # the caller's order
    assert [n for n, e in errors.items() if e is not None] == ["a2"]
    assert for_each_node([], action) == {}


def test_slow_calls_overlap() -> None:
    start = time.monotonic()
    for_each_node([f"n{i}" for i in range(8)], lambda _: time.sleep(0.3))
    assert time.monotonic() - start < 0.3 * 4  # one after another would take 2.4 s


class PatchFails(FakeKube):
    """The API refuses to patch one node (a webhook, a conflict)."""

    def set_unschedulable(self, node: str, value: bool) -> None:
        if node == "a1" and value:
            raise KubeError("a1: admission webhook denied the patch")
        super().set_unschedulable(node, value)


def test_a_node_that_cannot_be_cordoned_is_partial_and_not_recorded(tmp_path: Path) -> None:
    config = _config(tmp_path)
    kube, ansible = PatchFails(nodes_up={"s1": True, "a1": True, "a2": True}), FakeAnsible()
    base = _cluster()
    kube.flux = base.flux
    kube.cordoned.add("a2")  # an operator's cordon: never recorded, never undone
    ctx = _ctx(config, kube, ansible)
    report = run_shutdown(ctx, ShutdownOptions(mode="cluster-only", skip_drain=True))
    cordon = next(s for s in report.stages if s.name == "cordon")
    assert cordon.status == "partial", cordon.to_json()
    assert cordon.nodes == {"s1": "ok", "a1": "failed", "a2": "ok"}
    assert load_ledger(config.state_dir).cordoned == ["s1"]
    assert report.outcome is Outcome.PARTIAL  # and the node stages still ran
    assert run_startup(ctx, StartupOptions()).outcome is Outcome.SUCCESS
    assert load_ledger(config.state_dir).cordoned == []  # uncordoned what it cordoned
    assert kube.cordoned == {"a2"}  # and only that
