"""When a poll is worth a message, and how many messages go out: pure, time passed in.

`watch` turns each poll's facts into notices: an outage episode (as the policy defines it: a
flicker within `ups.outage_clear_seconds` is the same episode) gives one `on_battery` when it
begins and one `power_restored` when it is over, however much the UPS flaps in between; the UPS
unreadable, the battery to replace and a long startup wait give one message per stretch.
`admit` is the last gate: a notice whose fold key was sent within `FOLD_S` is folded (counted,
said in the next message; not `on_battery`/`power_restored`, which alternate by construction),
and beyond `max_per_hour` only critical notices go out (a shutdown is always told).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from hecate.core import notify_events as ne
from hecate.core.notify_events import Notice, Where

EPISODE_EVENTS = frozenset({"on_battery", "power_restored"})  # folded by the episode itself
FOLD_S = 600.0  # the same fold key sent again within this: folded
WEAK_BATTERY_RATIO = 0.8  # as the HecateBatteryBelowClaim alert
COORDINATOR_LOST_S = 90.0  # three of a peer's probes (every 30 s): not one lost packet
HOUR_S = 3600.0


@dataclass(frozen=True)
class PollFacts:
    """What one poll tells (the shell gathers it from the reading and the policy's state)."""

    now: float  # monotonic: intervals
    wall: float  # wall clock: the message's time
    readable: bool
    detail: str  # why unreadable ("" when readable)
    on_battery: bool
    episode: bool  # an outage episode is open (policy: outage_start is set)
    runtime_s: float | None
    charge_pct: float | None
    threshold_s: float
    replace_battery: bool  # RB in the status
    startup_pending: bool
    waits_for: str | None  # what a pending startup waits for (None: not waiting)
    battery_ratio: float | None = None  # runtime delivered / claimed in recorded outages
    coordinator_reachable: bool | None = None  # a peer's last probe of it (None: a coordinator)


@dataclass(frozen=True)
class WatchSettings:
    startup_wait_s: float
    unreadable_s: float


@dataclass(frozen=True)
class WatchState:
    episode_since: float | None = None  # monotonic start of the open outage episode
    episode_told: bool = False  # its on_battery was told (power_restored follows only then)
    unreadable_since: float | None = None
    unreadable_told: bool = False
    rb_told: bool = False
    weak_told: bool = False
    coordinator_lost_since: float | None = None
    coordinator_told: bool = False
    waiting_since: float | None = None
    waiting_told: bool = False


def watch(
    state: WatchState, facts: PollFacts, where: Where, settings: WatchSettings
) -> tuple[WatchState, list[Notice]]:
    out: list[Notice] = []
    s = state
    for part in (_episode, _unreadable, _battery, _waiting, _coordinator):
        s, more = part(s, facts, where, settings)
        out += more
    return s, out


Part = tuple[WatchState, list[Notice]]


def _episode(s: WatchState, facts: PollFacts, where: Where, _: WatchSettings) -> Part:
    """One message when an outage episode is first seen on battery, one when it is over."""
    if facts.episode:
        if s.episode_since is None:
            s = replace(s, episode_since=facts.now)
        if facts.on_battery and not s.episode_told:
            told = ne.on_battery(
                where, facts.runtime_s, facts.threshold_s, facts.charge_pct, facts.wall
            )
            return replace(s, episode_told=True), [told]
        return s, []
    if s.episode_since is None or not facts.readable:
        return s, []
    outage = facts.now - s.episode_since
    out = [ne.power_restored(where, outage, facts.startup_pending, facts.wall)]
    return replace(s, episode_since=None, episode_told=False), out if s.episode_told else []


def _unreadable(s: WatchState, facts: PollFacts, where: Where, settings: WatchSettings) -> Part:
    """At once on battery, after settings.unreadable_s on mains; once per stretch."""
    if facts.readable:
        return replace(s, unreadable_since=None, unreadable_told=False), []
    since = s.unreadable_since if s.unreadable_since is not None else facts.now
    s = replace(s, unreadable_since=since)
    long_enough = facts.now - since >= settings.unreadable_s
    if s.unreadable_told or not (facts.on_battery or long_enough):
        return s, []
    told = ne.ups_unreadable(where, facts.detail, facts.now - since, facts.on_battery, facts.wall)
    return replace(s, unreadable_told=True), [told]


def _battery(s: WatchState, facts: PollFacts, where: Where, _: WatchSettings) -> Part:
    """The battery to replace: once per stretch of RB; once when recorded outages show it
    delivers less than WEAK_BATTERY_RATIO of the runtime it claims."""
    out: list[Notice] = []
    ratio = facts.battery_ratio
    if ratio is not None and ratio < WEAK_BATTERY_RATIO and not s.weak_told:
        why = f"recorded outages: it delivered {ratio:.0%} of the runtime it claimed"
        s = replace(s, weak_told=True)
        out.append(ne.battery_replace(where, why, facts.wall))
    if not facts.readable:
        return s, out
    if not facts.replace_battery:
        return replace(s, rb_told=False), out
    if s.rb_told:
        return s, out
    told = ne.battery_replace(where, "the UPS reports RB", facts.wall)
    return replace(s, rb_told=True), [*out, told]


def _waiting(s: WatchState, facts: PollFacts, where: Where, settings: WatchSettings) -> Part:
    """A startup that has waited settings.startup_wait_s: once per wait."""
    if not facts.startup_pending or facts.waits_for is None:
        return replace(s, waiting_since=None, waiting_told=False), []
    since = s.waiting_since if s.waiting_since is not None else facts.now
    s = replace(s, waiting_since=since)
    if s.waiting_told or facts.now - since < settings.startup_wait_s:
        return s, []
    told = ne.startup_waiting(where, facts.now - since, facts.waits_for, facts.wall)
    return replace(s, waiting_told=True), [told]


def _coordinator(s: WatchState, facts: PollFacts, where: Where, _: WatchSettings) -> Part:
    """A peer's coordinator unreachable for COORDINATOR_LOST_S: once per stretch."""
    if facts.coordinator_reachable is None or facts.coordinator_reachable:
        return replace(s, coordinator_lost_since=None, coordinator_told=False), []
    since = s.coordinator_lost_since if s.coordinator_lost_since is not None else facts.now
    s = replace(s, coordinator_lost_since=since)
    if s.coordinator_told or facts.now - since < COORDINATOR_LOST_S:
        return s, []
    detail = f"for {facts.now - since:.0f} s; a trigger from this UPS could not be forwarded"
    told = ne.peer_unreachable(where, "the coordinator", detail, facts.wall)
    return replace(s, coordinator_told=True), [told]


# --- the last gate: folding and the hourly cap ------------------------------------------------


@dataclass(frozen=True)
class Throttle:
    sent: tuple[float, ...] = ()  # monotonic times of the messages sent in the last hour
    last_by_key: tuple[tuple[str, float], ...] = ()
    folded: int = 0  # folded or capped since the last message that went out


def admit(
    throttle: Throttle, notices: Sequence[Notice], now: float, max_per_hour: int
) -> tuple[Throttle, list[Notice]]:
    """The notices that go out; the others are folded (same key within FOLD_S) or capped
    (beyond `max_per_hour`, unless critical). The next one to go out says how many were
    held back."""
    t = replace(throttle, sent=tuple(x for x in throttle.sent if now - x < HOUR_S))
    last = {k: v for k, v in t.last_by_key if now - v < FOLD_S}
    out: list[Notice] = []
    folded = t.folded
    sent = list(t.sent)
    for each in notices:
        n = each
        repeat = n.key in last and n.event not in EPISODE_EVENTS
        capped = len(sent) >= max_per_hour and n.severity != "critical"
        if repeat or capped:
            folded += 1
            continue
        if folded:
            n = replace(n, body=f"{n.body} ({folded} earlier message(s) held back)")
            folded = 0
        last[n.key] = now
        sent.append(now)
        out.append(n)
    return Throttle(tuple(sent), tuple(sorted(last.items())), folded), out
