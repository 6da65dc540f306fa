"""`hecate doctor` on the nodes (pure): the probe script run over SSH, what its output and an SSH
failure mean, sudo rules, clock skew. `hecate/cli/cmd_doctor.py` runs the probes."""

from __future__ import annotations

import math
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from hecate.config.model import HecateConfig
from hecate.core.doctor.findings import Finding, fail, ok, warn
from hecate.core.doctor.power import WolSeen, parse_wol, wol_finding, wol_probe_lines, wol_unchecked
from hecate.core.plans import embedded_etcd

# Clock skew between the Hecate host and a node beyond which TLS and logs get confusing.
SKEW_WARN_S: Final = 2.0

K3S_BIN: Final = "/usr/local/bin/k3s"
KILLALL: Final = "/usr/local/bin/k3s-killall.sh"
# A command no narrow sudoers rule allows: if sudo allows it, the rules are wider than needed.
BROAD_PROBE: Final = "/bin/sh"
MARK: Final = "hecate-doctor"

SUDOERS_FILE: Final = "configs/sudoers-hecate"

# The etcd role's first read (roles/etcd/files/hecate-etcd.sh), as it runs it: etcd's data
# directory. (Its health read is curl or etcdctl, whichever the server has: not asked here.)
ETCD_SUDO: Final = ("stat -c %n /var/lib/rancher/k3s/server/db/etcd",)


def sudo_commands(config: HecateConfig, node: str) -> list[str]:
    """The commands Hecate runs with `sudo -n` on this node (node_privilege: sudo_command)."""
    is_server = node in config.nodes.servers
    unit = "k3s" if is_server else "k3s-agent"
    commands = [f"systemctl stop {unit}", f"systemctl start {unit}"]
    if is_server and config.shutdown.etcd_snapshot:
        commands.append(f"{K3S_BIN} etcd-snapshot save --name hecate")
    if config.shutdown.use_killall:
        commands.append(KILLALL)
    if config.shutdown.poweroff_method == "poweroff" and node in config.managed_nodes():
        commands.append("systemctl poweroff")
    if is_server and embedded_etcd(config):
        commands += ETCD_SUDO
    return commands


def node_unit(config: HecateConfig, node: str) -> str:
    return "k3s" if node in config.nodes.servers else "k3s-agent"


def probe_script(commands: Sequence[str], unit: str, wol_mac: str | None = None) -> str:
    """The shell script doctor runs on a node in one SSH session (read-only: `sudo -l` only);
    with `wol_mac`, also the Wake-on-LAN settings of the card with that MAC."""
    lines = [
        f'echo "{MARK} time $(date +%s.%N)"',
        f'echo "{MARK} uid $(id -u)"',
        f'echo "{MARK} unit $(systemctl show -p LoadState --value {shlex.quote(unit)}.service'
        ' 2>/dev/null || echo unknown)"',
    ]
    for index, command in enumerate([*commands, BROAD_PROBE]):
        lines.append(
            f"if sudo -n -l {command} >/dev/null 2>&1; then echo '{MARK} sudo {index} yes';"
            f" else echo '{MARK} sudo {index} no'; fi"
        )
    if wol_mac is not None:
        lines += wol_probe_lines(MARK, wol_mac)
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class NodeProbe:
    """What the probe script printed (parsed). Missing pieces stay None."""

    remote_time: float | None = None
    uid: int | None = None
    unit_state: str | None = None
    sudo: Mapping[int, bool] = field(default_factory=dict)
    wol: WolSeen | None = None


def parse_probe(output: str) -> NodeProbe:
    """Parse the probe script's output; lines that are not its own are ignored (motd, banners)."""
    remote_time: float | None = None
    uid: int | None = None
    unit_state: str | None = None
    sudo: dict[int, bool] = {}
    wol: WolSeen | None = None
    for line in output.splitlines():
        words = line.split()
        if len(words) < 2 or words[0] != MARK:
            continue
        key, rest = words[1], words[2:]
        if key == "time" and rest:
            try:
                value = float(rest[0])
            except ValueError:
                continue
            if math.isfinite(value):
                remote_time = value
        elif key == "uid" and rest and rest[0].isdigit():
            uid = int(rest[0])
        elif key == "unit":
            unit_state = rest[0] if rest else ""
        elif key == "sudo" and len(rest) == 2 and rest[0].isdigit() and rest[1] in ("yes", "no"):
            sudo[int(rest[0])] = rest[1] == "yes"
        elif key == "wol":
            wol = parse_wol(rest) or wol
    return NodeProbe(remote_time, uid, unit_state, sudo, wol)


@dataclass(frozen=True)
class SshOutcome:
    """One SSH run of the probe: exit code, output, and the local clock around it."""

    returncode: int
    stdout: str
    stderr: str
    started: float
    ended: float


def ssh_failure(node: str, where: str, user: str, stderr: str, key: str | None, kh: str) -> Finding:
    """What an SSH failure means, from ssh's own words."""
    text = stderr.strip()
    last = text.splitlines()[-1] if text else "ssh failed without a message"
    host, _, port = where.rpartition(":")
    check = f"node.{node}.ssh"
    if "Host key verification failed" in text or "host key is known" in text:
        return fail(
            check,
            f"{where}: the host key is not known (or changed) in {kh}",
            f"check the node's fingerprint (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on "
            f"{node}), then: ssh-keyscan -p {port} {host} >> {kh}",
        )
    if "Permission denied" in text:
        key_text = key or "~/.ssh/id_ed25519"
        return fail(
            check,
            f"{user}@{where}: the key was refused ({last})",
            f"ssh-copy-id -i {key_text}.pub -p {port} {user}@{host} "
            "(and check ssh_user / ssh_node_users)",
        )
    return fail(
        check,
        f"{user}@{where}: not reachable ({last})",
        f"check ssh_node_hosts.{node} and that sshd runs on {node}",
    )


def node_findings(
    config: HecateConfig,
    node: str,
    where: str,
    outcome: SshOutcome,
    *,
    known_hosts: str,
) -> list[Finding]:
    """Findings for one node from its probe run."""
    user = config.ssh_node_users.get(node) or config.ssh_user
    key = str(config.ssh_identity_file) if config.ssh_identity_file else None
    is_wol = config.power.method_of(node) == "wol"
    if outcome.returncode != 0 and MARK not in outcome.stdout:
        failure = ssh_failure(node, where, user, outcome.stderr, key, known_hosts)
        return [failure, wol_unchecked(config, node)] if is_wol else [failure]
    probe = parse_probe(outcome.stdout)
    findings = [ok(f"node.{node}.ssh", f"{user}@{where} answers with the configured key")]
    unit = node_unit(config, node)
    if probe.unit_state == "loaded":
        findings.append(ok(f"node.{node}.unit", f"{unit}.service exists"))
    else:
        findings.append(
            fail(
                f"node.{node}.unit",
                f"{unit}.service not found (LoadState {probe.unit_state or 'unknown'})",
                f"is {node} a k3s {'server' if unit == 'k3s' else 'agent'}? fix nodes.servers/"
                "agents, or install k3s there",
            )
        )
    findings += sudo_findings(config, node, user, probe)
    findings.append(skew_finding(node, probe.remote_time, outcome.started, outcome.ended))
    if is_wol:
        findings.append(wol_finding(config, node, probe.wol))
    return findings


def sudo_findings(config: HecateConfig, node: str, user: str, probe: NodeProbe) -> list[Finding]:
    check = f"node.{node}.sudo"
    commands = sudo_commands(config, node)
    broad = probe.sudo.get(len(commands), False)
    if probe.uid == 0:
        return [ok(check, "logs in as root: no sudo needed")]
    if config.node_privilege == "become":
        if broad:
            return [ok(check, f"{user} has full sudo without a password (node_privilege: become)")]
        return [
            fail(
                check,
                f"node_privilege is become but {user} cannot run commands as root with sudo -n",
                f"give {user} NOPASSWD sudo, or use node_privilege: sudo_command with "
                f"{SUDOERS_FILE}",
            )
        ]
    missing = [c for i, c in enumerate(commands) if not probe.sudo.get(i, False)]
    if missing:
        return [_missing_finding(config, node, user, missing)]
    if broad:
        return [
            warn(
                check,
                f"every needed command is allowed, but {user} may also run {BROAD_PROBE} as root",
                f"narrow the rules to {SUDOERS_FILE}",
            )
        ]
    return [ok(check, f"sudo -n allows exactly what Hecate needs ({len(commands)} command(s))")]


def _missing_finding(config: HecateConfig, node: str, user: str, missing: list[str]) -> Finding:
    check = f"node.{node}.sudo"
    if config.cluster.datastore == "auto" and set(missing) <= set(ETCD_SUDO):
        # datastore auto: the servers may run SQLite; without the rules the etcd_quorum stage
        # only warns and the startup goes on, so doctor warns too
        return warn(
            check,
            f"sudo -n does not allow {user} to read etcd: {'; '.join(missing)}",
            f"with embedded etcd, install the HECATE_ETCD rules of {SUDOERS_FILE} on {node}; "
            "with SQLite, set cluster.datastore: sqlite",
        )
    return fail(
        check,
        f"sudo -n does not allow {user}: {'; '.join(missing)}",
        f"install {SUDOERS_FILE} as /etc/sudoers.d/hecate on {node} "
        "(visudo -cf FILE first; user name inside)",
    )


def skew_finding(node: str, remote: float | None, started: float, ended: float) -> Finding:
    check = f"node.{node}.clock"
    if remote is None:
        return warn(check, "the node's clock could not be read", "check `date` on the node")
    middle = (started + ended) / 2
    slack = (ended - started) / 2
    skew = remote - middle
    beyond = abs(skew) - slack
    if beyond > SKEW_WARN_S:
        return warn(
            check,
            f"the node's clock is {skew:+.1f} s off this host's",
            "run a time service on both (systemd-timesyncd or chrony)",
        )
    return ok(check, f"clock within {max(abs(skew), slack):.1f} s of this host")
