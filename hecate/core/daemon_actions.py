"""What the daemon does about policy events. Pure: events and the daemon's situation in,
actions out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from hecate.core.policy.values import Event

Role = Literal["coordinator", "peer"]
Running = Literal["startup", "shutdown"] | None


@dataclass(frozen=True)
class RunShutdown:
    reason: str


@dataclass(frozen=True)
class ForwardTrigger:
    reason: str


@dataclass(frozen=True)
class RunStartup:
    reason: str


@dataclass(frozen=True)
class CancelStartup:
    reason: str


Action = RunShutdown | ForwardTrigger | RunStartup | CancelStartup


def actions_for(events: Sequence[Event], role: Role, running: Running) -> list[Action]:
    """The actions a batch of events (from one poll) calls for.

    - A trigger: the coordinator shuts down (stopping a running startup first); a peer forwards.
    - A new outage while startup runs: startup stops and shutdown takes over at once, since the
      battery has not recovered from the last outage and the cluster is half up.
    - Power back for good: the coordinator starts up (peers leave that to the coordinator).
    """
    actions: list[Action] = []
    for event in events:
        if event.event == "trigger_shutdown":
            if role == "peer":
                actions.append(ForwardTrigger(event.reason))
                continue
            if running == "startup":
                actions.append(CancelStartup("shutdown triggered during startup"))
            if running != "shutdown":
                actions.append(RunShutdown(f"UPS: {event.reason}"))
                running = "shutdown"
        elif event.event == "on_battery" and running == "startup" and role == "coordinator":
            actions.append(CancelStartup("power failed again during startup"))
            actions.append(RunShutdown("UPS: power failed again during startup"))
            running = "shutdown"
        elif event.event == "startup_allowed" and role == "coordinator" and running is None:
            actions.append(RunStartup(f"power restored: {event.reason}"))
            running = "startup"
    return actions
