"""The supervisor's rules as tables, without threads or clocks, and as properties over any
sequence of events (hypothesis)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hecate.core.peers import PeerIntent, PeerUps
from hecate.core.policy.rules import own_ups
from hecate.core.policy.values import PolicyParams, PolicyState
from hecate.core.readings import CommError, Poll, UpsReading, parse_status
from hecate.core.supervisor import (
    MAX_SHUTDOWN_ATTEMPTS,
    PEER_ASK_S,
    SHUTDOWN_RETRY_S,
    STARTUP_RETRY_S,
    Settings,
    SupervisorState,
    decide,
)
from hecate.core.supervisor_vocabulary import (
    Answer,
    AskPeers,
    CancelStartup,
    Effect,
    Event,
    FlowFinished,
    FlowKind,
    FlowOutcome,
    ForwardFailed,
    ForwardTrigger,
    PeerReported,
    PeerTriggered,
    Polled,
    RetryAt,
    RunShutdown,
    RunStartup,
    SaveAwaiting,
    ShutdownOwed,
    StartupRequested,
    Tick,
)

PARAMS = PolicyParams(
    threshold_s=330.0,
    debounce_polls=2,
    comm_loss_dead_s=20.0,
    power_stable_s=10.0,
    min_charge_pct=50.0,
    outage_clear_s=10.0,
)
COORDINATOR = SupervisorState()
PEER = SupervisorState(settings=Settings(role="peer"))


def r(status: str, runtime: float = 900, charge: float = 90) -> UpsReading:
    return UpsReading(parse_status(status), runtime, charge)


class Run:
    """Feeds events in order; `now` advances with each poll."""

    def __init__(self, state: SupervisorState = COORDINATOR, now: float = 1000.0) -> None:
        self.state = state
        self.now = now

    def feed(self, event: Event) -> list[Effect]:
        self.state, effects = decide(self.state, event)
        return effects

    def poll(self, reading: Poll, dt: float = 5.0) -> list[Effect]:
        self.now += dt
        return self.feed(Polled(reading, self.now, PARAMS))

    def finish(self, kind: FlowKind, outcome: FlowOutcome, reason: str = "x") -> list[Effect]:
        return self.feed(FlowFinished(kind, outcome, reason, self.now))

    def shut_down_by_ups(self) -> list[Effect]:
        """Two critical polls (debounce 2): the coordinator's own UPS triggers."""
        self.poll(r("OB DISCHRG", 100))
        return self.poll(r("OB DISCHRG", 100))


def kinds(effects: Iterable[Effect]) -> list[str]:
    return [type(e).__name__ for e in effects if type(e).__name__ not in ("Record", "RetryAt")]


def test_a_ups_trigger_shuts_down_once_on_a_coordinator_and_forwards_on_a_peer() -> None:
    run = Run()
    assert kinds(run.shut_down_by_ups()) == ["RunShutdown"]
    assert run.state.running is FlowKind.SHUTDOWN and run.state.policy.latched
    assert kinds(run.poll(r("OB DISCHRG", 90))) == []  # latched: no second shutdown
    peer = Run(PEER)
    effects = peer.shut_down_by_ups()
    assert [type(e) for e in effects if isinstance(e, ForwardTrigger | RunShutdown)] == [
        ForwardTrigger
    ]
    assert peer.state.running is None  # the coordinator runs it


def test_a_new_outage_during_startup_cancels_it_and_the_shutdown_is_owed_until_it_stops() -> None:
    run = Run(replace(COORDINATOR, running=FlowKind.STARTUP))
    effects = run.poll(r("OB DISCHRG", 800, 70))
    assert kinds(effects) == ["CancelStartup", "ShutdownOwed"]
    assert run.state.owed is not None and run.state.running is FlowKind.STARTUP
    assert kinds(run.feed(Tick(run.now + 100))) == []  # the startup has not stopped yet
    effects = run.finish(FlowKind.STARTUP, FlowOutcome.ABORTED)
    assert kinds(effects) == ["RunShutdown"]  # at once: the worker is free
    assert RetryAt(FlowKind.STARTUP, run.now + STARTUP_RETRY_S) in effects
    assert run.state.owed is None and run.state.running is FlowKind.SHUTDOWN


def test_power_back_while_the_shutdown_runs_starts_up_after_it() -> None:
    run = Run()
    run.shut_down_by_ups()
    for _ in range(4):  # mains back and stable while the shutdown still runs
        assert kinds(run.poll(r("OL", 900, 90), dt=11)) == []
    assert run.state.policy.startup_pending  # the gate opened: asked again at the next poll
    run.finish(FlowKind.SHUTDOWN, FlowOutcome.SUCCESS)
    assert kinds(run.poll(r("OL", 900, 90))) == ["RunStartup"]
    assert run.state.running is FlowKind.STARTUP


@pytest.mark.parametrize(
    "outcome", [FlowOutcome.FAILED, FlowOutcome.ABORTED, FlowOutcome.REFUSED, FlowOutcome.ERROR]
)
def test_a_startup_that_did_not_finish_is_retried_after_the_back_off(outcome: FlowOutcome) -> None:
    run = Run(replace(COORDINATOR, running=FlowKind.STARTUP, policy=PolicyState()))
    run.poll(r("OL"))
    run.finish(FlowKind.STARTUP, outcome)
    assert run.state.policy.startup_pending
    held = [kinds(run.poll(r("OL"), dt=11)) for _ in range(5)]  # 55 s < 60 s back-off
    assert held == [[]] * 5
    assert kinds(run.poll(r("OL"), dt=11)) == ["RunStartup"]


@pytest.mark.parametrize("outcome", [FlowOutcome.SUCCESS, FlowOutcome.PARTIAL])
def test_a_finished_startup_is_not_retried(outcome: FlowOutcome) -> None:
    run = Run(replace(COORDINATOR, running=FlowKind.STARTUP))
    assert kinds(run.finish(FlowKind.STARTUP, outcome)) == []
    assert not run.state.policy.startup_pending
    assert kinds(run.poll(r("OL"), dt=100)) == []


def test_a_failed_shutdown_is_retried_a_bounded_number_of_times() -> None:
    run = Run(replace(COORDINATOR, running=FlowKind.SHUTDOWN))
    for attempt in range(1, MAX_SHUTDOWN_ATTEMPTS + 1):
        effects = run.finish(FlowKind.SHUTDOWN, FlowOutcome.FAILED, "UPS: low")
        assert RetryAt(FlowKind.SHUTDOWN, run.now + SHUTDOWN_RETRY_S) in effects
        assert run.state.owed == "UPS: low" and run.state.shutdown_attempts == attempt
        assert kinds(run.feed(Tick(run.now + SHUTDOWN_RETRY_S - 1))) == []  # not yet
        run.now += SHUTDOWN_RETRY_S
        assert run.feed(Tick(run.now)) == [RunShutdown("UPS: low")]
    effects = run.finish(FlowKind.SHUTDOWN, FlowOutcome.FAILED, "UPS: low")
    assert run.state.owed is None and kinds(effects) == []  # given up, and said so
    run2 = Run(replace(COORDINATOR, running=FlowKind.SHUTDOWN, shutdown_attempts=3))
    run2.finish(FlowKind.SHUTDOWN, FlowOutcome.PARTIAL)
    assert run2.state.shutdown_attempts == 0  # a shutdown that ran resets the count


def answer(effects: list[Effect]) -> str:
    return next(e.text for e in effects if isinstance(e, Answer))


def test_peer_triggers_are_de_duplicated() -> None:
    run = Run()
    first = run.feed(PeerTriggered("peer-a", "LB", run.now))
    assert answer(first) == "started" and RunShutdown("peer peer-a: LB") in first
    assert run.state.policy.latched and run.state.awaiting == {"peer-a"}
    assert answer(run.feed(PeerTriggered("peer-a", "LB", run.now))) == "duplicate"
    assert answer(run.feed(PeerTriggered("peer-b", "LB", run.now))) == "duplicate"
    assert run.state.awaiting == {"peer-a", "peer-b"}  # the startup waits for both UPSes
    during = Run(replace(COORDINATOR, running=FlowKind.STARTUP))
    effects = during.feed(PeerTriggered("peer-a", "LB", during.now))
    assert kinds(effects) == ["SaveAwaiting", "CancelStartup", "ShutdownOwed", "Answer"]
    assert answer(during.feed(PeerTriggered("peer-a", "LB", during.now))) == "duplicate"
    assert answer(Run(PEER).feed(PeerTriggered("x", "LB", 0.0))) == "ignored"


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (COORDINATOR, "started"),
        (replace(COORDINATOR, running=FlowKind.SHUTDOWN), "busy (shutdown)"),
        (replace(COORDINATOR, running=FlowKind.STARTUP), "busy (startup)"),
        (PEER, "refused: this instance is a peer"),
        (
            replace(COORDINATOR, policy=PolicyState(on_battery=True)),
            "refused: the coordinator's UPS is on battery",
        ),
    ],
)
def test_a_peers_startup_request(state: SupervisorState, expected: str) -> None:
    run = Run(state)
    effects = run.feed(StartupRequested("peer-a", 0.0))
    assert answer(effects) == expected
    assert (RunStartup("requested by peer peer-a") in effects) is (expected == "started")


def test_an_unreachable_coordinator_falls_back_only_when_configured() -> None:
    on = Run(replace(PEER, settings=Settings("peer", fallback_local_shutdown=True)))
    assert kinds(on.feed(ForwardFailed("LB", 0.0))) == ["RunShutdown"]
    off = Run(PEER)
    assert kinds(off.feed(ForwardFailed("LB", 0.0))) == []


def peer_report(name: str, back: bool, detail: str = "") -> PeerReported:
    ups = PeerUps(f"ups-{name}", back, detail or ("stable" if back else "mains to return"))
    return PeerReported(PeerIntent("127.0.0.1:1", name, "normal", 0.0, None, ups), 0.0)


def test_after_a_peers_trigger_the_startup_waits_for_that_peers_ups_too() -> None:
    run = Run()
    run.poll(r("OL"))
    run.feed(PeerTriggered("peer-a", "OB LB", run.now))
    run.finish(FlowKind.SHUTDOWN, FlowOutcome.SUCCESS)
    assert kinds(run.poll(r("OL"))) == []  # the latch restarted the mains clock
    first = run.poll(r("OL"), dt=11)  # the own gate opens (mains stable 11 s >= 10 s)
    assert kinds(first) == ["AskPeers"] and AskPeers(frozenset({"peer-a"})) in first
    assert run.state.policy.startup_pending  # asked again at every poll
    assert kinds(run.poll(r("OL"), dt=5)) == []  # asked 5 s ago: not again yet
    assert kinds(run.poll(r("OL"), dt=PEER_ASK_S)) == ["AskPeers"]
    assert kinds(run.feed(peer_report("peer-a", back=False))) == []  # its mains are still out
    assert kinds(run.feed(peer_report("peer-b", back=True))) == []  # not the one waited for
    assert run.state.awaiting == {"peer-a"}
    assert run.feed(peer_report("peer-a", back=True))[-1] == SaveAwaiting(frozenset())
    assert kinds(run.poll(r("OL"))) == ["RunStartup"]


def test_an_older_peer_that_does_not_report_its_ups_keeps_the_startup_waiting() -> None:
    run = Run(replace(COORDINATOR, awaiting=frozenset({"peer-a"})))
    old = PeerReported(PeerIntent("127.0.0.1:1", "peer-a", "normal", 0.0, None, None), 0.0)
    run.feed(old)
    assert run.state.awaiting == {"peer-a"}  # fail closed; `hecate startup --execute` overrides


def test_a_successful_startup_forgets_the_peers_it_waited_for() -> None:
    run = Run(replace(COORDINATOR, running=FlowKind.STARTUP, awaiting=frozenset({"peer-a"})))
    assert run.finish(FlowKind.STARTUP, FlowOutcome.SUCCESS) == [SaveAwaiting(frozenset())]


@pytest.mark.parametrize(
    ("policy", "now", "back", "detail"),
    [
        (PolicyState(on_battery=True, mains_since=None), 100.0, False, "mains to return"),
        (PolicyState(comm_lost=True), 100.0, False, "the UPS does not answer"),
        (PolicyState(mains_since=95.0), 100.0, False, "mains stable 5s < 10s"),
        (
            PolicyState(mains_since=50.0, startup_pending=True, startup_wait="charge 20% < 50%"),
            100.0,
            False,
            "charge 20% < 50%",
        ),
        (PolicyState(mains_since=50.0), 100.0, True, "on mains, stable 50s"),
    ],
)
def test_what_an_instance_tells_peers_about_its_ups(
    policy: PolicyState, now: float, back: bool, detail: str
) -> None:
    assert own_ups(policy, now, PARAMS) == (back, detail)


# --- properties -------------------------------------------------------------------------------

READINGS = st.one_of(
    st.builds(
        r,
        st.sampled_from(["OL", "OL CHRG", "OB DISCHRG", "OB DISCHRG LB", "OL FSD"]),
        st.floats(0, 3000),
        st.floats(0, 100),
    ),
    st.just(CommError("connection refused")),
)
STEPS = st.one_of(
    st.tuples(st.just("poll"), READINGS, st.floats(0.5, 40)),
    st.tuples(st.just("finish"), st.sampled_from(list(FlowOutcome)), st.just(0.0)),
    st.tuples(st.just("trigger"), st.sampled_from(["peer-a", "peer-b"]), st.just(0.0)),
    st.tuples(st.just("request"), st.just("peer-a"), st.just(0.0)),
    st.tuples(st.just("report"), st.booleans(), st.just(0.0)),
    st.tuples(st.just("tick"), st.none(), st.floats(0, 30)),
    st.tuples(st.just("forward_failed"), st.none(), st.just(0.0)),
)


def event_for(  # noqa: PLR0911 (one per kind of event)
    state: SupervisorState, kind: str, arg: object, now: float
) -> Event:
    if kind == "poll":
        assert isinstance(arg, UpsReading | CommError)
        return Polled(arg, now, PARAMS)
    if kind == "finish" and state.running is not None:
        assert isinstance(arg, FlowOutcome)
        return FlowFinished(state.running, arg, "r", now)
    if kind == "trigger":
        return PeerTriggered(str(arg), "LB", now)
    if kind == "request":
        return StartupRequested("peer-a", now)
    if kind == "report":
        return peer_report("peer-a", back=bool(arg))
    if kind == "forward_failed":
        return ForwardFailed("LB", now)
    return Tick(now)


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(STEPS, max_size=60),
    role=st.sampled_from(["coordinator", "peer"]),
    fallback=st.booleans(),
)
def test_properties_over_any_sequence_of_events(
    steps: list[tuple[str, object, float]], role: str, fallback: bool
) -> None:
    state = SupervisorState(
        settings=Settings("peer" if role == "peer" else "coordinator", fallback)
    )
    now = 1000.0
    for kind, arg, dt in steps:
        now += dt
        event = event_for(state, kind, arg, now)
        before = state
        state, effects = decide(state, event)
        runs = [e for e in effects if isinstance(e, RunShutdown | RunStartup)]
        # One flow at a time: a flow starts only when none runs (or the one running just ended).
        assert len(runs) <= 1
        if runs and not isinstance(event, FlowFinished):
            assert before.running is None
        if runs:
            assert state.running is (
                FlowKind.SHUTDOWN if isinstance(runs[0], RunShutdown) else FlowKind.STARTUP
            )
        # No startup while on battery.
        if any(isinstance(e, RunStartup) for e in effects):
            assert not state.policy.on_battery
        # A shutdown once owed is never dropped until one starts.
        started = any(isinstance(e, RunShutdown) for e in effects)
        if before.owed is not None and not started:
            assert state.owed is not None
        if any(isinstance(e, ShutdownOwed) for e in effects):
            assert state.owed is not None
        if (
            isinstance(event, FlowFinished)
            and event.kind is FlowKind.SHUTDOWN
            and event.outcome in (FlowOutcome.FAILED, FlowOutcome.ERROR)
        ):
            gave_up = state.shutdown_attempts > MAX_SHUTDOWN_ATTEMPTS
            assert state.owed is not None or started or gave_up
        # A peer never starts the cluster on its own and never runs a peer's trigger.
        if role == "peer":
            assert not any(isinstance(e, RunStartup | CancelStartup) for e in effects)
        # A startup waits for every peer whose trigger shut the cluster down.
        if any(isinstance(e, RunStartup) for e in effects) and not isinstance(
            event, StartupRequested
        ):
            assert not state.awaiting


def test_a_peer_known_only_by_address_is_cleared_by_its_address() -> None:
    # startup-awaits.json was unreadable: the daemon waits for every peer_hosts entry
    run = Run(replace(COORDINATOR, awaiting=frozenset({"@127.0.0.1:1", "@127.0.0.1:2"})))
    run.feed(peer_report("peer-a", back=True))  # peer_report answers from 127.0.0.1:1
    assert run.state.awaiting == {"@127.0.0.1:2"}
