"""The inventory generated from the SSH settings: every knob, the groups, host-key checking."""

from __future__ import annotations

import itertools
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from hecate.adapters.ansible.inventory import (
    build_inventory,
    inventory_hosts,
    jump_preflight_argv,
    plan_inventory,
    render_inventory,
    split_host_port,
)
from hecate.adapters.ansible.ssh_preflight import JumpCheck, check_jump_host, prepare_inventory
from hecate.config.model import HecateConfig, parse_config
from hecate.errors import ConfigError

NODES = {"servers": ["s1", "s2"], "agents": ["a1", "a2"]}


def make_config(tmp_path: Path, **overrides: Any) -> HecateConfig:
    data: dict[str, Any] = {
        "nodes": NODES,
        "ups": {"target": "pyrphoros@localhost"},
        "state_dir": str(tmp_path / "state"),
    }
    data.update(overrides)
    return parse_config(data)


def host_vars(inventory: dict[str, Any], host: str) -> dict[str, Any]:
    groups = inventory["all"]["children"]["k3s_cluster"]["children"]
    for group in groups.values():
        if host in group["hosts"]:
            return dict(group["hosts"][host])
    raise KeyError(host)


def common_args(inventory: dict[str, Any]) -> list[str]:
    return shlex.split(inventory["all"]["vars"]["ansible_ssh_common_args"])


def options(args: list[str]) -> dict[str, str]:
    """The ``-o KEY=VALUE`` options of an ssh argument list."""
    found: dict[str, str] = {}
    for flag, value in itertools.pairwise(args):
        if flag == "-o":
            key, _, val = value.partition("=")
            found[key] = val
    return found


# (id, config overrides, host -> expected (ansible_host, ansible_port, ansible_user),
#  expected ProxyJump or None, expected -F file or None, expected key file or None)
CASES: list[
    tuple[str, dict[str, Any], dict[str, tuple[str, int, str]], str | None, str | None, str | None]
] = [
    (
        "defaults",
        {},
        {"s1": ("s1", 22, "root"), "a2": ("a2", 22, "root")},
        None,
        None,
        None,
    ),
    (
        "global user and port",
        {"ssh_user": "hecate", "ssh_port": 2200},
        {"s1": ("s1", 2200, "hecate"), "a1": ("a1", 2200, "hecate")},
        None,
        None,
        None,
    ),
    (
        "per-node users",
        {"ssh_user": "hecate", "ssh_node_users": {"a1": "pi", "s2": "admin"}},
        {"a1": ("a1", 22, "pi"), "s2": ("s2", 22, "admin"), "s1": ("s1", 22, "hecate")},
        None,
        None,
        None,
    ),
    (
        "per-node hosts",
        {"ssh_node_hosts": {"s1": "10.0.0.11", "a1": "a1.lan"}},
        {"s1": ("10.0.0.11", 22, "root"), "a1": ("a1.lan", 22, "root"), "a2": ("a2", 22, "root")},
        None,
        None,
        None,
    ),
    (
        "per-node host:port overrides the global port",
        {
            "ssh_port": 2200,
            "ssh_node_hosts": {"s1": "127.0.0.1:2222", "a1": "[::1]:2223", "a2": "fe80::2"},
        },
        {
            "s1": ("127.0.0.1", 2222, "root"),
            "a1": ("::1", 2223, "root"),
            "a2": ("fe80::2", 2200, "root"),
            "s2": ("s2", 2200, "root"),
        },
        None,
        None,
        None,
    ),
    (
        "jump host without user",
        {"ssh_jump_host": "bastion"},
        {"s1": ("s1", 22, "root")},
        "bastion",
        None,
        None,
    ),
    (
        "jump host with user and port",
        {"ssh_jump_host": "bastion:2022", "ssh_jump_user": "jumper", "ssh_user": "hecate"},
        {"a1": ("a1", 22, "hecate")},
        "jumper@bastion:2022",
        None,
        None,
    ),
    (
        "identity file and ssh config file",
        {
            "ssh_identity_file": "/etc/hecate/id_ed25519",
            "ssh_config_file": "/etc/hecate/ssh_config",
        },
        {"s1": ("s1", 22, "root")},
        None,
        "/etc/hecate/ssh_config",
        "/etc/hecate/id_ed25519",
    ),
    (
        "everything at once",
        {
            "ssh_user": "hecate",
            "ssh_port": 2200,
            "ssh_jump_host": "gw",
            "ssh_jump_user": "ops",
            "ssh_node_users": {"s2": "root"},
            "ssh_node_hosts": {"a2": "192.168.1.9:22"},
            "ssh_identity_file": "/k/id",
            "ssh_config_file": "/k/config",
            "ssh_managed_nodes": ["a1", "a2"],
        },
        {
            "s1": ("s1", 2200, "hecate"),
            "s2": ("s2", 2200, "root"),
            "a2": ("192.168.1.9", 22, "hecate"),
        },
        "ops@gw",
        "/k/config",
        "/k/id",
    ),
]


@pytest.mark.parametrize(
    ("overrides", "targets", "jump", "config_file", "key_file"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_ssh_knobs(
    tmp_path: Path,
    overrides: dict[str, Any],
    targets: dict[str, tuple[str, int, str]],
    jump: str | None,
    config_file: str | None,
    key_file: str | None,
) -> None:
    config = make_config(tmp_path, **overrides)
    inventory = build_inventory(config)
    for host, (address, port, user) in targets.items():
        hv = host_vars(inventory, host)
        assert (hv["ansible_host"], hv["ansible_port"], hv["ansible_user"]) == (address, port, user)
    args = common_args(inventory)
    opts = options(args)
    assert opts.get("ProxyJump") == jump
    if config_file:
        assert args[args.index("-F") + 1] == config_file
    else:
        assert "-F" not in args
    assert inventory["all"]["vars"].get("ansible_ssh_private_key_file") == key_file
    # host-key checking: on, learning new hosts into Hecate's own known_hosts
    assert opts["StrictHostKeyChecking"] == "accept-new"
    assert opts["UserKnownHostsFile"] == str(tmp_path / "state" / "ssh_known_hosts")
    # the direct fallback keeps everything but the jump
    direct = build_inventory(config, via_jump=False)
    assert "ProxyJump" not in options(common_args(direct))
    assert options(common_args(direct))["StrictHostKeyChecking"] == "accept-new"


@pytest.mark.parametrize(
    "overrides",
    [case[1] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_host_key_checking_is_never_disabled(tmp_path: Path, overrides: dict[str, Any]) -> None:
    config = make_config(tmp_path, **overrides)
    for via_jump in (True, False):
        text = render_inventory(config, via_jump=via_jump).lower()
        assert "stricthostkeychecking=no" not in text
        assert "/dev/null" not in text
        data = yaml.safe_load(text)
        # nothing overrides ANSIBLE_HOST_KEY_CHECKING
        assert "ansible_host_key_checking" not in data["all"]["vars"]
        assert "ansible_ssh_host_key_checking" not in data["all"]["vars"]


def test_groups_and_managed_flag(tmp_path: Path) -> None:
    config = make_config(tmp_path, ssh_managed_nodes=["a2", "s1"])
    inventory = build_inventory(config)
    children = inventory["all"]["children"]
    cluster = children["k3s_cluster"]["children"]
    assert list(cluster["server"]["hosts"]) == ["s1", "s2"]
    assert list(cluster["agent"]["hosts"]) == ["a1", "a2"]
    assert list(children["managed"]["hosts"]) == ["s1", "a2"]  # config order: servers, agents
    assert {h: host_vars(inventory, h)["hecate_managed"] for h in ["s1", "s2", "a1", "a2"]} == {
        "s1": True,
        "s2": False,
        "a1": False,
        "a2": True,
    }
    assert host_vars(inventory, "s2")["hecate_role"] == "server"
    assert host_vars(inventory, "a1")["hecate_role"] == "agent"
    assert inventory_hosts(inventory) == {"s1", "s2", "a1", "a2"}


def test_all_nodes_managed_by_default(tmp_path: Path) -> None:
    inventory = build_inventory(make_config(tmp_path))
    assert list(inventory["all"]["children"]["managed"]["hosts"]) == ["s1", "s2", "a1", "a2"]


def test_empty_managed_list_manages_nothing(tmp_path: Path) -> None:
    inventory = build_inventory(make_config(tmp_path, ssh_managed_nodes=[]))
    assert inventory["all"]["children"]["managed"]["hosts"] == {}
    assert not any(host_vars(inventory, h)["hecate_managed"] for h in ["s1", "a1"])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("node1", ("node1", None)),
        ("node1:2222", ("node1", 2222)),
        ("10.1.2.3:22", ("10.1.2.3", 22)),
        ("[fe80::1]:2200", ("fe80::1", 2200)),
        ("[fe80::1]", ("fe80::1", None)),
        ("fe80::1", ("fe80::1", None)),
    ],
)
def test_split_host_port(value: str, expected: tuple[str, int | None]) -> None:
    assert split_host_port(value) == expected


@pytest.mark.parametrize("value", ["", ":22", "host:0", "host:65536", "host:x", "[::1", "[::1]x"])
def test_split_host_port_rejects(value: str) -> None:
    with pytest.raises(ValueError):
        split_host_port(value)


def test_bad_node_host_names_the_key(tmp_path: Path) -> None:
    # Issue #12: a bad port is refused when the config is loaded, under its field path, and
    # never reaches node_target (which then cannot fail).
    with pytest.raises(ConfigError, match=r"ssh_node_hosts\.a1"):
        make_config(tmp_path, ssh_node_hosts={"a1": "a1:99999"})


@pytest.mark.parametrize(
    ("reachable", "via_jump", "warned"),
    [(None, True, False), (True, True, False), (False, False, True)],
)
def test_plan_falls_back_to_direct(
    tmp_path: Path, reachable: bool | None, via_jump: bool, warned: bool
) -> None:
    config = make_config(tmp_path, ssh_jump_host="bastion", ssh_jump_user="ops")
    plan = plan_inventory(config, jump_reachable=reachable, jump_detail="timed out")
    assert plan.via_jump is via_jump
    assert ("ProxyJump" in options(common_args(plan.data))) is via_jump
    if warned:
        assert plan.warnings == [
            "jump host ops@bastion unreachable, falling back to direct SSH (timed out)"
        ]
    else:
        assert plan.warnings == []
    assert yaml.safe_load(plan.render()) == plan.data


def test_plan_without_jump_host_never_warns(tmp_path: Path) -> None:
    plan = plan_inventory(make_config(tmp_path), jump_reachable=False)
    assert plan.warnings == [] and not plan.via_jump


def test_prepare_inventory_runs_the_preflight_only_with_a_jump_host(tmp_path: Path) -> None:
    calls: list[str] = []

    def failing(config: HecateConfig) -> JumpCheck:
        calls.append(str(config.ssh_jump_host))
        return JumpCheck(False, "Connection refused")

    plain = prepare_inventory(make_config(tmp_path), check=failing)
    assert calls == [] and plain.warnings == []
    jumpy = make_config(tmp_path, ssh_jump_host="gw")
    plan = prepare_inventory(jumpy, check=failing)
    assert calls == ["gw"]
    assert not plan.via_jump
    assert plan.warnings == [
        "jump host gw unreachable, falling back to direct SSH (Connection refused)"
    ]
    skipped = prepare_inventory(jumpy, check=failing, preflight=False)
    assert skipped.via_jump and calls == ["gw"]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"ssh_jump_host": "gw"},
            ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "gw", "true"],
        ),
        (
            {
                "ssh_jump_host": "gw:2022",
                "ssh_jump_user": "ops",
                "ssh_config_file": "/c",
                "ssh_connect_timeout_seconds": 3,
            },
            [
                "ssh",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=3",
                "-F",
                "/c",
                "-l",
                "ops",
                "-p",
                "2022",
                "gw",
                "true",
            ],
        ),
    ],
)
def test_jump_preflight_argv(
    tmp_path: Path, overrides: dict[str, Any], expected: list[str]
) -> None:
    assert jump_preflight_argv(make_config(tmp_path, **overrides)) == expected


def test_jump_preflight_needs_a_jump_host(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        jump_preflight_argv(make_config(tmp_path))


def test_check_jump_host_reports_ssh_failure(tmp_path: Path) -> None:
    def fake_run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        assert argv[-2:] == ["gw", "true"] and kwargs["stdin"] == subprocess.DEVNULL
        return subprocess.CompletedProcess(argv, 255, "", "warning\nssh: connect: No route\n")

    def fake_timeout(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        raise subprocess.TimeoutExpired(argv, kwargs["timeout"])

    def fake_ok(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(argv, 0, "", "")

    config = make_config(tmp_path, ssh_jump_host="gw", ssh_connect_timeout_seconds=2)
    assert check_jump_host(config, run=fake_run) == JumpCheck(False, "ssh: connect: No route")
    assert check_jump_host(config, run=fake_timeout) == JumpCheck(False, "no answer within 7s")
    assert check_jump_host(config, run=fake_ok) == JumpCheck(True)


def test_real_preflight_fails_fast_on_a_closed_port(tmp_path: Path) -> None:
    config = make_config(
        tmp_path, ssh_jump_host="127.0.0.1:1", ssh_connect_timeout_seconds=3, ssh_user="hecate"
    )
    outcome = check_jump_host(config)
    assert not outcome.ok and outcome.detail
    plan = prepare_inventory(config)
    assert not plan.via_jump and "127.0.0.1:1 unreachable" in plan.warnings[0]


@pytest.mark.parametrize("privilege", ["sudo_command", "become"])
def test_node_privilege_is_the_one_inventory_variable(tmp_path: Path, privilege: str) -> None:
    inventory = build_inventory(make_config(tmp_path, node_privilege=privilege))
    assert inventory["all"]["vars"]["hecate_privilege"] == privilege
    # set once for all hosts, never per role or per host
    for group in inventory["all"]["children"]["k3s_cluster"]["children"].values():
        for values in group["hosts"].values():
            assert not any("privilege" in key for key in values)
    assert "hecate_privilege: " + privilege in render_inventory(
        make_config(tmp_path, node_privilege=privilege)
    )


def test_rendered_inventory_parses_with_ansible(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        ssh_jump_host="gw",
        ssh_node_hosts={"s1": "127.0.0.1:2222"},
        ssh_managed_nodes=["a1"],
        ssh_identity_file="/k/id",
    )
    path = tmp_path / "hosts.yml"
    path.write_text(render_inventory(config))
    bindir = Path(sys.executable).parent
    env = dict(
        os.environ,
        PATH=f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
        ANSIBLE_HOME=str(tmp_path / "ah"),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "at"),
        ANSIBLE_CONFIG=str(tmp_path / "none.cfg"),
    )
    done = subprocess.run(
        ["ansible-inventory", "-i", str(path), "--list"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    )
    listed = json.loads(done.stdout)
    assert sorted(listed["server"]["hosts"]) == ["s1", "s2"]
    assert sorted(listed["agent"]["hosts"]) == ["a1", "a2"]
    assert listed["managed"]["hosts"] == ["a1"]
    assert sorted(listed["k3s_cluster"]["children"]) == ["agent", "server"]
    s1 = listed["_meta"]["hostvars"]["s1"]
    assert (s1["ansible_host"], s1["ansible_port"]) == ("127.0.0.1", 2222)
    assert "ProxyJump=gw" in s1["ansible_ssh_common_args"]
    assert s1["ansible_ssh_private_key_file"] == "/k/id"
    # the one privilege variable reaches every host (what the node roles build commands from)
    assert {v["hecate_privilege"] for v in listed["_meta"]["hostvars"].values()} == {"sudo_command"}
