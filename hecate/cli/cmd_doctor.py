"""`hecate doctor`: is the cluster really protected? Every probe, then one line per check.

The probes (thin, each bounded) live here; what their outcomes mean is `hecate.core.doctor.cluster`
(pure).
The last result is kept in `state_dir/doctor.json` for `hecate status`.
"""

from __future__ import annotations

import time

import typer

from hecate.adapters.kube.client import Kube
from hecate.adapters.kube.types import KubeNotFoundError
from hecate.adapters.nut.client import NutClient, UpsUnknownError
from hecate.adapters.nut.port import Ups
from hecate.adapters.peers.http import CoordinatorClient, read_token
from hecate.adapters.statedir.files import atomic_write_json
from hecate.adapters.statedir.store import StateStore
from hecate.cli.cmd_doctor_daemon import daemon_read_checks
from hecate.cli.cmd_doctor_nodes import node_checks
from hecate.cli.cmd_doctor_notify import notify_checks
from hecate.cli.cmd_doctor_ports import port_checks
from hecate.cli.cmd_doctor_power import power_checks
from hecate.cli.common import emit_json, now
from hecate.cli.doctor_file import DOCTOR_FILE
from hecate.cli.exits import EXIT_FAILED, EXIT_USAGE
from hecate.cli.options import ConfigOpt, JsonOpt
from hecate.cli.style import BAD, GOOD, NOTE, paint
from hecate.config.checks import secret_file_warnings
from hecate.config.load import DEFAULT_CONFIG_PATH
from hecate.config.model import HecateConfig, load_config
from hecate.core.doctor.cluster import (
    flux_finding,
    gitea_finding,
    nodes_in_cluster_findings,
    placeholder_findings,
    ups_name_finding,
)
from hecate.core.doctor.etcd import etcd_findings
from hecate.core.doctor.findings import (
    Finding,
    fail,
    ok,
    protected,
    render,
    report_json,
    summary,
    warn,
)
from hecate.errors import (
    ConfigError,
    HecateError,
    KubeError,
    StateError,
    UpsAuthError,
    UpsDriverDownError,
    UpsError,
)

__all__ = ["doctor_command"]

GITEA_HINT = "gitea"


def doctor_command(config: ConfigOpt = DEFAULT_CONFIG_PATH, as_json: JsonOpt = False) -> None:
    """Check that the cluster is really protected; exit 0 only when it is.

    Checks: the config is valid and holds no placeholder from the example; the daemon's user
    (the owner of state_dir, hecate-daemon when installed) can read the config, the kubeconfig,
    the SSH key and known hosts and the secret files, also when doctor runs as root; upsd
    serves the UPS (the names it serves when not); the NUT user and password work with the privilege
    ups.auth_check needs; the kubeconfig loads and the API answers; the configured nodes are
    the cluster's; for every node: SSH with the configured key and a known host key, `sudo -n`
    allows exactly the commands Hecate needs, the k3s unit exists, the clock agrees; Flux's
    GitRepository and the Gitea workload exist as configured; each BMC (power.nodes: ipmi,
    redfish) answers and accepts its credentials (read only: no power changes), each Wake-on-LAN
    node's network card wakes on a magic packet (read over SSH), and a warning for every node
    that would stay off if mains returns during a shutdown; the coordinator and peers answer
    with a token that verifies; the metrics and coordination ports can be bound (or are served
    by a running Hecate).

    Every failing line says what to do. The result is kept in STATE_DIR/doctor.json and shown
    by `hecate status`. Exit 1 when any check fails, 2 when the config is invalid.
    """
    try:
        cfg = load_config(config)
    except ConfigError as exc:
        finding = fail(
            "config",
            f"{exc.message}" + "".join(f"; {p}" for p in exc.problems),
            f"fix the file (hecate config check --config {config}), or write one from the "
            "cluster: hecate config init --kubeconfig FILE",
        )
        _emit([finding], str(config), as_json)
        raise typer.Exit(EXIT_USAGE) from None
    findings = run_checks(cfg, str(config))
    saved = _save(cfg, findings, str(config))
    if saved is not None:
        findings.append(saved)
    _emit(findings, str(config), as_json)
    if not protected(findings):
        raise typer.Exit(EXIT_FAILED)


def _emit(findings: list[Finding], config: str, as_json: bool) -> None:
    if as_json:
        emit_json(report_json(findings, time.time(), config))
        return
    for line in render(findings):
        typer.echo(_coloured_finding(line))
    verdict = summary(findings)
    typer.echo(paint(verdict, GOOD if protected(findings) else BAD, bold=True))


def _coloured_finding(line: str) -> str:
    """`ok  `, `WARN` or `FAIL` at the start of a rendered finding, coloured."""
    colour = {"ok  ": GOOD, "WARN": NOTE, "FAIL": BAD}.get(line[:4])
    return paint(line[:4], colour) + line[4:] if colour else line


def _save(cfg: HecateConfig, findings: list[Finding], config: str) -> Finding | None:
    path = cfg.state_dir / DOCTOR_FILE
    try:
        atomic_write_json(path, report_json(findings, time.time(), config))
    except HecateError as exc:
        return warn("doctor.saved", str(exc), "run hecate doctor as root (or the hecate user)")
    return None


def run_checks(cfg: HecateConfig, config_path: str) -> list[Finding]:
    nodes = cfg.nodes
    findings = [
        ok(
            "config",
            f"{config_path} is valid ({len(nodes.servers)} server(s), {len(nodes.agents)} "
            f"agent(s), role {cfg.coordination.role})",
        )
    ]
    findings += [
        warn("config.secrets", text, "see README: Configuration")
        for text in secret_file_warnings(cfg)
    ]
    findings += placeholder_findings(cfg)
    findings += daemon_read_checks(cfg, config_path)
    findings += ups_checks(cfg)
    findings += kube_checks(cfg)
    findings += node_checks(cfg)
    findings += power_checks(cfg)
    findings += coordination_checks(cfg)
    findings += port_checks(cfg)
    findings += notify_checks(cfg)
    findings += _etcd_checks(cfg)
    return findings


def _etcd_checks(cfg: HecateConfig) -> list[Finding]:
    try:
        runs = StateStore(cfg.state_dir).load_runs(move=False)
    except StateError:
        runs = []  # the state checks report an unreadable history
    return etcd_findings(cfg, runs, now())


# --------------------------------------------------------------------------- UPS


def ups_checks(cfg: HecateConfig) -> list[Finding]:
    target = cfg.ups.target  # parsed with the config
    where = f"{target.host}:{target.port}"
    anonymous = NutClient(target, timeout_s=cfg.ups.timeout_seconds, auth_check="none")
    try:
        served = anonymous.ups_names()
    except UpsError as exc:
        return [
            fail(
                "ups.server",
                str(exc),
                f"start upsd (systemctl status nut-server) or fix the host in ups.target ({where})",
            )
        ]
    name = ups_name_finding(target.ups, served, where)
    if name.status != "ok":
        return [name]
    findings = [name]
    if cfg.ups.password_file is None:
        findings.append(
            warn(
                "ups.auth",
                "no ups.password_file: anonymous reads, credentials never checked",
                "set ups.user and ups.password_file (the installer writes "
                "/etc/hecate/nut-password)",
            )
        )
    return findings + _ups_read(cfg)


def _ups_read(cfg: HecateConfig) -> list[Finding]:
    """The read the daemon makes: with the configured user, password and auth_check."""
    findings: list[Finding] = []
    try:
        reading = Ups.from_config(cfg).read()
    except ConfigError as exc:
        return [
            fail(
                "ups.auth",
                str(exc),
                f"write {cfg.ups.user}'s password (from /etc/nut/upsd.users) to "
                f"{cfg.ups.password_file}, mode 0640, group hecate-daemon (the daemon's)",
            ),
        ]
    except UpsAuthError as exc:
        return [
            fail(
                "ups.auth",
                str(exc),
                f"check ups.user / ups.password_file against /etc/nut/upsd.users; auth_check "
                f"{cfg.ups.auth_check} needs 'upsmon primary' (or set ups.auth_check: login)",
            ),
        ]
    except UpsUnknownError as exc:
        return [fail("ups.read", str(exc), "check ups.target")]
    except UpsDriverDownError as exc:
        return [fail("ups.read", str(exc), driver_fix(cfg.ups.target))]
    except UpsError as exc:
        return [fail("ups.read", str(exc), f"check that upsd answers: upsc {cfg.ups.target}")]
    if cfg.ups.password_file is not None:
        findings.append(
            ok("ups.auth", f"user {cfg.ups.user!r} accepted (auth_check {cfg.ups.auth_check})")
        )
    status = reading.status_text or "(empty)"
    if reading.on_battery:
        findings.append(warn("ups.read", f"the UPS is on battery ({status})", "restore mains"))
    else:
        findings.append(
            ok("ups.read", f"{status}, runtime {reading.runtime_s}s, charge {reading.charge_pct}%")
        )
    return findings


def driver_fix(target: str) -> str:
    """What to run when upsd answers but the UPS driver does not: commands every NUT since
    2.7 on systemd accepts (NUT 2.8.0, Debian 12, has no `upsdrvctl status`; its drivers run
    as nut-driver@UPS.service, 2.7's as nut-driver.service: the glob names both)."""
    return (
        "check the UPS cable, then the driver on the NUT host: systemctl status 'nut-driver*' "
        "(journalctl -u 'nut-driver*' says why it stopped; upsdrvctl start starts it where "
        f"systemd does not); upsc {target} answers once it runs"
    )


# --------------------------------------------------------------------------- Kubernetes


def kube_checks(cfg: HecateConfig) -> list[Finding]:
    fix_kubeconfig = (
        "copy /etc/rancher/k3s/k3s.yaml from a server to "
        f"{cfg.kubeconfig} (mode 0640, group hecate-daemon: the daemon reads it) and set its "
        "server: to https://SERVER-ADDRESS:6443"
    )
    try:
        kube = Kube(cfg.kubeconfig, timeout_s=10.0)
    except KubeError as exc:
        return [fail("kube.config", str(exc), fix_kubeconfig)]
    with kube:
        findings = [ok("kube.config", f"{cfg.kubeconfig} loads")]
        if not kube.readyz():
            return [
                *findings,
                fail(
                    "kube.api",
                    f"the API at {kube.server} does not answer /readyz",
                    "is k3s running on the servers? is the kubeconfig's server: reachable "
                    "from this host?",
                ),
            ]
        try:
            details = kube.node_details()
        except KubeError as exc:
            return [
                *findings,
                fail("kube.api", str(exc), "the kubeconfig's credentials must allow reading"),
            ]
        findings.append(ok("kube.api", f"the API answers ({len(details)} node(s))"))
        cluster = {
            d.name: frozenset(
                k.split("/", 1)[1] for k in d.labels if k.startswith("node-role.kubernetes.io/")
            )
            for d in details
        }
        findings += nodes_in_cluster_findings(cfg, cluster)
        findings.append(_flux(kube, cfg))
        findings.append(_gitea(kube, cfg))
    return findings


def _flux(kube: Kube, cfg: HecateConfig) -> Finding:
    ns, name = cfg.startup.flux_namespace, cfg.startup.flux_git_repository
    try:
        kube.flux_object("GitRepository", ns, name)
    except KubeNotFoundError:
        pass
    except KubeError as exc:
        return flux_finding(ns, name, False, [], str(exc))
    else:
        return flux_finding(ns, name, True, [])
    try:
        others = [f"{o.namespace}/{o.name}" for o in kube.flux_objects("GitRepository")]
    except KubeError as exc:
        return flux_finding(ns, name, False, [], str(exc))
    return flux_finding(ns, name, False, sorted(others))


def _gitea(kube: Kube, cfg: HecateConfig) -> Finding:
    ns = cfg.startup.gitea_namespace
    kind, _, name = cfg.startup.gitea_workload.partition("/")
    try:
        kube.workload("deployment" if kind == "deployment" else "statefulset", ns, name)
    except KubeError:
        pass
    else:
        return gitea_finding(cfg.startup.gitea_workload, ns, True, [])
    candidates: list[str] = []
    for kind_name in ("deployment", "statefulset"):
        try:
            found = kube.workloads("deployment" if kind_name == "deployment" else "statefulset")
        except KubeError:
            continue
        candidates += [
            f"{w.namespace}/{kind_name}/{w.name}" for w in found if GITEA_HINT in w.name.lower()
        ]
    return gitea_finding(cfg.startup.gitea_workload, ns, False, sorted(candidates))


# --------------------------------------------------------------------------- coordination


def coordination_checks(cfg: HecateConfig) -> list[Finding]:
    co = cfg.coordination
    addresses = list(co.peer_hosts)
    if co.role == "peer" and co.coordinator_address:
        addresses.insert(0, co.coordinator_address)
    if not addresses:
        return []
    if co.token_file is None:
        return [
            fail(
                "coordination.token",
                "peers are configured but coordination.token_file is not",
                "make a shared secret (head -c 32 /dev/urandom | base64 > FILE; chmod 600) and "
                "set coordination.token_file on every instance",
            )
        ]
    try:
        token = read_token(co.token_file)
    except HecateError as exc:
        return [fail("coordination.token", str(exc), f"write the shared secret to {co.token_file}")]
    findings = []
    for address in addresses:
        what = "coordinator" if address == co.coordinator_address else "peer"
        client = CoordinatorClient(address, token, timeout_s=3.0, attempts=1)
        try:
            client.intent()
        except HecateError as exc:
            refused = "HTTP 401" in str(exc)
            findings.append(
                fail(
                    f"coordination.{address}",
                    f"{what} {address}: {exc}",
                    "the token files differ: copy the same secret to every instance"
                    if refused
                    else f"is hecate.service running on {address}? is the port open?",
                )
            )
        else:
            findings.append(ok(f"coordination.{address}", f"{what} answers, the token verifies"))
    return findings
