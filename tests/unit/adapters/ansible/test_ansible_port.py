"""The runner port, run for real against localhost (ansible_connection=local): no containers."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from hecate.adapters.ansible.assets import Playbook, PlaybookError, assets_candidates, assets_dir
from hecate.adapters.ansible.events import HostStats, TaskEvent, parse_stats, task_event_from_runner
from hecate.adapters.ansible.port import AnsiblePort
from hecate.adapters.ansible.protocol import Ansible, PlaybookRequest, PlaybookResult
from hecate.adapters.ansible.ssh_preflight import JumpCheck
from hecate.config.model import HecateConfig, parse_config
from hecate.errors import AnsibleRunError

REPO = Path(__file__).resolve().parents[4]

OK_PLAYBOOK = """\
- name: Tiny
  hosts: all
  gather_facts: false
  tasks:
    - name: Say hello
      ansible.builtin.command: echo hello
      changed_when: true
    - name: Look around
      ansible.builtin.debug:
        msg: "{{ greeting | default('none') }}"
    - name: Only on b
      ansible.builtin.debug:
        msg: b
      when: inventory_hostname == 'b'
"""

FAIL_PLAYBOOK = """\
- name: Fails on b
  hosts: all
  gather_facts: false
  tasks:
    - name: Break b
      ansible.builtin.fail:
        msg: b is broken
      when: inventory_hostname == 'b'
    - name: Still runs on the others
      ansible.builtin.debug:
        msg: fine
"""

SLEEP_PLAYBOOK = """\
- name: Slow
  hosts: all
  gather_facts: false
  tasks:
    - name: Sleep a while
      ansible.builtin.command: sleep 60
      changed_when: false
"""

CHECK_PLAYBOOK = """\
- name: Writes a file
  hosts: a
  gather_facts: false
  tasks:
    - name: Write
      ansible.builtin.copy:
        dest: "{{ target }}"
        content: hi
        mode: "0644"
"""


def local_inventory(*hosts: str, extra: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    host_entries: dict[str, Any] = {h: {} for h in hosts}
    for name, values in (extra or {}).items():
        host_entries[name] = values
    return {
        "all": {
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable,
            },
            "children": {"k3s_cluster": {"children": {"server": {"hosts": host_entries}}}},
        }
    }


@pytest.fixture
def playbooks(tmp_path: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for name, text in [
        ("ok", OK_PLAYBOOK),
        ("fail", FAIL_PLAYBOOK),
        ("sleep", SLEEP_PLAYBOOK),
        ("check", CHECK_PLAYBOOK),
    ]:
        path = tmp_path / "pb" / f"{name}.yml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
        out[name] = path
    return out


def make_port(tmp_path: Path, *hosts: str, **kwargs: Any) -> AnsiblePort:
    kwargs.setdefault("remote_tmp", str(tmp_path / "remote-tmp"))
    inventory = kwargs.pop("inventory", None) or local_inventory(*(hosts or ("a", "b", "c")))
    return AnsiblePort(inventory, state_dir=tmp_path / "state", connect_timeout_s=3, **kwargs)


@pytest.fixture
def port(tmp_path: Path) -> Any:
    with make_port(tmp_path) as made:
        yield made


def run_dir_of(result: PlaybookResult) -> Path:
    assert result.artifacts_dir is not None
    return result.artifacts_dir.parents[1]


def test_successful_run_reports_stats_and_timings(
    port: AnsiblePort, playbooks: dict[str, Path]
) -> None:
    events: list[TaskEvent] = []
    result = port.run(
        PlaybookRequest(str(playbooks["ok"]), extravars={"greeting": "hi"}),
        on_event=events.append,
    )
    assert result.status == "successful" and result.rc == 0 and result.ok
    assert result.hosts == {
        "a": HostStats(ok=2, changed=1, skipped=1),
        "b": HostStats(ok=3, changed=1),
        "c": HostStats(ok=2, changed=1, skipped=1),
    }
    assert result.changed_hosts == ["a", "b", "c"]
    assert result.failed_hosts == [] and result.unreachable_hosts == []
    assert 0 < result.duration_s < 60
    hello = [t for t in result.tasks if t.task == "Say hello"]
    assert sorted(t.host for t in hello) == ["a", "b", "c"]
    for timing in hello:
        assert timing.status == "changed"
        assert timing.start is not None and timing.end is not None
        assert timing.start <= timing.end
        assert timing.duration_s is not None and timing.duration_s >= 0
    assert {t.status for t in result.tasks if t.task == "Only on b"} == {"ok", "skipped"}
    # live events: a start and an end for each task and host
    started = [e for e in events if e.status == "started"]
    assert len(started) == 9
    assert {(e.host, e.status) for e in events if e.task == "Say hello"} == {
        (h, s) for h in "abc" for s in ("started", "changed")
    }
    assert all(e.playbook == "ok" for e in events)
    stdout = (result.artifacts_dir or Path()).joinpath("stdout").read_text()
    assert "hi" in stdout  # the extravar reached the play


def test_private_data_dir_layout(
    port: AnsiblePort, playbooks: dict[str, Path], tmp_path: Path
) -> None:
    result = port.run(
        PlaybookRequest(str(playbooks["ok"]), extravars={"greeting": "x"}, timeout_s=42.5)
    )
    run_dir = run_dir_of(result)
    assert run_dir.parent == tmp_path / "state" / "ansible-artifacts"
    assert run_dir.stat().st_mode & 0o077 == 0
    assert yaml.safe_load((run_dir / "inventory" / "hosts").read_text()) == port.inventory
    assert json.loads((run_dir / "env" / "extravars").read_text()) == {"greeting": "x"}
    settings = json.loads((run_dir / "env" / "settings").read_text())
    assert settings["job_timeout"] == 43 and settings["idle_timeout"] == 43
    env = json.loads((run_dir / "env" / "envvars").read_text())
    assert env["ANSIBLE_HOST_KEY_CHECKING"] == "True"
    assert env["ANSIBLE_PIPELINING"] == "True"
    # masters outlive a warm-up long enough for the trigger (flows/warmup.py refreshes them)
    assert "ControlPersist=120s" in env["ANSIBLE_SSH_ARGS"]
    assert "ControlMaster=auto" in env["ANSIBLE_SSH_ARGS"]
    assert env["ANSIBLE_TIMEOUT"] == "3"
    assert int(env["ANSIBLE_FORKS"]) >= 3
    assert env["ANSIBLE_LOCAL_TEMP"].startswith(str(tmp_path / "state"))
    assert env["ANSIBLE_HOME"].startswith(str(tmp_path / "state"))
    assert env["ANSIBLE_REMOTE_TEMP"] == str(tmp_path / "remote-tmp")
    assert env["ANSIBLE_CONFIG"] == str(run_dir / "ansible.cfg")
    assert env["ANSIBLE_ROLES_PATH"] == str(REPO / "roles")
    control = env["ANSIBLE_SSH_CONTROL_PATH_DIR"]
    assert len(control) <= 50 and Path(control).is_dir()
    artifacts = result.artifacts_dir
    assert artifacts is not None
    for name in ("stdout", "status", "rc", "job_events", "command"):
        assert (artifacts / name).exists(), name
    assert (artifacts / "status").read_text() == "successful"


def test_forks_cover_every_node(tmp_path: Path) -> None:
    hosts = [f"n{i}" for i in range(12)]
    with make_port(tmp_path, *hosts, forks=5) as port:
        assert port.forks == 12
        assert port.envvars(tmp_path)["ANSIBLE_FORKS"] == "12"


def test_failing_task_marks_only_that_host(port: AnsiblePort, playbooks: dict[str, Path]) -> None:
    events: list[TaskEvent] = []
    result = port.run(PlaybookRequest(str(playbooks["fail"])), on_event=events.append)
    assert result.status == "failed" and result.rc == 2 and not result.ok
    assert result.failed_hosts == ["b"]
    assert result.succeeded_hosts == ["a", "c"]
    assert result.hosts["a"].ok == 1 and result.hosts["a"].skipped == 1
    failed = [e for e in events if e.status == "failed"]
    assert [(e.host, e.task, e.message) for e in failed] == [("b", "Break b", "b is broken")]
    assert "failed: b" in result.summary()


def test_unreachable_host_is_reported_while_others_run(
    tmp_path: Path, playbooks: dict[str, Path]
) -> None:
    inventory = local_inventory(
        "a",
        extra={
            "down": {
                "ansible_connection": "ssh",
                "ansible_host": "127.0.0.1",
                "ansible_port": 1,
                "ansible_user": "nobody",
                "ansible_ssh_common_args": "-o StrictHostKeyChecking=accept-new "
                f"-o UserKnownHostsFile={tmp_path / 'kh'}",
            }
        },
    )
    with make_port(tmp_path, inventory=inventory) as port:
        events: list[TaskEvent] = []
        result = port.run(PlaybookRequest(str(playbooks["ok"])), on_event=events.append)
    assert result.status == "failed" and result.rc == 4
    assert result.unreachable_hosts == ["down"]
    assert result.hosts["a"].ok == 2 and result.hosts["a"].changed == 1
    assert result.succeeded_hosts == ["a"]
    assert any(e.host == "down" and e.status == "unreachable" for e in events)


def test_limit_narrows_the_hosts(port: AnsiblePort, playbooks: dict[str, Path]) -> None:
    result = port.run(PlaybookRequest(str(playbooks["ok"]), limit=["c", "a"]))
    assert sorted(result.hosts) == ["a", "c"]
    assert result.limit == ("c", "a")


def test_empty_limit_runs_nothing(port: AnsiblePort, playbooks: dict[str, Path]) -> None:
    result = port.run(PlaybookRequest(str(playbooks["ok"]), limit=[]))
    assert result.status == "skipped" and result.ok and result.hosts == {}
    assert result.artifacts_dir is None
    assert not port.artifacts_root.exists()


def test_unknown_host_or_playbook_is_refused(port: AnsiblePort, playbooks: dict[str, Path]) -> None:
    with pytest.raises(PlaybookError, match="not in the inventory"):
        port.run(PlaybookRequest(str(playbooks["ok"]), limit=["a", "zz"]))
    with pytest.raises(PlaybookError, match="not found"):
        port.run(PlaybookRequest("no_such_playbook"))
    with pytest.raises(PlaybookError, match="bare name"):
        port.run(PlaybookRequest("../etc/passwd"))
    assert issubclass(PlaybookError, AnsibleRunError)


def test_request_validation() -> None:
    with pytest.raises(ValueError):
        PlaybookRequest("ping", timeout_s=0)
    with pytest.raises(TypeError):
        PlaybookRequest("ping", limit="a,b")


def test_timeout_reports_timed_out(port: AnsiblePort, playbooks: dict[str, Path]) -> None:
    started = time.monotonic()
    result = port.run(PlaybookRequest(str(playbooks["sleep"]), timeout_s=2))
    assert result.status == "timeout" and result.timed_out and not result.ok
    assert result.rc == 254
    assert "timed out after 2s" in result.detail
    assert time.monotonic() - started < 20


def test_cancellation(port: AnsiblePort, playbooks: dict[str, Path]) -> None:
    cancel = threading.Event()

    def on_event(event: TaskEvent) -> None:
        if event.status == "started" and event.task == "Sleep a while":
            threading.Timer(0.3, cancel.set).start()

    started = time.monotonic()
    result = port.run(PlaybookRequest(str(playbooks["sleep"])), on_event=on_event, cancel=cancel)
    assert result.status == "canceled" and result.canceled and not result.ok
    assert time.monotonic() - started < 20
    # an already-set event does not even start a run
    again = port.run(PlaybookRequest(str(playbooks["sleep"])), cancel=cancel)
    assert again.status == "canceled" and again.artifacts_dir is None


def test_check_mode_changes_nothing(
    port: AnsiblePort, playbooks: dict[str, Path], tmp_path: Path
) -> None:
    target = tmp_path / "written"
    result = port.run(
        PlaybookRequest(str(playbooks["check"]), check=True, extravars={"target": str(target)})
    )
    assert result.ok and result.hosts["a"].changed == 1
    assert not target.exists()
    port.run(PlaybookRequest(str(playbooks["check"]), extravars={"target": str(target)}))
    assert target.read_text() == "hi"


def test_tags_are_passed(port: AnsiblePort, playbooks: dict[str, Path]) -> None:
    result = port.run(PlaybookRequest(str(playbooks["ok"]), tags=["nothing-has-this-tag"]))
    assert result.ok and all(s.ok == 0 for s in result.hosts.values())


def test_artifact_rotation_keeps_the_newest(tmp_path: Path, playbooks: dict[str, Path]) -> None:
    with make_port(tmp_path, "a", keep_runs=2) as port:
        port.artifacts_root.mkdir(parents=True)
        old = [
            port.artifacts_root / f"2000010{i}T000000.000000Z-old-0000000{i}" for i in range(1, 4)
        ]
        for path in old:
            path.mkdir()
        foreign = port.artifacts_root / "not-a-run"
        foreign.mkdir()
        first = run_dir_of(port.run(PlaybookRequest(str(playbooks["ok"]))))
        second = run_dir_of(port.run(PlaybookRequest(str(playbooks["ok"]))))
        left = sorted(p.name for p in port.artifacts_root.iterdir())
        assert left == sorted([first.name, second.name, "not-a-run"])
        assert port.rotate() == []


def test_shipped_ping_playbook_runs_from_the_assets(port: AnsiblePort) -> None:
    result = port.run(PlaybookRequest(Playbook.PING, limit=["a", "b"]))
    assert result.status == "successful"
    assert sorted(result.hosts) == ["a", "b"]
    assert result.tasks and {t.task for t in result.tasks} == {"Ping"}


K3S_SERVICE = {"start_agents", "start_servers", "stop_agents", "stop_servers"}


@pytest.mark.parametrize("name", [p.value for p in Playbook])
def test_every_shipped_playbook_resolves(port: AnsiblePort, name: str) -> None:
    # the four k3s start/stop names are the one k3s_service playbook (group and state as vars)
    file = "k3s_service.yml" if name in K3S_SERVICE else f"{name}.yml"
    assert port.playbook_path(name) == REPO / "playbooks" / file
    assert port.playbook_path(f"{name}.yml") == REPO / "playbooks" / file


def test_every_shipped_playbook_is_a_playbook_name() -> None:
    # nothing in playbooks/ that the port cannot name (install.yml is scripts/install.sh's)
    shipped = {p.stem for p in (REPO / "playbooks").glob("*.yml")}
    named = {p.value for p in Playbook} - K3S_SERVICE | {"k3s_service"}
    assert shipped - {"install"} == named


def test_assets_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HECATE_ASSETS_DIR", raising=False)
    assert assets_dir() == REPO
    fake = tmp_path / "assets"
    (fake / "playbooks").mkdir(parents=True)
    (fake / "roles").mkdir()
    monkeypatch.setenv("HECATE_ASSETS_DIR", str(fake))
    assert assets_dir() == fake
    assert assets_candidates()[0] == fake
    assert Path(sys.prefix) / "share" / "hecate" in assets_candidates()
    (fake / "roles").rmdir()
    assert assets_dir() == REPO  # an incomplete override is skipped


def test_assets_missing_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("hecate.adapters.ansible.assets.assets_candidates", lambda: [tmp_path])
    with pytest.raises(AnsibleRunError, match="HECATE_ASSETS_DIR"):
        assets_dir()


def test_parse_stats() -> None:
    stats = {
        "ok": {"a": 3, "b": 1},
        "changed": {"a": 1},
        "failures": {"b": 1},
        "dark": {"c": 1},
        "skipped": {"a": 2},
        "rescued": {"b": 1},
        "ignored": {},
        "processed": {"a": 1, "b": 1, "c": 1, "d": 1},
    }
    assert parse_stats(stats) == {
        "a": HostStats(ok=3, changed=1, skipped=2),
        "b": HostStats(ok=1, failed=1, rescued=1),
        "c": HostStats(unreachable=1),
        "d": HostStats(),
    }
    assert parse_stats(None) == {}


def test_runner_events_map_to_task_events() -> None:
    def ev(kind: str, **data: Any) -> dict[str, Any]:
        return {"event": kind, "event_data": {"host": "h", "task": "T", **data}}

    assert task_event_from_runner("p", ev("runner_on_start")) == TaskEvent("p", "h", "T", "started")
    changed = task_event_from_runner("p", ev("runner_on_ok", res={"changed": True}, duration=0.5))
    assert changed == TaskEvent("p", "h", "T", "changed", duration_s=0.5)
    ignored = task_event_from_runner(
        "p", ev("runner_on_failed", ignore_errors=True, res={"msg": "x"})
    )
    assert ignored is not None and ignored.status == "ignored" and ignored.message == "x"
    unreachable = task_event_from_runner("p", ev("runner_on_unreachable", res={"msg": "refused"}))
    assert unreachable is not None and unreachable.message == "refused"
    assert task_event_from_runner("p", {"event": "playbook_on_stats", "event_data": {}}) is None
    assert task_event_from_runner("p", ev("runner_item_on_ok")) is None


def test_a_broken_event_callback_does_not_break_the_run(
    port: AnsiblePort, playbooks: dict[str, Path]
) -> None:
    def boom(event: TaskEvent) -> None:
        raise RuntimeError("display crashed")

    assert port.run(PlaybookRequest(str(playbooks["ok"]), limit=["a"]), on_event=boom).ok


def test_from_config_falls_back_and_warns(tmp_path: Path) -> None:
    config = parse_config(
        {
            "nodes": {"servers": ["s1"], "agents": ["a1"]},
            "ups": {"target": "pyrphoros@localhost"},
            "state_dir": str(tmp_path / "st"),
            "ssh_jump_host": "gw",
            "ssh_connect_timeout_seconds": 7,
        }
    )

    def down(_: HecateConfig) -> JumpCheck:
        return JumpCheck(False, "refused")

    with AnsiblePort.from_config(config, check=down) as port:
        assert port.warnings == ["jump host gw unreachable, falling back to direct SSH (refused)"]
        assert "ProxyJump" not in port.inventory["all"]["vars"]["ansible_ssh_common_args"]
        assert port.connect_timeout_s == 7
        assert port.state_dir == tmp_path / "st"
        assert port.hosts == {"s1", "a1"}
        assert port.forks == 2


def test_port_satisfies_the_protocol(port: AnsiblePort) -> None:
    implementation: Ansible = port
    assert callable(implementation.run)


def test_close_removes_the_control_dir(tmp_path: Path) -> None:
    port = make_port(tmp_path)
    control = port.control_path_dir
    assert control.is_dir()
    port.close()
    assert not control.exists()
