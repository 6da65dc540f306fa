"""Helpers for integration tests: a Hecate config pointing at the twin and a NUT server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hecate.config.model import HecateConfig, parse_config
from tests.testbed.nut import NutServer
from tests.testbed.twin import Twin


def twin_config_data(
    twin: Twin, state_dir: Path, nut: NutServer | None = None, **overrides: Any
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "kubeconfig": str(twin.kubeconfig),
        "state_dir": str(state_dir),
        "nodes": {
            "servers": [n.name for n in twin.servers],
            "agents": [n.name for n in twin.agents],
        },
        "ssh_user": twin.ssh_user,
        "ssh_identity_file": str(twin.ssh_key),
        "ssh_node_hosts": {n.name: f"127.0.0.1:{n.ssh_port}" for n in twin.nodes},
        "ssh_connect_timeout_seconds": 5,
        "shutdown": {"stop_timeout_seconds": 30, "etcd_snapshot_timeout_seconds": 30},
        "startup": {
            "power_stable_seconds": 0,
            "min_battery_charge": 50,
            "api_timeout_seconds": 60,
            "nodes_ready_timeout_seconds": 60,
            "flux_ready_timeout_seconds": 40,
        },
        "metrics": {"listen": "127.0.0.1:0"},
        "coordination": {"listen": "127.0.0.1:0"},
        "ups": {"target": "pyrphoros@localhost"},  # no default: a config names its UPS
    }
    if nut is not None:
        data["ups"] = {
            "target": nut.target(),
            "user": nut.user,
            "password_file": str(nut.password_file),
            "timeout_seconds": 3,
        }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return data


def twin_config(
    twin: Twin, state_dir: Path, nut: NutServer | None = None, **overrides: Any
) -> HecateConfig:
    return parse_config(twin_config_data(twin, state_dir, nut, **overrides))


def write_config(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path
