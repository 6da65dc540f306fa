"""Startup across instances from the CLI: ask the coordinator first (--auto-peer-failover).

The peers' intents are one of the startup guards (hecate.core.startup_refusals, asked through the
Peers port in hecate.adapters.peers.http), evaluated inside the startup's lock like every other
guard."""

from __future__ import annotations

import socket

from hecate.adapters.peers.http import CoordinatorClient, CoordinatorUnreachableError, read_token
from hecate.config.model import HecateConfig
from hecate.errors import GuardRefusedError, HecateError


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
