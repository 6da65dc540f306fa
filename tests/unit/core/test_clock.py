"""Monotonic time (issue #11): a wall-clock step changes no interval, gaps are not observed, and
the daemon's traces replay to the daemon's own decisions, across a clock step."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from hecate.config.model import HecateConfig
from hecate.core.clock import Clock, as_clock
from hecate.core.policy.step import step
from hecate.core.policy.values import initial_state, params_from_config
from hecate.core.readings import CommError, Poll
from hecate.core.replay import replay
from hecate.core.trace import load_trace, parse_trace_lines
from hecate.daemon.service import Daemon
from hecate.errors import TraceError
from tests.unit.daemon.test_daemon import World, r


class SteppingClock:
    """Wall and monotonic time kept apart, so a test can step the wall clock alone."""

    def __init__(self) -> None:
        self.wall = 1_700_000_000.0
        self.mono = 500.0

    def advance(self, dt: float) -> None:
        self.wall += dt
        self.mono += dt

    def port(self) -> Clock:
        return Clock(wall=lambda: self.wall, monotonic=lambda: self.mono)


def _daemon(tmp_path: Path, clock: SteppingClock) -> tuple[World, Daemon]:
    world = World(tmp_path, shutdown={"ups_mode": "cluster-only"})
    daemon = Daemon(
        world.config,
        reader=lambda: world.reading,
        context_factory=world.context,
        clock=clock.port(),
    )
    return world, daemon


def _poll(
    world: World, daemon: Daemon, clock: SteppingClock, reading: Poll, dt: float
) -> list[str]:
    clock.advance(dt)
    world.reading = reading
    actions = daemon.poll_once()
    assert daemon.wait_idle(10)
    return [type(a).__name__ for a in actions]


def test_a_wall_clock_step_forward_does_not_make_mains_stable(tmp_path: Path) -> None:
    clock = SteppingClock()
    world, daemon = _daemon(tmp_path, clock)
    assert _poll(world, daemon, clock, r("OB DISCHRG", 200), 5) == []
    assert _poll(world, daemon, clock, r("OB DISCHRG", 190), 5) == ["RunShutdown"]
    assert _poll(world, daemon, clock, r("OL CHRG", 900, 80), 5) == []
    clock.wall += 3600  # NTP steps the wall clock an hour forward
    # power_stable_seconds is 10 in World: 5 s of observed mains is not enough
    assert _poll(world, daemon, clock, r("OL CHRG", 900, 80), 5) == []
    assert _poll(world, daemon, clock, r("OL CHRG", 900, 80), 5) == ["RunStartup"]


def test_a_wall_clock_step_back_is_replayable_and_replays_the_same(tmp_path: Path) -> None:
    clock = SteppingClock()
    world, daemon = _daemon(tmp_path, clock)
    seen: list[list[str]] = []
    seq: list[tuple[Poll, float]] = [
        (r("OL", 1800), 5),
        (r("OB DISCHRG", 900), 5),
        (r("OB DISCHRG", 800), 5),
        (CommError("connection refused"), 5),
        (r("OB DISCHRG", 200), 5),
        (r("OB DISCHRG", 190), 5),
    ]
    for i, (reading, dt) in enumerate(seq):
        if i == 3:
            clock.wall -= 7200  # the wall clock steps two hours back mid-outage
        seen.append(_poll(world, daemon, clock, reading, dt))
    assert seen[-1] == ["RunShutdown"]
    trace = daemon.recorder.current
    assert trace is not None
    lines = trace.read_text().splitlines()
    assert any(json.loads(line)["t"] < 0 for line in lines), "the step must be in the trace"
    points = load_trace(trace)  # replay accepts it
    assert [p.mono for p in points] == [0.0, 5.0, 10.0, 15.0, 20.0]
    events = replay(points, daemon.params)
    triggers = [e.t for e in events if e.event == "trigger_shutdown"]
    assert triggers == [20.0]  # the daemon's own decision, on the same monotonic time


def test_a_gap_much_longer_than_the_poll_interval_is_not_observed() -> None:
    params = params_from_config(HecateConfig(), 330)
    assert params.max_gap_s == 20  # 3 x 5 s + 5 s timeout
    state = initial_state(startup_pending=True)
    names = []
    for t in (0.0, 5.0, 300.0, 315.0, 330.0, 345.0, 360.0):  # suspended between 5 and 300
        state, events = step(state, r("OL", 900, 80), t, params)
        names.append([(e.t, e.event) for e in events])
    # mains from 0 would be stable at 60; the gap restarts the clock at 300
    assert names[2] == [(300.0, "observation_gap")]
    assert names[3:6] == [[], [], []]
    assert names[6] == [(360.0, "startup_allowed")]


def test_as_clock() -> None:
    assert as_clock(time.time) == Clock()
    fake = as_clock(lambda: 5.0)
    assert fake.wall() == fake.monotonic() == 5.0


def test_mono_must_not_go_back_but_t_may() -> None:
    points = parse_trace_lines(
        [
            '{"t": 0, "mono": 0, "status": "OL"}',
            '{"t": -3600, "mono": 5, "status": "OB"}',
            '{"t": -3595, "mono": 10, "status": "OB"}',
        ]
    )
    assert [p.clock for p in points] == [0, 5, 10]
    with pytest.raises(TraceError, match="mono=4"):
        parse_trace_lines(
            ['{"t": 0, "mono": 5, "status": "OL"}', '{"t": 9, "mono": 4, "status": "OL"}']
        )
    with pytest.raises(TraceError, match="every line"):
        parse_trace_lines(['{"t": 0, "mono": 5, "status": "OL"}', '{"t": 9, "status": "OL"}'])
