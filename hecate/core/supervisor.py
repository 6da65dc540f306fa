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

from hecate.core.feeds import FeedSettings
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
    feeds: FeedSettings | None = None  # power.feeds set: a trigger may stop only some nodes


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
    # Power feeds (issue 28): the feeds whose UPS triggered, the nodes of the partial shutdown
    # running or done (None: none, or the whole cluster), the owed shutdown's nodes.
    lost_feeds: frozenset[str] = frozenset()
    scope: tuple[str, ...] | None = None
    owed_nodes: tuple[str, ...] | None = None


Step = tuple[SupervisorState, list[Effect]]
Nodes = tuple[str, ...] | None  # a partial flow's nodes; None: the whole cluster


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
    # A partial shutdown running does not make this UPS's trigger a duplicate: it may escalate.
    partial_running = s.running is FlowKind.SHUTDOWN and s.scope is not None
    for action in effects_for(
        verdict, s.settings.role, _running(None if partial_running else s.running)
    ):
        if isinstance(action, RunShutdown):
            s, nodes, notes = _scope(replace(s, policy=latch(s.policy)), None)
            effects += notes
            if nodes == ():  # no node loses power: the outage is handled, nothing to start after
                s = replace(s, policy=replace(s.policy, startup_pending=False))
            else:
                s, more = _want_shutdown(s, action.reason, nodes)
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
    if _partial_waits(s) and (
        s.peers_asked_at is None or event.now - s.peers_asked_at >= PEER_ASK_S
    ):
        s = replace(s, peers_asked_at=event.now)  # is the lost feed's UPS back?
        effects.append(AskPeers(s.awaiting))
    return _tick(s, event.now, effects)


def _scope(s: SupervisorState, instance: str | None) -> tuple[SupervisorState, Nodes, list[Effect]]:
    """The nodes a trigger from `instance` (None: this instance's own UPS) shuts down: None
    for the whole cluster (no power.feeds, or hecate.core.feeds says so), () for none."""
    feeds = s.settings.feeds
    if feeds is None:
        return s, None, []
    lost, loss = feeds.lost(instance or feeds.own_name, s.lost_feeds)
    s = replace(s, lost_feeds=lost)
    what = ", ".join(loss.stop) if loss.scope != "full" else "the whole cluster"
    notes: list[Effect] = [
        Record(f"feeds lost: {', '.join(sorted(lost)) or 'none'}: {what} ({loss.why})")
    ]
    notes += [Record(f"partial shutdown unsafe: {r}", logging.WARN) for r in loss.refusals]
    return s, loss.nodes, notes


def _widens(s: SupervisorState, nodes: Nodes) -> bool:
    """Whether a shutdown of `nodes` goes beyond the partial one running or owed (escalation:
    a second feed failing during a partial shutdown)."""
    current = s.owed_nodes if s.owed is not None else s.scope
    if s.owed is None and s.running is not FlowKind.SHUTDOWN and s.scope is None:
        return True  # nothing shut down: any shutdown is new
    return current is not None and (nodes is None or not set(nodes) <= set(current))


def _partial_waits(s: SupervisorState) -> bool:
    """A partial shutdown is done and waits for its feeds' UPSes alone (this instance's own
    UPS is not in an outage): the peers are asked, not this UPS's gate."""
    own = s.policy.latched or s.policy.startup_pending or s.policy.on_battery
    return s.scope is not None and s.running is None and bool(s.awaiting) and not own


def _running(kind: FlowKind | None) -> Running:
    if kind is FlowKind.STARTUP:
        return "startup"
    return "shutdown" if kind is FlowKind.SHUTDOWN else None


def _want_shutdown(s: SupervisorState, reason: str, nodes: Nodes = None) -> Step:
    if s.running is None:
        s = replace(s, running=FlowKind.SHUTDOWN, owed=None, owed_nodes=None, scope=nodes)
        return s, [RunShutdown(reason, nodes)]
    if s.running is FlowKind.STARTUP:
        # The startup was asked to stop (CancelStartup); the shutdown starts once it has.
        note = Record(f"shutdown owed once the running {s.running.value} stops")
        return replace(s, owed=reason, owed_nodes=nodes), [ShutdownOwed(reason, nodes), note]
    if _widens(s, nodes):
        # A partial shutdown runs and more nodes lose power: the wider one follows it at once
        # (a running shutdown is never cut short; it stops nodes the wider one stops too).
        what = ", ".join(nodes) if nodes is not None else "the whole cluster"
        note = Record(f"escalation: {what} once the running partial shutdown ends", logging.WARN)
        return replace(s, owed=reason, owed_nodes=nodes), [ShutdownOwed(reason, nodes), note]
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
    return replace(s, running=FlowKind.STARTUP), [RunStartup(action.reason, s.scope)]


def _tick(s: SupervisorState, now: float, effects: list[Effect]) -> Step:
    """The owed shutdown starts once the worker is free and its retry delay has passed."""
    if s.owed is not None and s.running is None and now >= s.owed_not_before:
        reason, nodes = s.owed, s.owed_nodes
        s = replace(s, owed=None, owed_nodes=None, running=FlowKind.SHUTDOWN, scope=nodes)
        effects = [*effects, RunShutdown(reason, nodes)]
    return s, effects


def _finished(state: SupervisorState, event: FlowFinished) -> Step:
    s = replace(state, running=None)
    effects: list[Effect] = []
    done = event.outcome in (FlowOutcome.SUCCESS, FlowOutcome.PARTIAL)
    if event.kind is FlowKind.STARTUP:
        if done:
            s = replace(s, scope=None, lost_feeds=frozenset())
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
            s = replace(
                s,
                shutdown_attempts=attempts,
                owed=event.reason,
                owed_nodes=s.scope,
                owed_not_before=at,
            )
            effects.append(RetryAt(FlowKind.SHUTDOWN, at))
    else:
        s = replace(s, shutdown_attempts=0)
    return _tick(s, event.now, effects)


def _peer_triggered(state: SupervisorState, event: PeerTriggered) -> Step:
    if state.settings.role != "coordinator":
        note = Record(f"trigger from {event.peer} ignored: this instance is a peer", logging.WARN)
        return state, [note, Answer("ignored")]
    s, nodes, notes = _scope(state, event.peer)
    trigger = Record(f"trigger from peer {event.peer}: {event.reason}", counter="trigger:peer")
    if nodes == ():
        return s, [trigger, *notes, Answer("ignored: no node loses power")]
    s = replace(
        s,
        # a partial shutdown leaves this instance's own UPS watch as it is: its own outage
        # still triggers (and escalates); the startup follows the lost feed's UPS (_peer_reported)
        policy=s.policy if nodes is not None else latch(s.policy),
        awaiting=s.awaiting | {event.peer},
        peers_asked_at=None,
    )
    effects: list[Effect] = [trigger, *notes, SaveAwaiting(s.awaiting)]
    busy = s.running is FlowKind.SHUTDOWN or s.owed is not None or s.scope is not None
    if busy and not _widens(s, nodes):
        return s, [*effects, Answer("duplicate")]
    reason = f"peer {event.peer}: {event.reason}"
    if s.running is FlowKind.STARTUP:
        effects.append(CancelStartup("shutdown triggered by a peer during startup"))
    s, more = _want_shutdown(s, reason, nodes)
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
    effects: list[Effect] = [note, SaveAwaiting(s.awaiting)]
    feeds = s.settings.feeds
    back = feeds.feed_of(peer.name) if feeds is not None else None
    if back is not None:
        s = replace(s, lost_feeds=s.lost_feeds - {back})
    own = s.policy.latched or s.policy.startup_pending or s.policy.on_battery
    if s.scope is not None and not s.awaiting and s.running is None and not own:
        # the lost feed's mains is stable again: its nodes start (and are uncordoned)
        s = replace(s, running=FlowKind.STARTUP)
        effects.append(RunStartup(f"feed back: peer {peer.name}'s UPS", s.scope))
    return s, effects


def _forward_failed(state: SupervisorState, event: ForwardFailed) -> Step:
    if not state.settings.fallback_local_shutdown:
        note = Record("fallback_local_shutdown is off, nothing more to do", logging.ERROR)
        return state, [note]
    note = Record("coordinator unreachable: running the shutdown locally", logging.ERROR)
    s, more = _want_shutdown(state, f"{event.reason} (coordinator unreachable)")
    return s, [note, *more]
