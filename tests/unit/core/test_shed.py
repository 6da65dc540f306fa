"""Load shedding's pure core (issue 28, item 3): when it is due; the record round-trips and a
corrupt one is refused (never restored from half a file)."""

from __future__ import annotations

import pytest

from hecate.config.feeds import ShedConfig
from hecate.core.shed import ShedRecord, ShedWorkload, shed_due
from hecate.errors import StateCorruptError

SEL = "hecate.dev/shed=true"


def test_nothing_to_shed_is_never_due() -> None:
    assert shed_due(ShedConfig(after_seconds=1), 100, 10) is None


def test_due_after_time_on_battery_or_below_runtime() -> None:
    shed = ShedConfig(after_seconds=60, below_runtime_seconds=600, label_selector=SEL)
    assert shed_due(shed, None, 10) is None  # on mains
    assert shed_due(shed, 30, 900) is None
    assert shed_due(shed, 30, None) is None  # an unknown runtime never triggers
    assert "after_seconds" in (shed_due(shed, 60, 900) or "")
    assert "below_runtime_seconds" in (shed_due(shed, 5, 599) or "")
    assert shed_due(ShedConfig(agents=["a1"], below_runtime_seconds=600), 1, 100) is not None


def test_the_record_round_trips() -> None:
    record = ShedRecord(
        1.0,
        "runtime",
        (ShedWorkload("deployment", "apps", "web", 3),),
        ("HelmRelease/apps/web",),
        ("apps/web",),
        ("a3",),
    )
    assert ShedRecord.from_json(record.to_json()) == record


@pytest.mark.parametrize(
    "data",
    [
        [],
        {"reason": "x"},
        {"since": 1, "workloads": [{"kind": "pod", "namespace": "a", "name": "b", "replicas": 1}]},
        {"since": 1, "workloads": [{"kind": "deployment", "namespace": "a", "name": "b"}]},
        {
            "since": 1,
            "workloads": [{"kind": "deployment", "namespace": "a", "name": "b", "replicas": -1}],
        },
        {"since": 1, "agents": "a3"},
    ],
)
def test_a_corrupt_record_is_refused(data: object) -> None:
    with pytest.raises(StateCorruptError):
        ShedRecord.from_json(data)
