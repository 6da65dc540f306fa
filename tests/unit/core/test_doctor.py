"""`hecate doctor`'s pure decisions: placeholders, probe parsing, sudo, clock, UPS names."""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from hecate.cli import cmd_doctor_daemon
from hecate.config.model import HecateConfig, parse_config
from hecate.core.doctor.cluster import (
    EXAMPLE_ADDRESSES,
    EXAMPLE_NODES,
    flux_finding,
    gitea_finding,
    nodes_in_cluster_findings,
    placeholder_findings,
    ups_name_finding,
)
from hecate.core.doctor.daemon_files import DaemonUser, PathMode, daemon_read_findings
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
from hecate.core.doctor.nodes import (
    BROAD_PROBE,
    ETCD_SUDO,
    SUDOERS_FILE,
    SshOutcome,
    node_findings,
    parse_probe,
    probe_script,
    skew_finding,
    sudo_commands,
)

ROOT = Path(__file__).resolve().parents[3]


def config(**data: Any) -> HecateConfig:
    base: dict[str, Any] = {
        "nodes": {"servers": ["s1"], "agents": ["a1", "a2"]},
        "ups": {"target": "pyrphoros@localhost"},
    }
    base.update(data)
    return parse_config(base)


def test_the_placeholders_are_those_of_the_shipped_example() -> None:
    example = yaml.safe_load((ROOT / "configs/hecate.example.yaml").read_text())
    names = example["nodes"]["servers"] + example["nodes"]["agents"]
    assert tuple(names) == EXAMPLE_NODES
    assert tuple(example["ssh_node_hosts"].values()) == EXAMPLE_ADDRESSES
    found = placeholder_findings(parse_config(example))
    assert [f.status for f in found] == ["fail"]
    assert "titan-0" in found[0].detail
    assert "192.168.10.10" in found[0].detail


def test_real_nodes_are_no_placeholders() -> None:
    found = placeholder_findings(config(ssh_node_hosts={"s1": "10.0.0.5:22"}))
    assert [f.status for f in found] == ["ok"]


def test_one_left_over_address_is_enough() -> None:
    # a real node name, but the example's address (with a port) kept
    found = placeholder_findings(config(ssh_node_hosts={"a1": "192.168.10.11:2222"}))
    assert found[0].status == "fail"
    assert "192.168.10.11:2222" in found[0].detail


def test_sudo_commands_follow_the_role_and_the_shutdown_settings() -> None:
    cfg = config()
    assert sudo_commands(cfg, "s1") == [
        "systemctl stop k3s",
        "systemctl start k3s",
        "/usr/local/bin/k3s etcd-snapshot save --name hecate",
        "systemctl poweroff",
        *ETCD_SUDO,  # datastore auto: a server may run embedded etcd
    ]
    assert sudo_commands(cfg, "a1") == [
        "systemctl stop k3s-agent",
        "systemctl start k3s-agent",
        "systemctl poweroff",
    ]
    narrow = config(
        shutdown={"etcd_snapshot": False, "use_killall": True, "poweroff_method": "marker"}
    )
    assert sudo_commands(narrow, "s1") == [
        "systemctl stop k3s",
        "systemctl start k3s",
        "/usr/local/bin/k3s-killall.sh",
        *ETCD_SUDO,
    ]
    sqlite = config(cluster={"datastore": "sqlite"})
    assert not set(ETCD_SUDO) & set(sudo_commands(sqlite, "s1"))
    # a node outside ssh_managed_nodes is never powered off
    unmanaged = config(ssh_managed_nodes=["s1"])
    assert "systemctl poweroff" not in sudo_commands(unmanaged, "a1")


def test_the_probe_script_asks_sudo_for_each_command_and_a_shell_last() -> None:
    script = probe_script(["systemctl stop k3s"], "k3s")
    assert "sudo -n -l systemctl stop k3s" in script
    assert f"sudo -n -l {BROAD_PROBE}" in script
    assert "LoadState --value k3s.service" in script


def probe_output(*sudo: bool, time: str = "1000.5", unit: str = "loaded", uid: str = "1000") -> str:
    lines = ["Welcome to the node! (motd)", f"hecate-doctor time {time}"]
    lines += [f"hecate-doctor uid {uid}", f"hecate-doctor unit {unit}"]
    lines += [f"hecate-doctor sudo {i} {'yes' if v else 'no'}" for i, v in enumerate(sudo)]
    return "\n".join(lines) + "\n"


def test_parse_probe_reads_its_own_lines_only() -> None:
    probe = parse_probe(probe_output(True, False))
    assert probe.remote_time == 1000.5
    assert probe.uid == 1000
    assert probe.unit_state == "loaded"
    assert probe.sudo == {0: True, 1: False}


def test_parse_probe_drops_non_numbers() -> None:
    # busybox date prints a literal %N; nan/inf are no times
    for text in ("nan", "inf", "1000.%N", "-"):
        assert parse_probe(probe_output(time=text)).remote_time is None


@given(st.text())
def test_parse_probe_never_raises(text: str) -> None:
    probe = parse_probe(text)
    assert all(isinstance(k, int) for k in probe.sudo)


def outcome(stdout: str, rc: int = 0, stderr: str = "") -> SshOutcome:
    return SshOutcome(rc, stdout, stderr, started=1000.0, ended=1001.0)


def by_check(findings: list[Finding]) -> dict[str, Finding]:
    return {f.check: f for f in findings}


def test_a_healthy_agent_is_all_ok() -> None:
    cfg = config()
    found = by_check(
        node_findings(
            cfg, "a1", "h:22", outcome(probe_output(*[True] * 3, False)), known_hosts="kh"
        )
    )
    assert {c: f.status for c, f in found.items()} == {
        "node.a1.ssh": "ok",
        "node.a1.unit": "ok",
        "node.a1.sudo": "ok",
        "node.a1.clock": "ok",
    }


def test_a_missing_sudo_rule_is_named() -> None:
    cfg = config()
    out = probe_output(True, False, True, False)  # start k3s-agent refused
    found = by_check(node_findings(cfg, "a1", "h:22", outcome(out), known_hosts="kh"))
    assert found["node.a1.sudo"].status == "fail"
    assert "systemctl start k3s-agent" in found["node.a1.sudo"].detail
    assert "systemctl stop k3s-agent" not in found["node.a1.sudo"].detail
    assert SUDOERS_FILE in found["node.a1.sudo"].fix


def test_sudo_wider_than_needed_is_a_warning() -> None:
    cfg = config()
    out = probe_output(True, True, True, True)  # /bin/sh allowed too
    found = by_check(node_findings(cfg, "a1", "h:22", outcome(out), known_hosts="kh"))
    assert found["node.a1.sudo"].status == "warn"


def test_the_etcd_read_is_probed_as_the_etcd_role_runs_it() -> None:
    # the sudoers rule of the file Hecate ships allows it (a sudoers wildcard), and the role
    # runs exactly this command
    rules = (ROOT / SUDOERS_FILE).read_text()
    (stat,) = ETCD_SUDO
    assert "/usr/bin/stat -c * /var/lib/rancher/k3s/server/*" in rules
    assert stat.startswith("stat -c %n /var/lib/rancher/k3s/server/")
    script = (ROOT / "roles/etcd/files/hecate-etcd.sh").read_text()
    assert "$SUDO stat -c %n $data" in script


@pytest.mark.parametrize(
    ("datastore", "status"),
    [
        ("etcd", "fail"),  # etcd_quorum cannot read the members: a cold start is blind
        ("auto", "warn"),  # SQLite servers need none of it; the stage only warns
    ],
)
def test_missing_etcd_rules_fail_with_etcd_and_warn_with_auto(datastore: str, status: str) -> None:
    cfg = config(cluster={"datastore": datastore})
    needed = len(sudo_commands(cfg, "s1"))
    allowed = [True] * (needed - len(ETCD_SUDO)) + [False] * len(ETCD_SUDO)
    out = probe_output(*allowed, False)
    found = by_check(node_findings(cfg, "s1", "h:22", outcome(out), known_hosts="kh"))
    assert found["node.s1.sudo"].status == status, found["node.s1.sudo"]
    assert "/var/lib/rancher/k3s/server/db/etcd" in found["node.s1.sudo"].detail
    assert SUDOERS_FILE in found["node.s1.sudo"].fix
    # a K3s rule missing too is a failure whatever the datastore
    out = probe_output(False, *allowed[1:], False)
    found = by_check(node_findings(cfg, "s1", "h:22", outcome(out), known_hosts="kh"))
    assert found["node.s1.sudo"].status == "fail"


def test_become_needs_full_sudo_and_root_needs_none() -> None:
    become = config(node_privilege="become")
    narrow = probe_output(True, True, True, False)
    found = by_check(node_findings(become, "a1", "h:22", outcome(narrow), known_hosts="k"))
    assert found["node.a1.sudo"].status == "fail"
    root = probe_output(False, False, False, False, uid="0")
    found = by_check(node_findings(config(), "a1", "h:22", outcome(root), known_hosts="k"))
    assert found["node.a1.sudo"].status == "ok"


def test_a_missing_unit_fails() -> None:
    out = probe_output(True, True, True, False, unit="not-found")
    found = by_check(node_findings(config(), "s1", "h:22", outcome(out), known_hosts="k"))
    assert found["node.s1.unit"].status == "fail"
    assert "k3s.service" in found["node.s1.unit"].detail


def test_ssh_failures_say_what_to_do() -> None:
    cases = {
        "Host key verification failed.": "ssh-keyscan -p 2222 10.0.0.5 >> kh",
        "No ED25519 host key is known for [10.0.0.5]:2222 and you have requested strict "
        "checking.\nHost key verification failed.": "ssh-keyscan",
        "hecate@10.0.0.5: Permission denied (publickey).": "ssh-copy-id -i /k.pub -p 2222",
        "ssh: connect to host 10.0.0.5 port 2222: Connection refused": "ssh_node_hosts.a1",
    }
    cfg = config(ssh_identity_file="/k")
    for stderr, expected in cases.items():
        [finding] = node_findings(
            cfg, "a1", "10.0.0.5:2222", outcome("", 255, stderr), known_hosts="kh"
        )
        assert finding.status == "fail"
        assert expected in finding.fix, (stderr, finding.fix)


def test_clock_skew_counts_the_ssh_round_trip_as_slack() -> None:
    # the probe ran between 1000 and 1001: remote 1003 is 2.5 s off, within 2 s + 0.5 s slack
    assert skew_finding("n", 1003.0, 1000.0, 1001.0).status == "ok"
    assert skew_finding("n", 1003.1, 1000.0, 1001.0).status == "warn"
    assert skew_finding("n", 990.0, 1000.0, 1001.0).status == "warn"
    assert skew_finding("n", None, 1000.0, 1001.0).status == "warn"


def test_a_wrong_ups_name_lists_what_upsd_serves() -> None:
    served = {"pyrphoros": "Eaton", "other": ""}
    finding = ups_name_finding("pyrphros", served, "127.0.0.1:3493")
    assert finding.status == "fail"
    assert "other, pyrphoros" in finding.detail
    assert "@127.0.0.1:3493" in finding.fix
    assert ups_name_finding("pyrphoros", served, "h:1").status == "ok"
    assert ups_name_finding("x", {}, "h:1").status == "fail"


def test_nodes_against_the_cluster() -> None:
    cfg = config()
    cluster = {"s1": frozenset({"control-plane", "master"}), "a1": frozenset(), "a3": frozenset()}
    found = by_check(nodes_in_cluster_findings(cfg, cluster))
    assert found["kube.nodes"].status == "fail"
    assert "a2" in found["kube.nodes"].detail
    assert found["kube.nodes.extra"].status == "warn"
    swapped = {"s1": frozenset(), "a1": frozenset({"control-plane"}), "a2": frozenset()}
    found = by_check(nodes_in_cluster_findings(cfg, swapped))
    assert found["kube.nodes"].status == "ok"
    assert "s1" in found["kube.nodes.roles"].detail
    assert "a1" in found["kube.nodes.roles"].detail


def test_flux_and_gitea_outcomes() -> None:
    assert flux_finding("f", "f", True, []).status == "ok"
    assert flux_finding("f", "x", False, ["f/f"]).status == "fail"
    assert flux_finding("f", "x", False, []).status == "warn"  # no Flux at all
    assert gitea_finding("deployment/g", "g", False, ["g/deployment/gitea"]).status == "fail"
    assert gitea_finding("deployment/g", "g", False, []).status == "warn"


def test_protected_only_without_failures_and_the_report_says_so() -> None:
    findings = [ok("a", "fine"), warn("b", "hm", "look")]
    assert protected(findings)
    report = report_json(findings, 5.0, "/c")
    assert report["protected"] is True
    assert report["warnings"] == 1
    findings.append(fail("c", "broken", "do this"))
    assert not protected(findings)
    lines = render(findings)
    assert any(line.startswith("FAIL  c") for line in lines)
    assert any("fix: do this" in line for line in lines)
    assert summary(findings).startswith("NOT PROTECTED: 1 problem(s)")


# --------------------------------------------------------------------------- the daemon's files

DAEMON = DaemonUser("hecate-daemon", 990, frozenset({990}))
ROOT_DIR = PathMode("/", 0, 0, 0o40755)
ETC = PathMode("/etc", 0, 0, 0o40755)
ETC_HECATE = PathMode("/etc/hecate", 0, 990, 0o40750)


def key(uid: int, gid: int, mode: int) -> list[PathMode]:
    return [ROOT_DIR, ETC, ETC_HECATE, PathMode("/etc/hecate/id_ed25519", uid, gid, mode)]


def test_the_daemon_reads_through_its_group_owner_or_others_bits() -> None:
    # (the file's uid, gid, mode) -> readable by hecate-daemon, and why
    corpus = [
        ((0, 990, 0o100640), True),  # root:hecate-daemon 0640 (other files: the advice)
        ((990, 990, 0o100600), True),  # the daemon's own file
        ((0, 0, 0o100600), False),  # `sudo ssh-keygen` / umask 077 as root: the finding
        ((0, 0, 0o100640), False),  # group read, but root's group
        ((0, 990, 0o100600), False),  # the daemon's group, no group read
        ((0, 0, 0o100644), True),  # world-readable (a warning elsewhere, not a lock-out)
        ((990, 0, 0o100044), False),  # the owner's bits count for the owner, not the group's
    ]
    for (uid, gid, mode), readable in corpus:
        found = daemon_read_findings(DAEMON, {"ssh_identity_file": key(uid, gid, mode)})
        assert protected(found) is readable, (uid, gid, oct(mode), found)
        if not readable:
            assert found[0].check == "daemon.reads.ssh_identity_file"
            # the key becomes the daemon's own: ssh run by root (doctor) refuses a root key
            # its group may read
            assert found[0].fix == (
                "chown hecate-daemon: /etc/hecate/id_ed25519 && chmod 600 /etc/hecate/id_ed25519"
            )


def test_a_directory_the_daemon_cannot_search_is_named() -> None:
    closed = PathMode("/root", 0, 0, 0o40700)
    chain = [ROOT_DIR, closed, PathMode("/root/kubeconfig", 0, 990, 0o100640)]
    [finding] = daemon_read_findings(DAEMON, {"kubeconfig": chain, "config": []})
    assert finding.status == "fail"
    assert "directory /root is 0700" in finding.detail
    assert finding.fix.startswith("chgrp hecate-daemon /root && chmod g+x /root")
    # missing files (empty chains) are other checks' business; all readable: one ok line
    good = daemon_read_findings(DAEMON, {"kubeconfig": key(0, 990, 0o100640), "x": []})
    other = daemon_read_findings(DAEMON, {"kubeconfig": key(0, 0, 0o100600)})
    assert other[0].fix.endswith("&& chmod 640 /etc/hecate/id_ed25519")  # group read suffices
    assert [(f.check, f.status) for f in good] == [("daemon.reads", "ok")]
    assert good[0].detail == "hecate-daemon (hecate.service) can read kubeconfig"


@given(
    uid=st.integers(0, 2000),
    gid=st.integers(0, 2000),
    mode=st.integers(0, 0o777),
)
def test_the_mode_decision_matches_the_kernels_rule(uid: int, gid: int, mode: int) -> None:
    # the classic rule: exactly one class of bits applies (owner, else group, else others)
    found = daemon_read_findings(DAEMON, {"f": key(uid, gid, 0o100000 | mode)})
    if uid == DAEMON.uid:
        bits = mode >> 6
    elif gid in DAEMON.gids:
        bits = mode >> 3
    else:
        bits = mode
    assert protected(found) is bool(bits & 4)


@pytest.mark.skipif(os.geteuid() != 0, reason="files of another user need root")
def test_doctor_as_root_checks_the_files_as_the_state_dirs_owner() -> None:
    nobody = pwd.getpwnam("nobody")
    base = Path(tempfile.mkdtemp(prefix="hecate-doctor-"))
    try:
        base.chmod(0o755)
        state = base / "state"
        state.mkdir()
        os.chown(state, nobody.pw_uid, nobody.pw_gid)
        etc = base / "etc"
        etc.mkdir(mode=0o750)
        os.chown(etc, 0, nobody.pw_gid)
        ident = etc / "id_ed25519"
        ident.write_text("key\n")
        ident.chmod(0o600)  # what `sudo ssh-keygen` leaves: root's alone
        cfg = config(state_dir=str(state), ssh_identity_file=str(ident))
        found = cmd_doctor_daemon.daemon_read_checks(cfg, str(base / "absent.yaml"))
        assert [(f.check, f.status) for f in found] == [
            ("daemon.reads.ssh_identity_file", "fail")
        ], found
        assert found[0].detail.startswith("nobody (hecate.service) cannot read")
        os.chown(ident, nobody.pw_uid, nobody.pw_gid)  # the fix doctor gives: its own, 0600
        found = cmd_doctor_daemon.daemon_read_checks(cfg, str(base / "absent.yaml"))
        assert [(f.check, f.status) for f in found] == [("daemon.reads", "ok")], found
        # a state dir of root's (or of whoever runs doctor): nobody else to check for
        os.chown(state, 0, 0)
        assert cmd_doctor_daemon.daemon_read_checks(cfg, str(base / "absent.yaml")) == []
    finally:
        shutil.rmtree(base)
