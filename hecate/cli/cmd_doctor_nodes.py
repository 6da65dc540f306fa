"""`hecate doctor`'s node probes: one bounded SSH session per node (in parallel) running the
probe script; `hecate.core.doctor.nodes` says what the outcome means."""

from __future__ import annotations

import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hecate.adapters.ansible.inventory import known_hosts_path, node_target, proxy_jump_spec
from hecate.config.model import HecateConfig
from hecate.config.power import WolPower
from hecate.core.doctor.cluster import EXAMPLE_ADDRESSES, EXAMPLE_NODES
from hecate.core.doctor.findings import Finding, fail, ok
from hecate.core.doctor.nodes import (
    SshOutcome,
    node_findings,
    node_unit,
    probe_script,
    sudo_commands,
)


def node_checks(cfg: HecateConfig) -> list[Finding]:
    findings: list[Finding] = []
    key = cfg.ssh_identity_file
    if key is not None and not key.exists():
        return [
            fail(
                "ssh.key",
                f"ssh_identity_file {key} does not exist",
                f"ssh-keygen -t ed25519 -N '' -C hecate -f {key}; then on every node: "
                f"ssh-copy-id -i {key}.pub {cfg.ssh_user}@NODE",
            )
        ]
    if key is not None:
        findings.append(ok("ssh.key", f"{key} exists"))
    known = known_hosts_path(cfg)
    if not cfg.nodes.all:
        return [*findings, fail("nodes", "no nodes configured", "fill nodes.servers/agents")]
    # The example's placeholder addresses are nobody's nodes: never connect to them.
    probed = [
        n
        for n in cfg.nodes.all
        if n not in EXAMPLE_NODES
        and cfg.ssh_node_hosts.get(n, n).split(":")[0] not in EXAMPLE_ADDRESSES
    ]
    findings += [
        fail(
            f"node.{n}.ssh", "a placeholder from the example: not probed", "see config.placeholders"
        )
        for n in cfg.nodes.all
        if n not in probed
    ]
    if not probed:
        return findings
    with ThreadPoolExecutor(max_workers=min(16, len(probed))) as pool:
        results = list(pool.map(lambda node: _probe_node(cfg, node, known), probed))
    for per_node in results:
        findings += per_node
    return findings


def _probe_node(cfg: HecateConfig, node: str, known: Path) -> list[Finding]:
    try:
        target = node_target(cfg, node)
    except ValueError as exc:
        return [fail(f"node.{node}.ssh", str(exc), f"fix ssh_node_hosts.{node}")]
    argv = ["ssh", "-p", str(target.port)]
    if cfg.ssh_config_file is not None:
        argv += ["-F", str(cfg.ssh_config_file)]
    argv += [
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={known}",
        "-o",
        f"ConnectTimeout={cfg.ssh_connect_timeout_seconds}",
    ]
    if cfg.ssh_identity_file is not None:
        argv += ["-i", str(cfg.ssh_identity_file), "-o", "IdentitiesOnly=yes"]
    jump = proxy_jump_spec(cfg)
    if jump:
        argv += ["-o", f"ProxyJump={jump}"]
    entry = cfg.power.nodes.get(node)
    mac = entry.mac if isinstance(entry, WolPower) else None
    script = probe_script(sudo_commands(cfg, node), node_unit(cfg, node), mac)
    argv += [f"{target.user}@{target.host}", script]
    where = f"{target.host}:{target.port}"
    started = time.time()
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv, no shell on this side
            argv,
            capture_output=True,
            text=True,
            timeout=cfg.ssh_connect_timeout_seconds + 30,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return [
            fail(
                f"node.{node}.ssh",
                f"{where}: no answer within {cfg.ssh_connect_timeout_seconds + 30}s",
                f"check ssh_node_hosts.{node}",
            )
        ]
    except OSError as exc:
        return [fail(f"node.{node}.ssh", f"cannot run ssh: {exc}", "apt install openssh-client")]
    outcome = SshOutcome(done.returncode, done.stdout, done.stderr, started, time.time())
    return node_findings(cfg, node, where, outcome, known_hosts=str(known))
