"""Startup guards: pure checks that refuse a startup that could hurt the cluster."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hecate.config.model import HecateConfig
from hecate.core.intent import Intent, blocks_startup
from hecate.core.peers import PeerIntent
from hecate.core.readings import CommError, Poll


@dataclass(frozen=True)
class StartupOverrides:
    allow_peer_startup: bool = False
    allow_on_battery: bool = False
    allow_peer_ups_down: bool = False


@dataclass(frozen=True)
class Refusal:
    guard: str
    message: str


def startup_refusals(
    config: HecateConfig,
    intent: Intent,
    ups: Poll | None,
    now: float,
    overrides: StartupOverrides,
    peers: Sequence[PeerIntent] = (),
    awaiting: frozenset[str] = frozenset(),
) -> list[Refusal]:
    """Every guard that refuses a startup right now (empty: startup may go ahead).

    One set for every startup (the CLI, the bootstrap unit, the daemon's power return): the
    battery and charge from ONE UPS reading, the peer role, the local intent, the intents the
    other instances reported (`peers`) and, when a peer's trigger shut the cluster down, that
    peer's own UPS (`awaiting`: state_dir/startup-awaits.json), all judged at the same `now`."""
    refusals: list[Refusal] = []
    coordination = config.coordination
    if coordination.role == "peer" and not overrides.allow_peer_startup:
        refusals.append(
            Refusal(
                "peer",
                "this host is a peer: startup belongs to the coordinator "
                f"({coordination.coordinator_address}); pass --allow-peer-startup to override",
            )
        )
    if blocks_startup(intent, now, coordination.startup_guard_max_age_seconds):
        refusals.append(
            Refusal(
                "intent",
                f"a shutdown is in progress (intent {intent.state.value} since "
                f"{intent.age_text(now)} on {intent.host}: {intent.reason}); let it finish, or "
                "re-run `hecate shutdown --execute` to complete it",
            )
        )
    allow_battery = overrides.allow_on_battery or coordination.allow_startup_on_battery
    if isinstance(ups, CommError):
        if not allow_battery:
            refusals.append(
                Refusal(
                    "ups",
                    f"the UPS cannot be read ({ups.message}), so mains power is unconfirmed; "
                    "fix the UPS connection or pass --allow-on-battery",
                )
            )
    elif ups is not None:
        if ups.on_battery and not allow_battery:
            refusals.append(
                Refusal("battery", "the UPS is on battery; pass --allow-on-battery to override")
            )
        minimum = config.startup.min_battery_charge
        if ups.charge_pct is None and minimum > 0:
            refusals.append(
                Refusal(
                    "charge",
                    "the UPS does not report its battery charge, so startup.min_battery_charge "
                    f"({minimum:.0f}%) cannot be checked; set it to 0 for such a UPS",
                )
            )
        elif ups.charge_pct is not None and ups.charge_pct < minimum:
            refusals.append(
                Refusal(
                    "charge",
                    f"battery charge {ups.charge_pct:.0f}% is below "
                    f"startup.min_battery_charge {minimum:.0f}%: starting into a drained battery "
                    "risks a second, unprotected outage; wait for it to charge",
                )
            )
    refusals += peer_refusals(peers, now, coordination.startup_guard_max_age_seconds)
    if not overrides.allow_peer_ups_down:
        refusals += peer_ups_refusals(awaiting, peers)
    return refusals


def peer_ups_refusals(awaiting: frozenset[str], peers: Sequence[PeerIntent]) -> list[Refusal]:
    """Refusals for the peers whose trigger shut the cluster down (`awaiting`, by name, or by
    "@host:port" when the name is not known) while their own UPS is not back on mains and
    stable: starting then would start the cluster into the outage that stopped it. A peer that
    does not answer, or does not report its UPS, is not back (fail closed)."""
    refusals = []
    for name in sorted(awaiting):
        found = [p for p in peers if name in (p.name, f"@{p.address}")]
        back = [p for p in found if p.ups is not None and p.ups.back]
        if back:
            continue
        if not found:
            why = "it does not answer"
        elif found[0].ups is None:
            why = "it does not report its UPS"
        else:
            why = found[0].ups.detail or "not back yet"
        refusals.append(
            Refusal(
                "peer_ups",
                f"peer {name}'s trigger shut the cluster down and its UPS is not back on mains "
                f"and stable ({why}); wait for it, or pass --allow-peer-ups-down",
            )
        )
    return refusals


BUSY_STATES = ("startup_in_progress", "shutting_down", "unknown")


def peer_refusals(peers: Sequence[PeerIntent], now: float, max_age_s: float) -> list[Refusal]:
    """Refusals for peers that are starting or shutting down right now (two instances must
    never start the cluster at once). A busy intent older than `max_age_s` (on the same clock
    as `now`) is stale and no longer blocks; a flow the peer runs always does."""
    refusals = []
    for peer in peers:
        age = now - peer.since if peer.since is not None else 0.0
        stale = age > max_age_s
        if peer.running or (peer.state in BUSY_STATES and not stale):
            refusals.append(
                Refusal(
                    "peer_busy",
                    f"instance {peer.address} is {peer.running or peer.state}; "
                    "wait for it to finish",
                )
            )
    return refusals
