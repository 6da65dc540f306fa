"""The Ansible batch planner, without Ansible: each stage's time bound while a run goes on, and
what runs again after it (hecate/core/batch_planner.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hecate.core.batch_planner import (
    Attempt,
    BatchStep,
    RunClock,
    max_attempts,
    next_attempt,
    pending_steps,
    run_bound_s,
    stage_over_bound,
)

STEPS = [BatchStep(0, ("a1", "a2"), 10.0), BatchStep(1, ("a1",), 5.0), BatchStep(2, ("s1",), 20.0)]


def test_the_first_stage_s_bound_covers_the_start_up() -> None:
    clock = RunClock(launched=100.0)  # no play has started yet
    assert stage_over_bound(STEPS, clock, 110.0) is None
    assert stage_over_bound(STEPS, clock, 110.5) == 0
    started = RunClock(100.0, current=0, started_at={0: 108.0})
    assert stage_over_bound(STEPS, started, 110.5) == 0  # from the launch, not its play


def test_a_later_stage_s_clock_runs_from_its_own_play() -> None:
    clock = RunClock(100.0, current=1, started_at={0: 101.0, 1: 150.0}, ended_at={0: 149.0})
    assert stage_over_bound(STEPS, clock, 155.0) is None  # the earlier stages' time is theirs
    assert stage_over_bound(STEPS, clock, 155.5) == 1


def test_between_stages_the_next_stage_s_clock_runs() -> None:
    clock = RunClock(100.0, current=0, started_at={0: 101.0}, ended_at={0: 105.0})
    assert stage_over_bound(STEPS, clock, 110.0) is None
    assert stage_over_bound(STEPS, clock, 110.5) == 1  # stage 1's 5 s from stage 0's end
    after_last = RunClock(100.0, current=2, started_at={2: 101.0}, ended_at={2: 102.0})
    assert stage_over_bound(STEPS, after_last, 10_000.0) is None


@given(st.lists(st.floats(min_value=0.1, max_value=1e6), min_size=1, max_size=8))
def test_the_run_s_bound_is_never_before_the_stages_own(bounds: list[float]) -> None:
    steps = [BatchStep(i, ("h",), b) for i, b in enumerate(bounds)]
    assert run_bound_s(steps) > sum(bounds)
    assert max_attempts(steps) == len(steps)


def test_pending_steps_are_the_hosts_no_run_reached() -> None:
    reached = {0: {"a1", "a2"}, 1: set()}
    assert pending_steps(STEPS, reached) == [
        BatchStep(1, ("a1",), 5.0),
        BatchStep(2, ("s1",), 20.0),
    ]
    assert pending_steps(STEPS, reached, over_bound=1) == [BatchStep(2, ("s1",), 20.0)]
    everything = {0: {"a1", "a2"}, 1: {"a1"}, 2: {"s1"}}
    assert pending_steps(STEPS, everything) == []


def test_each_attempt_retires_its_first_stage() -> None:
    reached = {0: {"a2"}}  # a1 unreachable in stage 0: ansible left it out of the rest
    nxt = next_attempt(STEPS, reached)
    assert nxt.unreached == ("a1",)  # stage 0 is not run again: a1 fails it by name
    assert nxt.again == (BatchStep(1, ("a1",), 5.0), BatchStep(2, ("s1",), 20.0))
    last = next_attempt(list(nxt.again), {})
    assert last.unreached == ("a1",) and last.again == (BatchStep(2, ("s1",), 20.0),)


def test_a_stage_over_its_bound_is_not_run_again_but_the_later_ones_are() -> None:
    nxt = next_attempt(STEPS, {0: {"a1", "a2"}}, over_bound=1)
    assert nxt == Attempt((BatchStep(2, ("s1",), 20.0),))


def test_a_run_that_ended_for_good_runs_nothing_more() -> None:
    assert next_attempt(STEPS, {}, ended=True) == Attempt(())
    assert next_attempt([], {}) == Attempt(())


@given(
    st.lists(
        st.sets(st.sampled_from(["a1", "a2", "a3", "s1"]), min_size=1), min_size=1, max_size=5
    ),
    st.data(),
)
def test_attempts_end_within_as_many_runs_as_stages(
    hosts: list[set[str]], data: st.DataObject
) -> None:
    """Whatever each run reaches, the loop the port runs ends within max_attempts."""
    todo = [BatchStep(i, tuple(sorted(h)), 1.0) for i, h in enumerate(hosts)]
    runs = 0
    while todo:
        runs += 1
        reached = {s.index: data.draw(st.sets(st.sampled_from(s.hosts))) for s in todo}
        todo = list(next_attempt(todo, reached).again)
    assert runs <= max_attempts([BatchStep(i, ("h",), 1.0) for i in range(len(hosts))])
