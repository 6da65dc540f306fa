"""The Ansible inventory, generated from the configuration's SSH settings (pure: no I/O).

Layout (YAML inventory plugin format)::

    all:
      vars: {ansible_ssh_common_args: ..., ansible_ssh_private_key_file: ..., hecate_privilege}
      children:
        k3s_cluster:
          children:
            server: {hosts: {NODE: {ansible_host, ansible_port, ansible_user, hecate_managed}}}
            agent:  {hosts: {...}}
        managed: {hosts: {NODE: {}}}     # nodes that get host-level actions (poweroff)

`ssh_node_hosts` values are ``HOST`` or ``HOST:PORT`` (``[IPV6]:PORT`` for IPv6 with a port):
a per-node port overrides the global `ssh_port`.

Host-key checking always stays on: new hosts are learnt (``StrictHostKeyChecking=accept-new``)
into Hecate's own known_hosts file under `state_dir`, and a changed key fails the connection.

The jump-host preflight itself (it runs ``ssh``) lives in
:mod:`hecate.adapters.ansible.ssh_preflight`; this module only builds its command line
(:func:`jump_preflight_argv`) and, given its outcome, the inventory (:func:`plan_inventory`).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hecate.config.addresses import HostPort, NodeName
from hecate.config.model import HecateConfig
from hecate.config.yaml_dump import safe_dump
from hecate.errors import HecateError

SERVER_GROUP = "server"
AGENT_GROUP = "agent"
CLUSTER_GROUP = "k3s_cluster"
MANAGED_GROUP = "managed"

KNOWN_HOSTS_NAME = "ssh_known_hosts"
# sudo_command | become, from the config's node_privilege: how the node roles run privileged
# commands (`sudo -n COMMAND` or Ansible become), set once for all hosts.
PRIVILEGE_VAR = "hecate_privilege"


@dataclass(frozen=True)
class SshTarget:
    """Where one node is reached: host and port after applying every override."""

    host: str
    port: int
    user: str


@dataclass(frozen=True)
class InventoryPlan:
    """A generated inventory plus what the caller should tell the operator."""

    data: dict[str, Any]
    via_jump: bool
    warnings: list[str] = field(default_factory=list)
    # Nodes left out of the inventory, with why: the flows mark them failed, run partial.
    problems: dict[str, str] = field(default_factory=dict)

    def render(self) -> str:
        return dump_inventory(self.data)


def split_host_port(value: str) -> tuple[str, int | None]:
    """Split ``HOST``, ``HOST:PORT``, ``[V6]`` or ``[V6]:PORT``; a bare IPv6 address has no port.

    The grammar is :class:`hecate.config.addresses.HostPort`'s; raises ValueError (AddressError)
    for an empty host, a host that is not a name or an IP address, or a port that is not 1..65535.
    """
    parsed = HostPort.parse(value)
    return parsed.host, parsed.port


def node_target(config: HecateConfig, node: str) -> SshTarget:
    """The SSH host, port and user for one node (the config already parsed its address)."""
    override = config.ssh_node_hosts.get(NodeName.parse(node))
    host, port = (override.host, override.port) if override else (node, None)
    user = config.ssh_node_users.get(NodeName.parse(node)) or config.ssh_user
    return SshTarget(host=host, port=port or config.ssh_port, user=user)


def node_problems(config: HecateConfig) -> dict[str, str]:
    """Per-node problems as data (pure): a node listed here is left out of the inventory and
    counted as failed, while every other node is still stopped and powered off.

    - a node whose target cannot be built (the config's typed values make this a safety net);
    - nodes that share one SSH host and port: acting on one would act on the other's machine,
      so neither is touched (one of the two addresses is wrong).
    """
    problems: dict[str, str] = {}
    seen: dict[tuple[str, int], list[str]] = {}
    for node in config.nodes.all:
        try:
            target = node_target(config, node)
        except (HecateError, ValueError, AttributeError, TypeError) as exc:
            problems[node] = f"no usable SSH address: {exc}"
            continue
        seen.setdefault((target.host.lower(), target.port), []).append(node)
    for (host, port), names in seen.items():
        if len(names) > 1:
            for name in names:
                others = ", ".join(n for n in names if n != name)
                problems[name] = f"same SSH address {host}:{port} as {others}; fix ssh_node_hosts"
    return problems


def known_hosts_path(config: HecateConfig) -> Path:
    """Hecate's own known_hosts file (learnt on first contact, enforced afterwards)."""
    return config.state_dir / KNOWN_HOSTS_NAME


def proxy_jump_spec(config: HecateConfig) -> str | None:
    """``[USER@]HOST[:PORT]`` for ``-o ProxyJump=``, or None without a jump host."""
    if not config.ssh_jump_host:
        return None
    if config.ssh_jump_user:
        return f"{config.ssh_jump_user}@{config.ssh_jump_host}"
    return config.ssh_jump_host


def ssh_common_args(
    config: HecateConfig, *, via_jump: bool = True, known_hosts: Path | None = None
) -> list[str]:
    """The extra ssh arguments every connection gets (ansible_ssh_common_args, as a list)."""
    args: list[str] = []
    if config.ssh_config_file is not None:
        args += ["-F", str(config.ssh_config_file)]
    args += [
        "-o",
        "StrictHostKeyChecking=accept-new",
        "-o",
        f"UserKnownHostsFile={known_hosts or known_hosts_path(config)}",
    ]
    if config.ssh_identity_file is not None:
        # only the configured key: no "too many authentication failures" from an agent's keys
        args += ["-o", "IdentitiesOnly=yes"]
    jump = proxy_jump_spec(config) if via_jump else None
    if jump:
        args += ["-o", f"ProxyJump={jump}"]
    return args


def build_inventory(
    config: HecateConfig, *, via_jump: bool = True, known_hosts: Path | None = None
) -> dict[str, Any]:
    """The inventory as a YAML-serialisable dict.

    ``via_jump=False`` generates direct connections even when a jump host is configured
    (the fallback after a failed jump-host preflight).
    """
    managed = set(config.managed_nodes())
    problems = node_problems(config)

    def hosts(names: list[str], role: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in names:
            if name in problems:
                continue  # reported as data by node_problems; never stops the others
            target = node_target(config, name)
            out[name] = {
                "ansible_host": target.host,
                "ansible_port": target.port,
                "ansible_user": target.user,
                "hecate_role": role,
                "hecate_managed": name in managed,
            }
        return out

    all_vars: dict[str, Any] = {
        "ansible_connection": "ssh",
        # no interpreter discovery round trip (the hot path of k3s_service needs no Python)
        "ansible_python_interpreter": "/usr/bin/python3",
        "ansible_ssh_common_args": shlex.join(
            ssh_common_args(config, via_jump=via_jump, known_hosts=known_hosts)
        ),
        # the one privilege variable of the node roles (roles/hecate_privilege)
        PRIVILEGE_VAR: config.node_privilege,
    }
    if config.ssh_identity_file is not None:
        all_vars["ansible_ssh_private_key_file"] = str(config.ssh_identity_file)

    return {
        "all": {
            "vars": all_vars,
            "children": {
                CLUSTER_GROUP: {
                    "children": {
                        SERVER_GROUP: {"hosts": hosts(config.nodes.servers, SERVER_GROUP)},
                        AGENT_GROUP: {"hosts": hosts(config.nodes.agents, AGENT_GROUP)},
                    }
                },
                MANAGED_GROUP: {
                    "hosts": {name: {} for name in config.managed_nodes() if name not in problems}
                },
            },
        }
    }


def jump_fallback_warning(config: HecateConfig, detail: str = "") -> str:
    suffix = f" ({detail})" if detail else ""
    return f"jump host {proxy_jump_spec(config)} unreachable, falling back to direct SSH{suffix}"


def plan_inventory(
    config: HecateConfig,
    *,
    jump_reachable: bool | None = None,
    jump_detail: str = "",
    known_hosts: Path | None = None,
) -> InventoryPlan:
    """The inventory to use given the jump-host preflight's outcome.

    ``jump_reachable`` is None when no preflight ran (the jump host, if any, is used),
    False to fall back to direct SSH with a warning.
    """
    problems = node_problems(config)
    if not config.ssh_jump_host:
        return InventoryPlan(
            build_inventory(config, known_hosts=known_hosts), via_jump=False, problems=problems
        )
    if jump_reachable is False:
        return InventoryPlan(
            build_inventory(config, via_jump=False, known_hosts=known_hosts),
            via_jump=False,
            warnings=[jump_fallback_warning(config, jump_detail)],
            problems=problems,
        )
    return InventoryPlan(
        build_inventory(config, known_hosts=known_hosts), via_jump=True, problems=problems
    )


def jump_preflight_argv(config: HecateConfig, timeout_s: int | None = None) -> list[str]:
    """``ssh ... JUMP true``, reaching the jump host the way ``ProxyJump`` does.

    OpenSSH passes only ``-l``, ``-p`` and ``-F`` to the jump connection, so the preflight
    uses the same (plus BatchMode and a short ConnectTimeout to fail fast).
    Raises ValueError without a jump host.
    """
    if not config.ssh_jump_host:
        raise ValueError("no ssh_jump_host configured")
    connect = timeout_s or config.ssh_connect_timeout_seconds
    argv = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={connect}"]
    if config.ssh_config_file is not None:
        argv += ["-F", str(config.ssh_config_file)]
    host, port = config.ssh_jump_host.host, config.ssh_jump_host.port
    if config.ssh_jump_user:
        argv += ["-l", config.ssh_jump_user]
    if port is not None:
        argv += ["-p", str(port)]
    return [*argv, host, "true"]


def inventory_hosts(data: dict[str, Any]) -> set[str]:
    """Every host name an inventory dict defines (any group depth)."""
    found: set[str] = set()

    def walk(group: dict[str, Any]) -> None:
        found.update((group.get("hosts") or {}).keys())
        for child in (group.get("children") or {}).values():
            walk(child or {})

    for top in data.values():
        walk(top or {})
    return found


def group_hosts(data: Mapping[str, Any], group: str) -> set[str]:
    """The hosts of `group` (its children's included) in an inventory dict Hecate generated."""
    found: set[str] = set()

    def walk(name: str, node: object, inside: bool) -> None:
        if not isinstance(node, Mapping):
            return
        inside = inside or name == group
        if inside:
            found.update(str(host) for host in node.get("hosts") or {})
        for child, below in (node.get("children") or {}).items():
            walk(str(child), below, inside)

    for name, top in data.items():
        walk(str(name), top, False)
    return found


def dump_inventory(data: dict[str, Any]) -> str:
    return safe_dump(data, sort_keys=False, default_flow_style=False, width=4096)


def render_inventory(config: HecateConfig, *, via_jump: bool = True) -> str:
    """The inventory as YAML text (for ``hecate inventory --config F``)."""
    return dump_inventory(build_inventory(config, via_jump=via_jump))
