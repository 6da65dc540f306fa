"""The pure half of running several stages in one ansible-playbook
(hecate/adapters/ansible/batch.py): which stage an event belongs to, what the combined playbook and
inventory hold, and how each stage's result comes back out (and what is run again). The real runs
are tests/unit/adapters/ansible/test_ansible_batch_local.py; the flows' use of it is in
test_flows.py."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from hecate.adapters.ansible.assets import BATCHABLE_FILES, assets_dir, batch_group
from hecate.adapters.ansible.batch import (
    STAGE_GROUP_VAR,
    BatchCollector,
    BatchStage,
    batch_inventory,
    batch_limit,
    batch_playbook,
    clear_play_stage,
    merge_outcomes,
    not_reached,
    pending_hosts,
    play_start_stage,
    stage_group,
    stage_of,
    stage_outcomes,
)
from hecate.adapters.ansible.events import TaskEvent, TaskTiming
from hecate.adapters.ansible.inventory import group_hosts

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def stage(index: int, *hosts: str, playbook: str = "stop_agents") -> BatchStage:
    return BatchStage(index, playbook, Path(f"/p/{playbook}.yml"), {"v": index}, hosts, 10.0)


# (pattern as ansible reports it, stage, why)
PATTERNS = [
    ("agent:&hecate_stage_0", 0, "the k3s_service play of stage 0"),
    ("managed:&hecate_stage_12", 12, "poweroff of stage 12"),
    ("hecate_stage_3", None, "the group alone: the play between stages, not a stage"),
    ("agent:&all", None, "run alone: the default group, no stage"),
    ("agent:&hecate_stage_", None, "no index"),
    ("agent:&hecate_stage_1x", None, "not the group: another name that starts the same"),
    ("agent:&myhecate_stage_1", None, "not the group: a longer name"),
    ("", None, "empty"),
]


@pytest.mark.parametrize(("pattern", "expected", "why"), PATTERNS, ids=[p[2] for p in PATTERNS])
def test_stage_of_a_play_pattern(pattern: str, expected: int | None, why: str) -> None:
    assert stage_of(pattern) == expected, why


@pytest.mark.parametrize("garbage", [None, 3, ["agent"], {"a": 1}])
def test_stage_of_garbage_is_none(garbage: object) -> None:
    assert stage_of(garbage) is None


@given(st.integers(min_value=0, max_value=10_000))
def test_stage_group_and_stage_of_agree(index: int) -> None:
    assert stage_of(f"agent:&{stage_group(index)}") == index


def test_play_start_stage_reads_only_play_starts() -> None:
    data = {"play_pattern": "agent:&hecate_stage_2"}
    assert play_start_stage({"event": "playbook_on_play_start", "event_data": data}) == (
        2,
        "agent:&hecate_stage_2",
    )
    assert play_start_stage({"event": "runner_on_ok", "event_data": data}) is None
    assert play_start_stage({"event": "playbook_on_play_start", "event_data": "x"}) is None


def test_the_combined_playbook_imports_each_stage_with_its_vars_and_group() -> None:
    stages = [stage(0, "a1"), stage(1, "s1", playbook="stop_servers")]
    first, between, second = batch_playbook(stages)
    assert first == {
        "name": "Stage 0: stop_agents",
        "ansible.builtin.import_playbook": "/p/stop_agents.yml",
        "vars": {"v": 0, STAGE_GROUP_VAR: "hecate_stage_0"},
    }
    assert second == {
        "name": "Stage 1: stop_servers",
        "ansible.builtin.import_playbook": "/p/stop_servers.yml",
        "vars": {"v": 1, STAGE_GROUP_VAR: "hecate_stage_1"},
    }
    # between the stages: stage 0's failed hosts go on to stage 1 (as separate runs would)
    assert between["hosts"] == "hecate_stage_0"
    assert [t["ansible.builtin.meta"] for t in between["tasks"]] == ["clear_host_errors"]
    assert stage_of(between["hosts"]) is None  # the play between is no stage


def test_the_inventory_gains_one_group_per_stage_and_is_not_changed() -> None:
    inventory = {"all": {"vars": {"x": 1}, "children": {"agent": {"hosts": {"a1": {}}}}}}
    before = yaml.safe_dump(inventory)
    out = batch_inventory(inventory, [stage(0, "a1"), stage(1, "a1", "a2")])
    assert out["all"]["children"]["hecate_stage_0"] == {"hosts": {"a1": {}}}
    assert out["all"]["children"]["hecate_stage_1"] == {"hosts": {"a1": {}, "a2": {}}}
    assert out["all"]["vars"] == {"x": 1}
    assert yaml.safe_dump(inventory) == before
    assert batch_limit([stage(0, "b", "a"), stage(1, "a", "c")]) == ("a", "b", "c")


def test_an_inventory_with_a_group_named_like_a_stage_is_refused() -> None:
    inventory: dict[str, Any] = {"all": {"children": {"hecate_stage_0": {"hosts": {"x": {}}}}}}
    with pytest.raises(ValueError, match="hecate_stage_0"):
        batch_inventory(inventory, [stage(0, "a1")])


def test_a_stage_without_hosts_cannot_be_made() -> None:
    with pytest.raises(ValueError, match="no hosts"):
        stage(0)


def test_every_batchable_playbook_intersects_its_hosts_with_the_stage_group() -> None:
    """Without the intersection a batched play would run on every host of its group, not on
    its stage's: the limit of the whole run is the union of all the stages' hosts."""
    for name in sorted(BATCHABLE_FILES):
        plays = yaml.safe_load((assets_dir() / "playbooks" / name).read_text())
        for play in plays:
            assert ":&{{ hecate_stage_group | default('all') }}" in play["hosts"], name


def ev(index: int, host: str, status: str, at: float, took: float) -> tuple[TaskEvent, TaskTiming]:
    start = T0 + timedelta(seconds=at)
    timing = TaskTiming("t", host, status, start, start + timedelta(seconds=took), took)  # type: ignore[arg-type]
    return TaskEvent("batch", host, "t", status, stage=index), timing  # type: ignore[arg-type]


def collector(*events: tuple[int, str, str, float, float]) -> BatchCollector:
    got = BatchCollector()
    for index, host, status, at, took in events:
        event, timing = ev(index, host, status, at, took)
        got.add(index, event, timing)
    return got


def test_each_stage_is_judged_on_its_own_events() -> None:
    stages = [stage(0, "a1", "a2"), stage(1, "s1")]
    got = collector((0, "a1", "changed", 0, 1), (0, "a2", "failed", 0, 2), (1, "s1", "ok", 3, 1))
    first, second = stage_outcomes(stages, got, "failed", 2, timeout_s=20)
    assert first.status == "failed" and first.rc == 2
    assert first.hosts["a1"].changed == 1 and first.hosts["a2"].failed == 1
    assert first.duration_s == 2.0  # from its first start to its last end
    assert second.status == "successful" and list(second.hosts) == ["s1"]
    assert second.duration_s == 1.0


def test_unreachable_counts_over_failed_in_the_rc() -> None:
    got = collector((0, "a1", "unreachable", 0, 1), (0, "a2", "failed", 0, 1))
    [out] = stage_outcomes([stage(0, "a1", "a2")], got, "failed", 4, timeout_s=1)
    assert (out.status, out.rc) == ("failed", 4)


@pytest.mark.parametrize("status", ["timeout", "canceled"])
def test_a_run_cut_short_leaves_its_current_and_later_stages_with_its_status(status: str) -> None:
    stages = [stage(0, "a1"), stage(1, "s1"), stage(2, "s1")]
    got = collector((0, "a1", "ok", 0, 1), (1, "s1", "started", 1, 0))
    outs = stage_outcomes(stages, got, status, 254, timeout_s=30)  # type: ignore[arg-type]
    assert [o.status for o in outs] == ["successful", status, status]


def test_pending_hosts_are_those_the_run_left_out() -> None:
    stages = [stage(0, "a1", "a2"), stage(1, "a1", "a2", playbook="poweroff"), stage(2, "s1")]
    # a1 unreachable in stage 0, so ansible left it out of stage 1; stage 2 never started
    got = collector((0, "a1", "unreachable", 0, 1), (0, "a2", "ok", 0, 1), (1, "a2", "ok", 1, 1))
    again = pending_hosts(stages, got)
    assert [(s.index, s.playbook, s.hosts) for s in again] == [
        (1, "poweroff", ("a1",)),
        (2, "stop_agents", ("s1",)),
    ]
    assert again[0].extravars == stages[1].extravars  # the same vars, fewer hosts


def test_a_host_its_play_did_not_match_is_not_pending() -> None:
    """poweroff's play is on `managed` only: an unmanaged host of its limit gets no event, as
    in a run of its own, and is not run again."""
    poweroff = dataclasses.replace(stage(1, "a1", "a2", playbook="poweroff"), targets=("a1",))
    stages = [stage(0, "a1", "a2"), poweroff]  # managed:&hecate_stage_1: a1 is managed, a2 not
    got = collector((0, "a1", "ok", 0, 1), (0, "a2", "ok", 0, 1))
    got.play_started(1)
    event, timing = ev(1, "a1", "ok", 1, 1)
    got.add(1, event, timing)
    assert pending_hosts(stages, got) == []
    _, power = stage_outcomes(stages, got, "successful", 0, timeout_s=1)
    assert power.status == "successful" and list(power.hosts) == ["a1"]


def test_a_stage_over_its_own_bound_is_timeout_and_the_later_ones_run_again() -> None:
    stages = [stage(0, "a1"), stage(1, "a1"), stage(2, "s1")]
    got = collector((0, "a1", "ok", 0, 1), (1, "a1", "started", 1, 0))
    outs = stage_outcomes(stages, got, "canceled", 254, timeout_s=30, budget_hit=1)
    assert [o.status for o in outs][:2] == ["successful", "timeout"]
    assert outs[1].detail == "timed out after 10s"  # the stage's own bound, not the batch's
    again = pending_hosts(stages, got, budget_hit=1)
    assert [(s.index, s.hosts) for s in again] == [(2, ("s1",))]


def test_a_stage_in_two_goes_is_merged_and_judged_again() -> None:
    stages = [stage(1, "a1", "a2")]
    first = stage_outcomes(stages, collector((1, "a2", "ok", 0, 1)), "successful", 0, timeout_s=1)
    later = stage_outcomes(stages, collector((1, "a1", "ok", 5, 2)), "successful", 0, timeout_s=1)
    merged = merge_outcomes(first[0], later[0])
    assert sorted(merged.hosts) == ["a1", "a2"] and merged.status == "successful"
    assert merged.duration_s == 3.0
    failed = stage_outcomes(stages, collector((1, "a1", "failed", 5, 2)), "failed", 2, timeout_s=1)
    assert merge_outcomes(first[0], failed[0]).status == "failed"


def test_hosts_no_run_reached_fail_the_stage_by_name() -> None:
    [out] = stage_outcomes(
        [stage(0, "a1", "a2")], collector((0, "a1", "ok", 0, 1)), "successful", 0, timeout_s=1
    )
    reached = not_reached(out, ("a2",), "ERROR! the play could not start")
    assert reached.status == "failed"
    assert reached.detail == "not run on a2: ERROR! the play could not start"
    assert not_reached(out, (), "") == out


def test_events_of_no_stage_or_started_only_count_nothing() -> None:
    got = BatchCollector()
    event, timing = ev(0, "a1", "started", 0, 0)
    got.add(0, event, timing)
    assert got.counts == {} and got.started == {0}
    assert got.finished(0) is False
    got.play_started(1)
    assert got.finished(0) is True


def test_a_host_its_play_selected_but_never_reached_is_pending() -> None:
    """The play was aborted (a fatal error on another host) before it reached a2."""
    stages = [stage(0, "a1", "a2")]
    got = BatchCollector()
    got.play_started(0)
    event, timing = ev(0, "a1", "failed", 0, 1)
    got.add(0, event, timing)
    assert [s.hosts for s in pending_hosts(stages, got)] == [("a2",)]


INVENTORY = {
    "all": {
        "children": {
            "k3s_cluster": {
                "children": {
                    "server": {"hosts": {"s1": {}}},
                    "agent": {"hosts": {"a1": {}, "a2": {}}},
                }
            },
            "managed": {"hosts": {"a1": {}, "s1": {}}},
            "hecate_stage_0": {"hosts": {"a1": {}, "a2": {}}},
        }
    }
}


def test_a_group_s_hosts_follow_its_children() -> None:
    assert group_hosts(INVENTORY, "k3s_cluster") == {"s1", "a1", "a2"}
    assert group_hosts(INVENTORY, "all") == {"s1", "a1", "a2"}
    assert group_hosts(INVENTORY, "managed") == {"a1", "s1"}
    assert group_hosts(INVENTORY, "nosuch") == set()


def test_each_batchable_playbook_s_group_is_the_one_its_plays_name() -> None:
    """A batched stage's hosts are its limit within its playbook's group (batch_group): the
    group must be the one the playbook's hosts line intersects with the stage group."""
    for name in sorted(BATCHABLE_FILES):
        plays = yaml.safe_load((assets_dir() / "playbooks" / name).read_text())
        for play in plays:
            group = play["hosts"].split(":&")[0]
            if group == "{{ k3s_service_group }}":
                assert batch_group(name, {"k3s_service_group": "agent"}) == "agent", name
            else:
                assert batch_group(name, {}) == group, name


def test_a_stage_s_clock_runs_from_its_play_to_its_clearing_play_or_the_next_stage() -> None:
    got = BatchCollector()
    got.play_started(0, at=10.0)
    got.stage_ended(0, 12.5)  # its clearing play began
    got.play_started(1, at=12.6)
    got.play_started(2, at=20.0)
    assert got.clock_s(0, run_end=30.0) == 2.5
    assert got.clock_s(1, run_end=30.0) == pytest.approx(7.4)  # to the next stage's start
    assert got.clock_s(2, run_end=30.0) == 10.0  # to the end of the run
    assert got.clock_s(3, run_end=30.0) is None  # never started


def test_a_stage_cut_short_keeps_no_host_counts() -> None:
    """Its one `run_once` task's ok on the first host must not make that host `ok`."""
    stages = [stage(0, "s1", "s2")]
    got = collector((0, "s1", "ok", 0, 0.1))
    [out] = stage_outcomes(stages, got, "canceled", 254, timeout_s=9, budget_hit=0)
    assert out.status == "timeout" and out.hosts == {}


def test_clear_play_stage_reads_only_the_plays_between_stages() -> None:
    def start(pattern: str) -> dict[str, object]:
        return {"event": "playbook_on_play_start", "event_data": {"play_pattern": pattern}}

    assert clear_play_stage(start("hecate_stage_4")) == 4
    assert clear_play_stage(start("agent:&hecate_stage_4")) is None
    assert clear_play_stage({"event": "runner_on_ok", "event_data": {}}) is None
