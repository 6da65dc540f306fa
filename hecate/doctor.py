"""`hecate doctor`'s decisions (pure: no I/O): what each probe's outcome means and what to do.

The CLI (`hecate/cli/cmd_doctor.py`) runs the probes (NUT, the API, SSH to every node, peers,
ports) and hands their raw outcomes to the functions here, which turn them into findings: a
check name, ok / warn / fail, what was seen and, for anything not ok, what to do. The cluster is
protected (exit 0) only when no finding fails.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from hecate.config import HecateConfig

Status = Literal["ok", "warn", "fail"]

# The example config's stand-in values (configs/hecate.example.yaml): a config still holding
# them was copied and never edited. tests/unit/test_doctor.py keeps these in step with the file.
EXAMPLE_NODES: Final = ("titan-0", "titan-1", "titan-2")
EXAMPLE_ADDRESSES: Final = ("192.168.10.10", "192.168.10.11", "192.168.10.12")

# Clock skew between the Hecate host and a node beyond which TLS and logs get confusing.
SKEW_WARN_S: Final = 2.0

K3S_BIN: Final = "/usr/local/bin/k3s"
KILLALL: Final = "/usr/local/bin/k3s-killall.sh"
# A command no narrow sudoers rule allows: if sudo allows it, the rules are wider than needed.
BROAD_PROBE: Final = "/bin/sh"
MARK: Final = "hecate-doctor"

SUDOERS_FILE: Final = "configs/sudoers-hecate"


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    detail: str
    fix: str = ""

    def to_json(self) -> dict[str, str]:
        return {"check": self.check, "status": self.status, "detail": self.detail, "fix": self.fix}


def ok(check: str, detail: str) -> Finding:
    return Finding(check, "ok", detail)


def warn(check: str, detail: str, fix: str) -> Finding:
    return Finding(check, "warn", detail, fix)


def fail(check: str, detail: str, fix: str) -> Finding:
    return Finding(check, "fail", detail, fix)


def protected(findings: Iterable[Finding]) -> bool:
    return all(f.status != "fail" for f in findings)


def report_json(findings: Sequence[Finding], now: float, config_path: str) -> dict[str, Any]:
    return {
        "protected": protected(findings),
        "checked_at": now,
        "config": config_path,
        "failures": sum(f.status == "fail" for f in findings),
        "warnings": sum(f.status == "warn" for f in findings),
        "findings": [f.to_json() for f in findings],
    }


def render(findings: Sequence[Finding]) -> list[str]:
    """Text lines: `ok|WARN|FAIL  check  detail`, then `fix: ...` under anything not ok."""
    width = max((len(f.check) for f in findings), default=0)
    lines = []
    for f in findings:
        label = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}[f.status]
        lines.append(f"{label}  {f.check:<{width}}  {f.detail}")
        if f.fix:
            lines.append(f"{'':4}  {'':<{width}}  fix: {f.fix}")
    return lines


def summary(findings: Sequence[Finding]) -> str:
    failures = sum(f.status == "fail" for f in findings)
    warnings = sum(f.status == "warn" for f in findings)
    if failures:
        return (
            f"NOT PROTECTED: {failures} problem(s), {warnings} warning(s); fix the FAIL lines "
            "above, then run `hecate doctor` again"
        )
    return f"protected: every check passed ({warnings} warning(s))"


# --------------------------------------------------------------------------- placeholders


def placeholder_findings(config: HecateConfig) -> list[Finding]:
    """The example's stand-in nodes and addresses, still in the config."""
    names = sorted(set(config.nodes.all) & set(EXAMPLE_NODES))
    addresses = sorted(
        {h for h in config.ssh_node_hosts.values() if h.split(":")[0] in EXAMPLE_ADDRESSES}
    )
    if not names and not addresses:
        return [ok("config.placeholders", "no placeholder values from the example")]
    parts = []
    if names:
        parts.append(f"nodes {', '.join(names)}")
    if addresses:
        parts.append(f"addresses {', '.join(addresses)}")
    return [
        fail(
            "config.placeholders",
            f"the example's placeholder values are still there: {'; '.join(parts)}",
            "write the real cluster into the config: "
            "hecate config init --kubeconfig FILE --force (or edit nodes and ssh_node_hosts)",
        )
    ]


# --------------------------------------------------------------------------- UPS


def ups_name_finding(ups: str, served: Mapping[str, str], where: str) -> Finding:
    """Is the configured UPS among those upsd serves (`upsc -l`)?"""
    if ups in served:
        return ok("ups.name", f"upsd at {where} serves {ups!r}")
    if not served:
        return fail(
            "ups.name",
            f"upsd at {where} serves no UPS at all",
            "configure the UPS in /etc/nut/ups.conf (the installer does it) and restart "
            "nut-server; `upsc -l` must list it",
        )
    names = ", ".join(sorted(served))
    first = sorted(served)[0]
    return fail(
        "ups.name",
        f"upsd at {where} serves no UPS named {ups!r}; it serves: {names}",
        f"set ups.target to {first}@{where} (or the right one of: {names})",
    )


# --------------------------------------------------------------------------- nodes over SSH


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
    return commands


def node_unit(config: HecateConfig, node: str) -> str:
    return "k3s" if node in config.nodes.servers else "k3s-agent"


def probe_script(commands: Sequence[str], unit: str) -> str:
    """The shell script doctor runs on a node in one SSH session (read-only: `sudo -l` only)."""
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
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class NodeProbe:
    """What the probe script printed (parsed). Missing pieces stay None."""

    remote_time: float | None = None
    uid: int | None = None
    unit_state: str | None = None
    sudo: Mapping[int, bool] = field(default_factory=dict)


def parse_probe(output: str) -> NodeProbe:
    """Parse the probe script's output; lines that are not its own are ignored (motd, banners)."""
    remote_time: float | None = None
    uid: int | None = None
    unit_state: str | None = None
    sudo: dict[int, bool] = {}
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
    return NodeProbe(remote_time, uid, unit_state, sudo)


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
    if outcome.returncode != 0 and MARK not in outcome.stdout:
        return [ssh_failure(node, where, user, outcome.stderr, key, known_hosts)]
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
        return [
            fail(
                check,
                f"sudo -n does not allow {user}: {'; '.join(missing)}",
                f"install {SUDOERS_FILE} as /etc/sudoers.d/hecate on {node} "
                "(visudo -cf FILE first; user name inside)",
            )
        ]
    if broad:
        return [
            warn(
                check,
                f"every needed command is allowed, but {user} may also run {BROAD_PROBE} as root",
                f"narrow the rules to {SUDOERS_FILE}",
            )
        ]
    return [ok(check, f"sudo -n allows exactly what Hecate needs ({len(commands)} command(s))")]


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


# --------------------------------------------------------------------------- cluster objects


def nodes_in_cluster_findings(
    config: HecateConfig, cluster: Mapping[str, frozenset[str]]
) -> list[Finding]:
    """Configured nodes against the API's Nodes (name -> node-role labels)."""
    findings = []
    missing = [n for n in config.nodes.all if n not in cluster]
    extra = sorted(set(cluster) - set(config.nodes.all))
    if missing:
        findings.append(
            fail(
                "kube.nodes",
                f"configured but not in the cluster: {', '.join(missing)}; the cluster has: "
                f"{', '.join(sorted(cluster)) or 'no nodes'}",
                "fix nodes.servers/agents (hecate config init --kubeconfig FILE --force "
                "writes them from the cluster)",
            )
        )
    else:
        findings.append(ok("kube.nodes", f"all {len(config.nodes.all)} configured node(s) found"))
    if extra:
        findings.append(
            warn(
                "kube.nodes.extra",
                f"in the cluster but not in the config (never stopped by Hecate): "
                f"{', '.join(extra)}",
                "add them to nodes.servers or nodes.agents",
            )
        )
    wrong = [
        n for n in config.nodes.agents if n in cluster and cluster[n] & {"control-plane", "master"}
    ] + [
        n
        for n in config.nodes.servers
        if n in cluster and not cluster[n] & {"control-plane", "master"}
    ]
    if wrong:
        findings.append(
            warn(
                "kube.nodes.roles",
                f"role in the config differs from the cluster's labels: {', '.join(wrong)}",
                "servers carry node-role.kubernetes.io/control-plane; move them to the right list",
            )
        )
    return findings


def flux_finding(
    namespace: str, name: str, found: bool, others: Sequence[str], error: str | None = None
) -> Finding:
    check = "kube.flux"
    if found:
        return ok(check, f"GitRepository {namespace}/{name} found")
    if error is not None and not others:
        return warn(
            check,
            f"no Flux GitRepositories readable ({error})",
            "if the cluster uses Flux, check the kubeconfig's rights; otherwise ignore",
        )
    if not others:
        return warn(
            check,
            "the cluster has no Flux GitRepository: the Flux stages will do nothing",
            "ignore if you do not use Flux",
        )
    return fail(
        check,
        f"GitRepository {namespace}/{name} not found; the cluster has: {', '.join(others)}",
        "set startup.flux_namespace and startup.flux_git_repository to Flux's own source",
    )


def gitea_finding(workload: str, namespace: str, found: bool, candidates: Sequence[str]) -> Finding:
    check = "kube.gitea"
    if found:
        return ok(check, f"{workload} found in {namespace}")
    if candidates:
        return fail(
            check,
            f"{workload} not found in {namespace}; Gitea-like workloads: {', '.join(candidates)}",
            "set startup.gitea_namespace and startup.gitea_workload to one of them",
        )
    return warn(
        check,
        f"{workload} not found in {namespace}, and no Gitea-like workload in the cluster",
        "ignore if Flux's source is not an in-cluster Gitea (the deadlock fallback is unused)",
    )


# --------------------------------------------------------------------------- the daemon's files


@dataclass(frozen=True)
class PathMode:
    """What stat says of one path: its owner, group and permission bits."""

    path: str
    uid: int
    gid: int
    mode: int


@dataclass(frozen=True)
class DaemonUser:
    """The user hecate.service runs as (the owner of state_dir) and its groups."""

    name: str
    uid: int
    gids: frozenset[int]


# Files the daemon's user must own (mode 0600) rather than read through its group.
OWNER_ONLY_FILES: Final = frozenset({"ssh_identity_file"})


def _may(user: DaemonUser, entry: PathMode, bit: int) -> bool:
    """Whether the mode bits give `user` the permission `bit` (4 read, 1 search): the owner's
    bits for the owner, the group's for a member, the others' for anyone else (no ACLs)."""
    if user.uid == 0:
        return True
    if entry.uid == user.uid:
        return bool(entry.mode & (bit << 6))
    if entry.gid in user.gids:
        return bool(entry.mode & (bit << 3))
    return bool(entry.mode & bit)


def daemon_read_findings(
    user: DaemonUser, files: Mapping[str, Sequence[PathMode]]
) -> list[Finding]:
    """Can the unprivileged daemon read what its config names? `files` maps a config key to
    the chain of one file: its directories from / down, then the file. A file root made with
    root's group (`umask 077`, `ssh-keygen`, a copied kubeconfig) passes every other check when
    doctor runs as root, while hecate.service, running as `user`, cannot open it: its shutdown
    would fail at the first SSH connection."""
    findings = []
    for key, chain in sorted(files.items()):
        if not chain:
            continue
        *parents, leaf = chain
        closed = [p for p in parents if not _may(user, p, 1)]
        if closed:
            where = closed[0]
            findings.append(
                fail(
                    f"daemon.reads.{key}",
                    f"{user.name} (hecate.service) cannot reach {leaf.path}: directory "
                    f"{where.path} is {where.mode & 0o7777:04o} {where.uid}:{where.gid}",
                    f"chgrp {user.name} {where.path} && chmod g+x {where.path} (or move the file "
                    "under /etc/hecate)",
                )
            )
        elif not _may(user, leaf, 4):
            # ssh refuses a private key its group may read when its owner runs ssh (root, for
            # doctor): the key becomes the daemon's own, 0600; root still reads it
            fix = (
                f"chown {user.name}: {leaf.path} && chmod 600 {leaf.path}"
                if key in OWNER_ONLY_FILES
                else f"chgrp {user.name} {leaf.path} && chmod 640 {leaf.path}"
            )
            findings.append(
                fail(
                    f"daemon.reads.{key}",
                    f"{user.name} (hecate.service) cannot read {leaf.path} (mode "
                    f"{leaf.mode & 0o7777:04o}, owner {leaf.uid}, group {leaf.gid})",
                    fix,
                )
            )
    if not findings:
        names = ", ".join(sorted(k for k, chain in files.items() if chain))
        findings.append(ok("daemon.reads", f"{user.name} (hecate.service) can read {names}"))
    return findings
