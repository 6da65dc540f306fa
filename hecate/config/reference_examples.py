"""The example config's stand-in values: what an operator replaces (hecate.config.reference
renders them; hecate.core.doctor.cluster flags the nodes and addresses left in a config)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

# The example's values where it does not show the default: stand-ins an operator replaces
# (hecate.core.doctor.cluster flags the nodes and addresses left in a config).
EXAMPLES: Final[Mapping[str, Any]] = {
    "kubeconfig": "/etc/hecate/kubeconfig.yaml",
    "nodes.servers": ["titan-0"],
    "nodes.agents": ["titan-1", "titan-2"],
    "ssh_user": "hecate",
    "ssh_identity_file": "/etc/hecate/id_ed25519",
    "ssh_node_hosts": {
        "titan-0": "192.168.10.10",
        "titan-1": "192.168.10.11",
        "titan-2": "192.168.10.12",
    },
    "ups.target": "pyrphoros@localhost",
    "ups.password_file": "/etc/hecate/nut-password",
    "startup.foundation_workloads": [
        {
            "kind": "deployment",
            "namespace": "kube-system",
            "name": "coredns",
            "replicas": 1,
            "timeout_seconds": 120,
        }
    ],
}
# Items shown commented out under an empty list: what an entry looks like.
COMMENTED_ITEMS: Final[Mapping[str, list[dict[str, Any]]]] = {
    "notify.targets": [
        {"name": "lab-hook", "url": "json://127.0.0.1:8080/hecate", "events": ["all"]},
    ],
    "startup.storage_workloads": [
        {"kind": "daemonset", "namespace": "longhorn-system", "name": "longhorn-manager"},
        {"kind": "deployment", "namespace": "longhorn-system", "name": "csi-attacher"},
    ],
    "startup.probes": [
        {"name": "ingress", "target": "https://home.example.org/", "expected_status": 200},
        {"name": "postgres", "target": "10.0.0.20:5432", "retries": 5},
    ],
}
# Entries shown commented out under an empty map: what an entry looks like.
COMMENTED_ENTRIES: Final[Mapping[str, Mapping[str, Any]]] = {
    "power.nodes": {
        "node-0": {
            "method": "ipmi",
            "address": "10.0.0.50:623",
            "user": "admin",
            "password_file": "/etc/hecate/bmc-node-0",
        },
        "node-1": {"method": "wol", "mac": "aa:bb:cc:dd:ee:01", "broadcast": "10.0.0.255"},
        "node-2": {
            "method": "redfish",
            "url": "https://10.0.0.52",
            "user": "admin",
            "password_file": "/etc/hecate/bmc-node-2",
        },
    },
    "power.feeds": {
        "pyrphoros": {"instance": "hecate-main"},
        "statera": {"instance": "hecate-peer"},
    },
    "power.node_feeds": {
        "node-0": ["pyrphoros"],
        "node-1": ["pyrphoros", "statera"],
        "node-2": ["statera"],
    },
}
