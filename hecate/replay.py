"""Feed a recorded trace through the policy: the pure core of `hecate replay`."""

from __future__ import annotations

from collections.abc import Sequence

from hecate.policy import Event, PolicyParams, initial_state, step
from hecate.trace import TracePoint


def replay(points: Sequence[TracePoint], params: PolicyParams) -> list[Event]:
    state = initial_state()
    events: list[Event] = []
    for point in points:
        state, new = step(state, point.poll, point.t, params)
        events.extend(new)
    return events
