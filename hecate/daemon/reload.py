"""SIGHUP: which parts of a new configuration a running daemon can take as they are.

The policy (poll interval, debounce, thresholds, shutdown and startup settings, nodes) is read
afresh at every poll and flow, so it changes live. What the daemon bound or opened at start (the
listening ports, the coordination token and role, the state dir, the UPS connection and its
password) needs a restart: a reload that changes any of it is refused as a whole, with the
fields named, so the running configuration is never half old, half new.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from hecate.config.model import HecateConfig
from hecate.errors import HecateError

log = logging.getLogger("hecate.daemon")

RESTART_FIELDS: tuple[str, ...] = (
    "state_dir",
    "metrics.listen",
    "coordination.listen",
    "coordination.role",
    "coordination.token_file",
    "coordination.coordinator_address",
    "coordination.peer_name",
    "ups.target",
    "ups.user",
    "ups.password_file",
    "notify",  # its targets and sender thread are set up at start (hecate.daemon.notices)
)


def _get(config: HecateConfig, dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        value = getattr(value, part, None)
    return value


def restart_needed(running: HecateConfig, new: HecateConfig) -> list[str]:
    """The fields (dotted paths) that differ and that only a restart can change."""
    return [f for f in RESTART_FIELDS if _get(running, f) != _get(new, f)]


def validated_reload(
    running: HecateConfig, load: Callable[[], HecateConfig] | None
) -> HecateConfig | None:
    """The new configuration, or None (with a log line) when it is invalid or changes what
    only a restart can: the running one is kept then."""
    if load is None:
        return None
    try:
        new = load()
    except HecateError as exc:
        log.error("reload refused, the running configuration is kept: %s", exc)
        return None
    fixed = restart_needed(running, new)
    if fixed:
        log.error(
            "reload refused, the running configuration is kept: %s change only with a "
            "restart (systemctl restart hecate)",
            ", ".join(fixed),
        )
        return None
    return new
