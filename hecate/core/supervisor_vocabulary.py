"""The supervisor's vocabulary: the events the daemon tells it, the effects it asks for.

One vocabulary from the policy's decision to the daemon's effects: `hecate.core.supervisor`
turns the policy's events (a trigger, power back) into these effects, and the daemon
(hecate/daemon/service.py) carries them out and reports back with these events. Pure data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from hecate.core.peers import PeerIntent
from hecate.core.policy.values import PolicyParams
from hecate.core.readings import Poll


class FlowKind(StrEnum):
    STARTUP = "startup"
    SHUTDOWN = "shutdown"


class FlowOutcome(StrEnum):
    SUCCESS = "success"
    PARTIAL = "partial"
    FAILED = "failed"
    ABORTED = "aborted"
    REFUSED = "refused"  # a startup guard said no (nothing was touched)
    ERROR = "error"  # the flow could not run at all (lock held, no context)


# --- events -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Polled:
    """One UPS poll: the reading, when (monotonic), and the policy's parameters."""

    poll: Poll
    now: float
    params: PolicyParams


@dataclass(frozen=True)
class FlowFinished:
    kind: FlowKind
    outcome: FlowOutcome
    reason: str
    now: float


@dataclass(frozen=True)
class PeerTriggered:
    peer: str
    reason: str
    now: float


@dataclass(frozen=True)
class StartupRequested:
    peer: str
    now: float


@dataclass(frozen=True)
class PeerReported:
    intent: PeerIntent
    now: float


@dataclass(frozen=True)
class ForwardFailed:
    """The coordinator could not be reached with a forwarded trigger."""

    reason: str
    now: float


@dataclass(frozen=True)
class Tick:
    now: float


Event = (
    Polled | FlowFinished | PeerTriggered | StartupRequested | PeerReported | ForwardFailed | Tick
)


# --- effects: what the daemon carries out (one vocabulary, from the policy's events on) ---------


@dataclass(frozen=True)
class RunShutdown:
    reason: str
    nodes: tuple[str, ...] | None = None  # a partial flow's nodes (issue 28); None: all


@dataclass(frozen=True)
class ForwardTrigger:
    reason: str


@dataclass(frozen=True)
class RunStartup:
    reason: str
    nodes: tuple[str, ...] | None = None  # a partial flow's nodes (issue 28); None: all


@dataclass(frozen=True)
class CancelStartup:
    reason: str


@dataclass(frozen=True)
class ShutdownOwed:
    """A shutdown is wanted while another flow runs: it starts once that flow has stopped."""

    reason: str
    nodes: tuple[str, ...] | None = None  # a partial flow's nodes (issue 28); None: all


@dataclass(frozen=True)
class AskPeers:
    names: frozenset[str]


@dataclass(frozen=True)
class SaveAwaiting:
    """Persist the peers whose UPS a pending startup waits for (for a restart and `status`)."""

    names: frozenset[str]


@dataclass(frozen=True)
class Record:
    message: str
    level: int = logging.INFO
    counter: str | None = None  # a metric to count: "trigger:ups", "trigger:peer"


@dataclass(frozen=True)
class RetryAt:
    kind: FlowKind
    at: float


@dataclass(frozen=True)
class Answer:
    """The reply to a synchronous request (a peer's trigger or startup request)."""

    text: str


Effect = (
    RunShutdown
    | RunStartup
    | CancelStartup
    | ForwardTrigger
    | ShutdownOwed
    | AskPeers
    | SaveAwaiting
    | Record
    | RetryAt
    | Answer
)


Role = Literal["coordinator", "peer"]
Running = Literal["startup", "shutdown"] | None
