"""Feed a recorded trace through the policy: the pure core of `hecate replay`."""

from __future__ import annotations

from collections.abc import Sequence

from hecate.core.policy.step import step
from hecate.core.policy.values import Event, PolicyParams, PolicyState, initial_state
from hecate.core.trace import TracePoint


def replay(points: Sequence[TracePoint], params: PolicyParams) -> list[Event]:
    return replay_with_state(points, params)[0]


def replay_with_state(
    points: Sequence[TracePoint], params: PolicyParams
) -> tuple[list[Event], PolicyState]:
    """The events and the policy's state after the last poll. Time is each point's monotonic
    clock (`mono`, else `t`), as in the daemon: a wall-clock step changes nothing."""
    state = initial_state()
    events: list[Event] = []
    for point in points:
        state, new = step(state, point.poll, point.clock, params)
        events.extend(new)
    return events, state
