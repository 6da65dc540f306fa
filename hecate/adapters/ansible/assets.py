"""Where Hecate's playbooks and roles are, and which playbook a name runs (no ansible-runner).

The assets dir holds ``playbooks/`` and ``roles/`` (a checkout, the package's ``hecate/data``
links, a wheel's data-files or a system share dir; ``$HECATE_ASSETS_DIR`` wins).

:class:`Playbook` names every playbook the port runs. Four of them are not files of their own:
starting and stopping k3s on servers or agents is the one ``playbooks/k3s_service.yml``, told
the group and the wanted state as extra vars (:func:`resolve_playbook`), so a flow asks for
``stop_agents`` and the run is ``k3s_service.yml -e k3s_service_group=agent
-e k3s_service_state=stopped``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

from hecate.errors import AnsibleRunError

ASSETS_ENV = "HECATE_ASSETS_DIR"
K3S_SERVICE_PLAYBOOK = "k3s_service"


class PlaybookError(AnsibleRunError):
    """The request itself is invalid (unknown playbook or host); nothing was run."""


class Playbook(StrEnum):
    """The playbooks the port runs, by the name a flow asks for."""

    PING = "ping"
    CONNECT = "connect"
    TIME_SYNC = "time_sync"
    STOP_AGENTS = "stop_agents"
    STOP_SERVERS = "stop_servers"
    START_SERVERS = "start_servers"
    START_AGENTS = "start_agents"
    ETCD_SNAPSHOT = "etcd_snapshot"
    ETCD = "etcd"
    POWEROFF = "poweroff"


@dataclass(frozen=True)
class ResolvedPlaybook:
    """What a playbook name runs: a file in ``playbooks/`` and the extra vars it implies."""

    file: str
    extravars: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


def _k3s_service(group: str, state: str) -> ResolvedPlaybook:
    return ResolvedPlaybook(
        f"{K3S_SERVICE_PLAYBOOK}.yml",
        MappingProxyType({"k3s_service_group": group, "k3s_service_state": state}),
    )


_RESOLVED: Mapping[Playbook, ResolvedPlaybook] = MappingProxyType(
    {
        Playbook.STOP_AGENTS: _k3s_service("agent", "stopped"),
        Playbook.STOP_SERVERS: _k3s_service("server", "stopped"),
        Playbook.START_SERVERS: _k3s_service("server", "started"),
        Playbook.START_AGENTS: _k3s_service("agent", "started"),
    }
)


# The playbook files whose plays intersect their hosts with `hecate_stage_group`, so the port
# may run them as stages of one ansible-playbook (hecate/adapters/ansible/batch.py).
BATCHABLE_FILES = frozenset(
    {f"{K3S_SERVICE_PLAYBOOK}.yml", "poweroff.yml", "etcd.yml", "time_sync.yml"}
)


def batch_group(file: str, extravars: Mapping[str, Any]) -> str:
    """The inventory group a batchable playbook's play runs on (its hosts line is
    ``GROUP:&{{ hecate_stage_group ... }}``): ``managed`` for poweroff, ``server`` for etcd,
    ``k3s_cluster`` for time_sync, ``k3s_service_group`` for k3s_service. A batched stage's
    hosts are its limit within that group."""
    if file == "poweroff.yml":
        return "managed"
    if file == "etcd.yml":
        return "server"
    if file == "time_sync.yml":
        return "k3s_cluster"
    return str(extravars.get("k3s_service_group", ""))


def resolve_playbook(name: str) -> ResolvedPlaybook:
    """The file (relative to ``playbooks/``) and implied extra vars of a bare playbook name.

    ``NAME`` and ``NAME.yml`` are the same; a name that is not a :class:`Playbook` is the file
    ``NAME.yml`` with no implied vars (the port still refuses it if the file does not exist).
    """
    stem = name.removesuffix(".yml").removesuffix(".yaml")
    try:
        known = Playbook(stem)
    except ValueError:
        return ResolvedPlaybook(name if name.endswith((".yml", ".yaml")) else f"{name}.yml")
    return _RESOLVED.get(known) or ResolvedPlaybook(f"{known.value}.yml")


def playbook_extravars(name: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """``given`` plus the extra vars the playbook name implies; a contradiction is refused
    (:class:`PlaybookError`), so ``stop_agents`` can never run with ``k3s_service_state=started``.
    An absolute path implies nothing."""
    implied = {} if Path(name).is_absolute() else resolve_playbook(name).extravars
    clash = sorted(k for k, v in implied.items() if given.get(k, v) != v)
    if clash:
        raise PlaybookError(f"{name}: extra vars {clash} contradict what the playbook name sets")
    return {**given, **implied}


def _has_assets(path: Path) -> bool:
    return (path / "playbooks").is_dir() and (path / "roles").is_dir()


def assets_candidates() -> list[Path]:
    """Where playbooks/ and roles/ are looked for, in order."""
    found: list[Path] = []
    env = os.environ.get(ASSETS_ENV)
    if env:
        found.append(Path(env))
    package = Path(__file__).resolve().parents[2]  # hecate/, from hecate/adapters/ansible/
    found += [
        package.parent,  # a checkout or an editable install
        package / "data",  # packaged as package data
        Path(sys.prefix) / "share" / "hecate",  # a wheel's data-files
        Path(sys.base_prefix) / "share" / "hecate",
        Path("/usr/local/share/hecate"),
        Path("/usr/share/hecate"),
    ]
    return found


def assets_dir() -> Path:
    """The directory holding ``playbooks/`` and ``roles/``; ``$HECATE_ASSETS_DIR`` wins."""
    candidates = assets_candidates()
    for candidate in candidates:
        if _has_assets(candidate):
            return candidate
    raise AnsibleRunError(
        "cannot find Hecate's playbooks/ and roles/ (looked in "
        + ", ".join(str(c) for c in candidates)
        + f"); set {ASSETS_ENV}"
    )


__all__ = [
    "ASSETS_ENV",
    "BATCHABLE_FILES",
    "K3S_SERVICE_PLAYBOOK",
    "Playbook",
    "PlaybookError",
    "ResolvedPlaybook",
    "assets_candidates",
    "assets_dir",
    "playbook_extravars",
    "resolve_playbook",
]
