"""Startup across instances: ask the coordinator first (--auto-peer-failover), check peers."""

from __future__ import annotations

import socket
import time

from hecate.config import HecateConfig
from hecate.coordination import CoordinatorClient, CoordinatorUnreachableError, read_token
from hecate.errors import GuardRefusedError, HecateError
from hecate.guards import Refusal

BUSY_STATES = ("startup_in_progress", "shutting_down", "unknown")


def _client(config: HecateConfig, address: str) -> CoordinatorClient:
    token_file = config.coordination.token_file
    if token_file is None:
        raise HecateError("coordination.token_file is needed to talk to other instances")
    return CoordinatorClient(address, read_token(token_file), attempts=2, backoff_s=0.5)


def ask_coordinator_to_start(config: HecateConfig) -> str | None:
    """The coordinator's answer, or None when it cannot be reached (start locally then).

    Raises HecateError when the coordinator refuses or is busy: starting here too would mean
    two instances starting the cluster at once."""
    address = config.coordination.coordinator_address
    if address is None:
        return None
    name = config.coordination.peer_name or socket.gethostname()
    try:
        answer = _client(config, address).request_startup(name)
    except CoordinatorUnreachableError:
        return None
    status = str(answer.get("status", "accepted"))
    if status != "started":
        raise GuardRefusedError(f"the coordinator did not start up: {status}")
    return status


def peer_refusals(config: HecateConfig) -> list[Refusal]:
    """Refusals for peers that are starting or shutting down right now (two instances must
    never start the cluster at once). Unreachable peers do not block: they may be down."""
    refusals = []
    for address in config.coordination.peer_hosts:
        try:
            intent = _client(config, address).intent()
        except CoordinatorUnreachableError:
            continue
        state = str(intent.get("state", ""))
        since = intent.get("since")
        age = time.time() - since if isinstance(since, int | float) else 0.0
        stale = age > config.coordination.startup_guard_max_age_seconds
        if intent.get("running") or (state in BUSY_STATES and not stale):
            refusals.append(
                Refusal(
                    "peer_busy",
                    f"instance {address} is {intent.get('running') or state}; "
                    "wait for it to finish",
                )
            )
    return refusals
