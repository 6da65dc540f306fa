"""The daemon's decisions, as one pure function: `decide(state, event) -> (state, effects)`.

Every rule about WHEN a flow runs lives here: the policy's verdict on each poll, the startup
gate and its back-off, the shutdown owed while a startup stops and its bounded retries, the
de-duplication of peers' triggers, and the multi-UPS power return (a shutdown a peer's trigger
caused is followed by a startup only once that peer's UPS is back on mains and stable too).
hecate/daemon/service.py only carries the effects out (threads, HTTP, files, logs) and feeds what
happened back as events. Times are the monotonic clock's; nothing here reads a clock.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from hecate.core.policy.rules import own_ups
from hecate.core.policy.step import keep_startup_pending, latch, step
from hecate.core.policy.values import Event as PolicyEvent
from hecate.core.policy.values import PolicyState
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
    Record,
    RetryAt,
    Role,
    Running,
    RunShutdown,
    RunStartup,
    SaveAwaiting,
    ShutdownOwed,
    StartupRequested,
)

STARTUP_RETRY_S = 60.0
SHUTDOWN_RETRY_S = 10.0
MAX_SHUTDOWN_ATTEMPTS = 5
PEER_ASK_S = 10.0  # how often a pending startup asks the peers it waits for


def effects_for(events: Sequence[PolicyEvent], role: Role, running: Running) -> list[Effect]:
    """The flows a batch of policy events (from one poll) calls for.

    - A trigger: the coordinator shuts down (stopping a running startup first); a peer forwards.
    - A new outage while startup runs: startup stops and shutdown takes over at once, since the
      battery has not recovered from the last outage and the cluster is half up.
    - Power back for good: the coordinator starts up (peers leave that to the coordinator).
    """
    effects: list[Effect] = []
    for event in events:
        if event.event == "trigger_shutdown":
            if role == "peer":
                effects.append(ForwardTrigger(event.reason))
                continue
            if running == "startup":
                effects.append(CancelStartup("shutdown triggered during startup"))
            if running != "shutdown":
                effects.append(RunShutdown(f"UPS: {event.reason}"))
                running = "shutdown"
        elif event.event == "on_battery" and running == "startup" and role == "coordinator":
            effects.append(CancelStartup("power failed again during startup"))
            effects.append(RunShutdown("UPS: power failed again during startup"))
            running = "shutdown"
        elif event.event == "startup_allowed" and role == "coordinator" and running is None:
            effects.append(RunStartup(f"power restored: {event.reason}"))
            running = "startup"
    return effects


# --- state ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    role: Role = "coordinator"
    fallback_local_shutdown: bool = False


@dataclass(frozen=True)
class SupervisorState:
    policy: PolicyState = field(default_factory=PolicyState)
    settings: Settings = field(default_factory=Settings)
    running: FlowKind | None = None
    startup_not_before: float = 0.0
    owed: str | None = None  # the reason of a shutdown owed once the running flow stops
    owed_not_before: float = 0.0
    shutdown_attempts: int = 0
    awaiting: frozenset[str] = frozenset()  # peers whose UPS must be back before startup
    peers_asked_at: float | None = None
    ups_back: bool = False  # this instance's UPS is on mains and stable (told to peers)
    ups_detail: str = "no reading yet"


Step = tuple[SupervisorState, list[Effect]]


def decide(state: SupervisorState, event: Event) -> Step:  # noqa: PLR0911 (one per event)
    if isinstance(event, Polled):
        return _polled(state, event)
    if isinstance(event, FlowFinished):
        return _finished(state, event)
    if isinstance(event, PeerTriggered):
        return _peer_triggered(state, event)
    if isinstance(event, StartupRequested):
        return _startup_requested(state, event)
    if isinstance(event, PeerReported):
        return _peer_reported(state, event)
    if isinstance(event, ForwardFailed):
        return _forward_failed(state, event)
    return _tick(state, event.now, [])


def _polled(state: SupervisorState, event: Polled) -> Step:
    policy, verdict = step(state.policy, event.poll, event.now, event.params)
    s = replace(state, policy=policy)
    effects: list[Effect] = []
    for e in verdict:
        counter = "trigger:ups" if e.event == "trigger_shutdown" else None
        effects.append(Record(f"event={e.event} t={e.t:.1f} reason={e.reason}", counter=counter))
    started = False
    for action in effects_for(verdict, s.settings.role, _running(s.running)):
        if isinstance(action, RunShutdown):
            s, more = _want_shutdown(replace(s, policy=latch(s.policy)), action.reason)
            effects += more
        elif isinstance(action, RunStartup):
            s, more = _want_startup(s, action, event.now)
            started = started or any(isinstance(m, RunStartup) for m in more)
            effects += more
        else:
            effects.append(action)
    gate_opened = any(e.event == "startup_allowed" for e in verdict)
    if gate_opened and not started and s.settings.role == "coordinator":
        # The gate opened while a flow ran, during the back-off or while peers' UPSes are
        # not back: ask again at the next poll (with a fresh reading).
        s = replace(s, policy=keep_startup_pending(s.policy))
    back, detail = own_ups(s.policy, event.now, event.params)
    s = replace(s, ups_back=back, ups_detail=detail)
    return _tick(s, event.now, effects)


def _running(kind: FlowKind | None) -> Running:
    if kind is FlowKind.STARTUP:
        return "startup"
    return "shutdown" if kind is FlowKind.SHUTDOWN else None


def _want_shutdown(s: SupervisorState, reason: str) -> Step:
    if s.running is None:
        return replace(s, running=FlowKind.SHUTDOWN, owed=None), [RunShutdown(reason)]
    if s.running is FlowKind.STARTUP:
        # The startup was asked to stop (CancelStartup); the shutdown starts once it has.
        note = Record(f"shutdown owed once the running {s.running.value} stops")
        return replace(s, owed=reason), [ShutdownOwed(reason), note]
    return s, [Record(f"a shutdown is running; {reason!r} needs no second one")]


def _want_startup(s: SupervisorState, action: RunStartup, now: float) -> Step:
    if now < s.startup_not_before:
        left = s.startup_not_before - now
        return s, [Record(f"startup held: retry back-off, {left:.0f}s left", logging.DEBUG)]
    if s.awaiting:
        names = ", ".join(sorted(s.awaiting))
        effects: list[Effect] = [
            Record(f"startup waits for the UPS of {names} to be back on mains and stable")
        ]
        if s.peers_asked_at is None or now - s.peers_asked_at >= PEER_ASK_S:
            effects.append(AskPeers(s.awaiting))
            s = replace(s, peers_asked_at=now)
        return s, effects
    return replace(s, running=FlowKind.STARTUP), [action]


def _tick(s: SupervisorState, now: float, effects: list[Effect]) -> Step:
    """The owed shutdown starts once the worker is free and its retry delay has passed."""
    if s.owed is not None and s.running is None and now >= s.owed_not_before:
        reason = s.owed
        s = replace(s, owed=None, running=FlowKind.SHUTDOWN)
        effects = [*effects, RunShutdown(reason)]
    return s, effects


def _finished(state: SupervisorState, event: FlowFinished) -> Step:
    s = replace(state, running=None)
    effects: list[Effect] = []
    done = event.outcome in (FlowOutcome.SUCCESS, FlowOutcome.PARTIAL)
    if event.kind is FlowKind.STARTUP:
        if done:
            if s.awaiting:
                s = replace(s, awaiting=frozenset())
                effects.append(SaveAwaiting(frozenset()))
        else:
            at = event.now + STARTUP_RETRY_S
            s = replace(s, startup_not_before=at, policy=keep_startup_pending(s.policy))
            effects.append(RetryAt(FlowKind.STARTUP, at))
    elif event.outcome in (FlowOutcome.FAILED, FlowOutcome.ERROR):
        # A shutdown that failed or could not run (lock held by a CLI startup) is retried a
        # few times: the battery is running down either way.
        attempts = s.shutdown_attempts + 1
        if attempts > MAX_SHUTDOWN_ATTEMPTS:
            message = f"shutdown failed {MAX_SHUTDOWN_ATTEMPTS} times; giving up"
            s = replace(s, shutdown_attempts=attempts)
            effects.append(Record(message, logging.ERROR))
        else:
            at = event.now + SHUTDOWN_RETRY_S
            s = replace(s, shutdown_attempts=attempts, owed=event.reason, owed_not_before=at)
            effects.append(RetryAt(FlowKind.SHUTDOWN, at))
    else:
        s = replace(s, shutdown_attempts=0)
    return _tick(s, event.now, effects)


def _peer_triggered(state: SupervisorState, event: PeerTriggered) -> Step:
    if state.settings.role != "coordinator":
        note = Record(f"trigger from {event.peer} ignored: this instance is a peer", logging.WARN)
        return state, [note, Answer("ignored")]
    s = replace(
        state,
        policy=latch(state.policy),
        awaiting=state.awaiting | {event.peer},
        peers_asked_at=None,
    )
    effects: list[Effect] = [
        Record(f"trigger from peer {event.peer}: {event.reason}", counter="trigger:peer"),
        SaveAwaiting(s.awaiting),
    ]
    if s.running is FlowKind.SHUTDOWN or s.owed is not None:
        return s, [*effects, Answer("duplicate")]
    reason = f"peer {event.peer}: {event.reason}"
    if s.running is FlowKind.STARTUP:
        effects.append(CancelStartup("shutdown triggered by a peer during startup"))
    s, more = _want_shutdown(s, reason)
    return s, [*effects, *more, Answer("started")]


def _startup_requested(state: SupervisorState, event: StartupRequested) -> Step:
    if state.settings.role != "coordinator":
        return state, [Answer("refused: this instance is a peer")]
    if state.running is not None:
        return state, [Answer(f"busy ({state.running.value})")]
    if state.policy.on_battery:
        return state, [Answer("refused: the coordinator's UPS is on battery")]
    s = replace(state, running=FlowKind.STARTUP)
    return s, [RunStartup(f"requested by peer {event.peer}"), Answer("started")]


def _peer_reported(state: SupervisorState, event: PeerReported) -> Step:
    peer = event.intent
    keys = {peer.name, f"@{peer.address}"} & state.awaiting  # "@host:port": name not known
    if not keys:
        return state, []
    if peer.ups is None or not peer.ups.back:
        waits = peer.ups.detail if peer.ups is not None else "it does not report its UPS"
        return state, [Record(f"peer {peer.name}'s UPS is not back yet: {waits}")]
    s = replace(state, awaiting=state.awaiting - keys)
    note = Record(f"peer {peer.name}'s UPS {peer.ups.name} is back: {peer.ups.detail}")
    return s, [note, SaveAwaiting(s.awaiting)]


def _forward_failed(state: SupervisorState, event: ForwardFailed) -> Step:
    if not state.settings.fallback_local_shutdown:
        note = Record("fallback_local_shutdown is off, nothing more to do", logging.ERROR)
        return state, [note]
    note = Record("coordinator unreachable: running the shutdown locally", logging.ERROR)
    s, more = _want_shutdown(state, f"{event.reason} (coordinator unreachable)")
    return s, [note, *more]
