"""The shipped playbooks and node roles, run for real through the port on localhost (local
connection) against stand-in ``systemctl``, ``sudo`` and ``k3s`` scripts that record each call:
the one k3s_service playbook driven by group and state, and the one privilege variable
(``hecate_privilege``, from the generated inventory) building every privileged command.
The containers-and-sshd version of the same runs is tests/integration/test_playbooks.py."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hecate.adapters.ansible.port import AnsiblePort
from hecate.adapters.ansible.protocol import PlaybookRequest, PlaybookResult

SYSTEMCTL = """#!/bin/sh
# unit states in $FAKE_STATE/UNIT (active|inactive); every call is recorded
echo "systemctl $*" >> "$FAKE_STATE/calls"
case $1 in
  show)
    case ${2#--property=} in
      LoadState) case $4 in missing-*) echo not-found ;; *) echo loaded ;; esac ;;
      ActiveState) cat "$FAKE_STATE/$4" 2>/dev/null || echo inactive ;;
    esac ;;
  start) echo active > "$FAKE_STATE/$2" ;;
  stop) case $2 in hang-*) sleep 20 ;; esac; echo inactive > "$FAKE_STATE/$2" ;;
esac
"""
SUDO = """#!/bin/sh
echo "sudo $*" >> "$FAKE_STATE/calls"
while [ $# -gt 0 ]; do case $1 in -u) shift 2 ;; -*) shift ;; *) break ;; esac; done
exec "$@"
"""
K3S = """#!/bin/sh
echo "k3s $*" >> "$FAKE_STATE/calls"
"""


class Node:
    def __init__(self, root: Path) -> None:
        self.bin = root / "bin"
        self.state = root / "units"
        self.bin.mkdir(parents=True)
        self.state.mkdir()
        for name, text in (("systemctl", SYSTEMCTL), ("sudo", SUDO), ("k3s", K3S)):
            (self.bin / name).write_text(text)
            (self.bin / name).chmod(0o755)

    def calls(self) -> list[str]:
        path = self.state / "calls"
        return path.read_text().splitlines() if path.exists() else []

    def changes(self) -> list[str]:
        """The calls that change something (not `systemctl show`)."""
        return [c for c in self.calls() if not c.startswith("systemctl show")]

    def set_unit(self, unit: str, state: str) -> None:
        (self.state / unit).write_text(f"{state}\n")

    def unit(self, unit: str) -> str:
        path = self.state / unit
        return path.read_text().strip() if path.exists() else "inactive"


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return Node(tmp_path / "node")


def make_port(
    tmp_path: Path,
    node: Node,
    privilege: Any = "sudo_command",
    host_vars: dict[str, dict[str, Any]] | None = None,
) -> AnsiblePort:
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    extra = host_vars or {}  # e.g. {"a1": {"k3s_service_unit": "missing-unit"}}: a1's stop fails
    inventory = {
        "all": {
            "vars": {
                **local,
                # what hecate/adapters/ansible/inventory.py sets from node_privilege
                "hecate_privilege": privilege,
                "ansible_become_exe": str(node.bin / "sudo"),
            },
            "children": {
                "k3s_cluster": {
                    "children": {
                        "server": {"hosts": {"s1": dict(extra.get("s1", {}))}},
                        "agent": {
                            "hosts": {
                                "a1": dict(extra.get("a1", {})),
                                "a2": dict(extra.get("a2", {})),
                            }
                        },
                    }
                },
                "managed": {"hosts": {"a1": {}}},
            },
        }
    }
    # the stand-ins first; ansible-playbook from this interpreter's venv
    path = f"{node.bin}:{Path(sys.executable).parent}:/usr/bin:/bin"
    # root becoming root: Ansible skips become for the same user unless told not to
    env = {"PATH": path, "FAKE_STATE": str(node.state), "ANSIBLE_BECOME_ALLOW_SAME_USER": "True"}
    return AnsiblePort(
        inventory,
        state_dir=tmp_path / "state",
        connect_timeout_s=3,
        remote_tmp=str(tmp_path / "remote-tmp"),
        extra_env=env,
    )


@pytest.fixture
def port(tmp_path: Path, node: Node) -> Iterator[AnsiblePort]:
    with make_port(tmp_path, node) as made:
        yield made


def test_stop_agents_is_k3s_service_on_the_agents_only(port: AnsiblePort, node: Node) -> None:
    node.set_unit("k3s-agent", "active")
    node.set_unit("k3s", "active")
    result = port.run(PlaybookRequest("stop_agents", extravars={"k3s_service_timeout_s": 5}))
    assert result.ok, result.summary()
    assert result.playbook == "stop_agents"  # the stage's name, not the file's
    assert sorted(result.hosts) == ["a1", "a2"]  # the agent group, never the server
    # Both agents share the stand-in's one unit and run at once (forks): the second finds it
    # stopped, or read it as active just before and stops it too. Either way only k3s-agent is
    # stopped, always through the exact sudoers command.
    changes = node.changes()
    stop = ["sudo -n systemctl stop k3s-agent", "systemctl stop k3s-agent"]
    assert sorted(changes) in (sorted(stop), sorted(stop * 2)), changes
    assert node.unit("k3s-agent") == "inactive"
    assert node.unit("k3s") == "active"


def test_start_servers_starts_k3s_on_the_servers(port: AnsiblePort, node: Node) -> None:
    result = port.run(PlaybookRequest("start_servers", extravars={"k3s_service_timeout_s": 5}))
    assert result.ok, result.summary()
    assert sorted(result.hosts) == ["s1"]
    assert node.changes() == ["sudo -n systemctl start k3s", "systemctl start k3s"]
    assert node.unit("k3s") == "active"


def touched_nothing(result: PlaybookResult, node: Node) -> None:
    assert not result.ok
    assert node.calls() == []  # validation fails before any node command


@pytest.mark.parametrize(
    "extravars",
    [
        # no group: the play has no hosts pattern and fails, it never means every host
        {"k3s_service_state": "stopped"},
        # not a group the role accepts (argument spec choices)
        {"k3s_service_group": "all", "k3s_service_state": "stopped"},
        {"k3s_service_group": "managed", "k3s_service_state": "stopped"},
        {"k3s_service_group": "agent", "k3s_service_state": "restarted"},
    ],
    ids=["no-group", "group-all", "group-managed", "bad-state"],
)
def test_k3s_service_refuses_what_its_spec_does_not_allow(
    port: AnsiblePort, node: Node, extravars: dict[str, str]
) -> None:
    touched_nothing(port.run(PlaybookRequest("k3s_service", extravars=extravars)), node)


@pytest.mark.parametrize(
    "extravars",
    [{"etcd_action": "delete_everything"}, {"etcd_action": "probe", "etcd_timeout_s": "soon"}],
    ids=["bad-action", "bad-timeout"],
)
def test_the_etcd_playbook_refuses_what_its_spec_does_not_allow_once_for_the_play(
    port: AnsiblePort, node: Node, extravars: dict[str, str]
) -> None:
    """Validated once on the controller (not per host): still before any node command."""
    result = port.run(PlaybookRequest("etcd", limit=["s1"], extravars=extravars))
    touched_nothing(result, node)
    assert [t.task for t in result.tasks] == ["Validate the etcd arguments once"]


def test_an_unknown_privilege_is_refused_before_any_node_command(
    tmp_path: Path, node: Node
) -> None:
    with make_port(tmp_path, node, privilege="sudo") as port:
        touched_nothing(port.run(PlaybookRequest("stop_agents")), node)
        touched_nothing(
            port.run(PlaybookRequest("poweroff", limit=["a1"], extravars=power(node))), node
        )


def power(node: Node) -> dict[str, Any]:
    # the stand-in by absolute path: nothing on this machine can be powered off by the test
    return {"node_power_command": [str(node.bin / "systemctl"), "poweroff"]}


def wait_for_call(node: Node, fragment: str, timeout_s: float = 20.0) -> list[str]:
    """The poweroff is fire and forget (async, poll 0): its call lands after the play ends."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        calls = node.calls()
        if any(fragment in c for c in calls):
            return calls
        time.sleep(0.1)
    raise AssertionError(f"no call with {fragment!r} in {node.calls()}")


def test_poweroff_with_sudo_command_is_sudo_n(port: AnsiblePort, node: Node) -> None:
    result = port.run(PlaybookRequest("poweroff", limit=["a1"], extravars=power(node)))
    assert result.ok, result.summary()
    calls = wait_for_call(node, "systemctl poweroff")
    assert calls == [f"sudo -n {node.bin}/systemctl poweroff", "systemctl poweroff"]


def test_poweroff_with_become_uses_become_and_no_sudo_prefix(tmp_path: Path, node: Node) -> None:
    with make_port(tmp_path, node, privilege="become") as port:
        result = port.run(PlaybookRequest("poweroff", limit=["a1"], extravars=power(node)))
    assert result.ok, result.summary()
    calls = wait_for_call(node, "systemctl poweroff")
    # become's own sudo wraps the module, whose command has no `sudo -n` of its own
    assert any(c.startswith("sudo ") and "-u root" in c for c in calls), calls
    assert calls[-1] == "systemctl poweroff"
    assert not any(c.startswith("sudo -n ") and "systemctl poweroff" in c for c in calls)


@pytest.mark.parametrize("privilege", ["sudo_command", "become"])
def test_etcd_snapshot_builds_its_command_from_the_one_privilege(
    tmp_path: Path, node: Node, privilege: str
) -> None:
    k3s = str(node.bin / "k3s")
    extravars = {"etcd_snapshot_k3s_bin": k3s, "etcd_snapshot_name": "t"}
    with make_port(tmp_path, node, privilege=privilege) as port:
        result = port.run(PlaybookRequest("etcd_snapshot", limit=["s1"], extravars=extravars))
    assert result.ok, result.summary()
    calls = node.calls()
    assert calls[-1] == "k3s etcd-snapshot save --name t"
    if privilege == "sudo_command":
        assert calls == [f"sudo -n {k3s} etcd-snapshot save --name t", calls[-1]]
    else:
        assert calls[0].startswith("sudo ") and "-u root" in calls[0]
        assert not any(c.startswith("sudo -n " + k3s) for c in calls)


def test_marker_mode_is_one_raw_step_idempotent_and_check_mode_safe(
    tmp_path: Path, node: Node
) -> None:
    marker = tmp_path / "marker"
    extravars = {"node_power_mode": "marker", "node_power_marker_path": str(marker)}
    with make_port(tmp_path, node) as port:
        checked = port.run(
            PlaybookRequest("poweroff", limit=["a1"], extravars=extravars, check=True)
        )
        assert checked.ok and checked.changed_hosts == ["a1"], checked.summary()  # would change
        assert not marker.exists()  # and changed nothing
        first = port.run(PlaybookRequest("poweroff", limit=["a1"], extravars=extravars))
        again = port.run(PlaybookRequest("poweroff", limit=["a1"], extravars=extravars))
    assert first.changed_hosts == ["a1"] and again.ok and again.changed_hosts == []
    assert marker.read_text() == "poweroff requested by hecate\n"
    assert node.calls() == []  # no poweroff command in marker mode
    # one step on the host (no Python shipped); the arguments validated once, on the controller
    assert {t.task for t in first.tasks if t.status != "skipped"} == {
        "Validate the node_power arguments once",
        "Power off, or write the marker, in one step",
    }
