"""The Ansible batch planner (pure): the scheduling of stages that share one ansible-playbook.

Which stages share a run is the plan's to say (`hecate.core.plan_runs.playbook_batches`:
playbook stages in a row). While such a run goes on, and after it, this module decides:

* each stage's time bound (:func:`stage_over_bound`): the port stops a run whose current stage
  is over its own bound, so one stuck stage never eats the budget of the poweroffs after it.
  The first stage's bound covers the process start-up; between two stages (the play that clears
  the host errors) the next stage's clock runs; the whole run has its own, looser bound
  (:func:`run_bound_s`), never before the stages' own;
* what runs again (:func:`next_attempt`): every host of a stage that no run reached (ansible
  dropped it after it was unreachable in an earlier play, the run ended early, or was stopped at
  a stage over its bound) gets the stage again, in one more run of the remaining stages. Each
  attempt retires its first stage (whatever that stage did not reach is failed), so there are at
  most as many attempts as stages (:func:`max_attempts`).

The port (hecate/adapters/ansible/) runs ansible-playbook, feeds what it saw in here, and judges
the results. A stage's hosts are the hosts its plays run on, as Python knows them (the request's
limit within the group its playbook targets): nothing here reads an Ansible host pattern.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

RUN_BOUND_MARGIN_S = 30.0


@dataclass(frozen=True)
class BatchStep:
    """One stage of a batch: its index (stable across attempts), the hosts its plays run on,
    its own time bound."""

    index: int
    hosts: tuple[str, ...]
    timeout_s: float


@dataclass(frozen=True)
class RunClock:
    """What the port's clock (monotonic) saw of one run so far."""

    launched: float
    current: int | None = None  # the stage whose play runs now (plays run in order)
    started_at: Mapping[int, float] = field(default_factory=dict)  # its first play began
    ended_at: Mapping[int, float] = field(default_factory=dict)  # its clearing play began


def run_bound_s(steps: Sequence[BatchStep]) -> float:
    """The whole run's own bound: the stages' bounds added up, and a margin."""
    return sum(step.timeout_s for step in steps) + RUN_BOUND_MARGIN_S


def max_attempts(steps: Sequence[BatchStep]) -> int:
    """Each attempt retires its first stage: at most one attempt per stage."""
    return len(steps)


def stage_over_bound(steps: Sequence[BatchStep], clock: RunClock, now: float) -> int | None:
    """The stage whose own bound the run is over at `now` (the port stops the run), or None."""
    order = [step.index for step in steps]
    bounds = {step.index: step.timeout_s for step in steps}
    current = clock.current
    if current is None:  # the first stage's bound covers the process start-up
        index, since = order[0], clock.launched
    elif current in clock.ended_at:  # between stages: the next one's clock runs
        later = order[order.index(current) + 1 :]
        if not later:
            return None
        index, since = later[0], clock.ended_at[current]
    else:
        index = current
        since = clock.launched if index == order[0] else clock.started_at[index]
    return index if now - since > bounds[index] else None


def pending_steps(
    steps: Sequence[BatchStep],
    reached: Mapping[int, Collection[str]],
    *,
    over_bound: int | None = None,
) -> list[BatchStep]:
    """The stages again, each with only the hosts no run reached (`reached`: the hosts a stage's
    plays reported on), stages with none left dropped; the stage stopped `over_bound` is not
    run again (it is `timeout`)."""
    again: list[BatchStep] = []
    for step in steps:
        if step.index == over_bound:
            continue
        seen = reached.get(step.index, ())
        missing = tuple(host for host in step.hosts if host not in seen)
        if missing:
            again.append(BatchStep(step.index, missing, step.timeout_s))
    return again


@dataclass(frozen=True)
class Attempt:
    """What follows one run: the stages to run again (only their hosts left) and the retired
    first stage's hosts that no run reached (failed)."""

    again: tuple[BatchStep, ...]
    unreached: tuple[str, ...] = ()


def next_attempt(
    todo: Sequence[BatchStep],
    reached: Mapping[int, Collection[str]],
    *,
    over_bound: int | None = None,
    ended: bool = False,
) -> Attempt:
    """After a run of `todo`: nothing more when it `ended` for good (cancelled, or the whole
    run's bound); otherwise the pending stages but the first, which is retired."""
    if ended or not todo:
        return Attempt(())
    pending = pending_steps(todo, reached, over_bound=over_bound)
    first = todo[0].index
    unreached = next((step.hosts for step in pending if step.index == first), ())
    return Attempt(tuple(step for step in pending if step.index != first), unreached)
