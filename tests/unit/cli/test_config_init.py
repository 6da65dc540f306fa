"""`hecate config init`'s pure part: the plan from what was read, and the rendering."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from hecate.adapters.kube.types import NodeDetails, WorkloadInfo
from hecate.cli.cmd_config_init import _write
from hecate.cli.config_init_text import Discovery, FluxSource, plan_config, render_config
from hecate.cli.main import run
from hecate.config.model import parse_config
from hecate.errors import HecateError

EXAMPLE = (Path(__file__).resolve().parents[3] / "configs/hecate.example.yaml").read_text()
SERVER = {"node-role.kubernetes.io/control-plane": "true", "node-role.kubernetes.io/master": "true"}


def node(name: str, ip: str | None, labels: dict[str, str] | None = None) -> NodeDetails:
    return NodeDetails(name, labels or {}, ip)


def discovery(**kwargs: object) -> Discovery:
    base: dict[str, object] = {
        "kubeconfig": "/etc/hecate/kubeconfig.yaml",
        "nodes": [
            node("cp-1", "10.0.0.1", SERVER),
            node("w-2", "10.0.0.12"),
            node("w-1", "10.0.0.11"),
            # a master label alone (older k3s) still makes a server
            node("cp-2", "10.0.0.2", {"node-role.kubernetes.io/master": "true"}),
        ],
        "git_repositories": [
            FluxSource("apps", "podinfo"),
            FluxSource("flux-system", "flux-system"),
        ],
        "workloads": [
            WorkloadInfo("statefulset", "gitea", "gitea-postgresql", 1, 1),
            WorkloadInfo("deployment", "gitea", "gitea", 1, 1),
            WorkloadInfo("deployment", "kube-system", "coredns", 1, 1),
        ],
        "ups_names": ["pyrphoros"],
        "nut_where": "localhost",
        "api_server": "https://10.0.0.1:6443",
    }
    base.update(kwargs)
    return Discovery(**base)  # type: ignore[arg-type]


def test_the_plan_has_the_real_cluster() -> None:
    plan = plan_config(discovery())
    v = plan.values
    assert v[("nodes", "servers")] == ["cp-1", "cp-2"]
    assert v[("nodes", "agents")] == ["w-1", "w-2"]
    assert v[("ssh_node_hosts",)] == {
        "cp-1": "10.0.0.1",
        "cp-2": "10.0.0.2",
        "w-1": "10.0.0.11",
        "w-2": "10.0.0.12",
    }
    assert v[("startup", "flux_git_repository")] == "flux-system"
    assert v[("startup", "gitea_workload")] == "deployment/gitea"
    assert v[("ups", "target")] == "pyrphoros@localhost"
    assert v[("startup", "foundation_workloads")][0]["name"] == "coredns"
    assert not any("kubeconfig's server" in t for t in plan.todo)


def test_what_is_left_to_decide_is_said() -> None:
    plan = plan_config(
        discovery(
            nodes=[node("a", None)],
            git_repositories=[],
            workloads=[],
            ups_names=["u1", "u2"],
            api_server="https://127.0.0.1:6443",
        )
    )
    todo = "\n".join(plan.todo)
    assert "no node carries node-role.kubernetes.io/control-plane" in todo
    assert "no InternalIP for a" in todo
    assert "several UPSes (u1, u2)" in todo
    assert "kubeconfig's server is https://127.0.0.1:6443" in todo
    assert plan.values[("startup", "foundation_workloads")] == []  # no coredns there
    assert ("startup", "gitea_workload") not in plan.values
    assert plan.todo[-1] == "then run: hecate doctor"


def test_an_existing_config_gives_the_operators_choices() -> None:
    existing = {"ssh_user": "ops", "ups": {"user": "watcher", "password_file": "/p"}}
    plan = plan_config(discovery(existing=existing))
    assert plan.values[("ssh_user",)] == "ops"
    assert plan.values[("ups", "user")] == "watcher"
    assert ("ssh_identity_file",) not in plan.values  # not in the old file: the example's


def test_rendering_keeps_every_comment_and_reads_back() -> None:
    plan = plan_config(discovery())
    text = render_config(EXAMPLE, plan.values)
    for line in EXAMPLE.splitlines():
        if line.lstrip().startswith("#"):
            assert line in text
    data = yaml.safe_load(text)
    cfg = parse_config(data)
    assert cfg.nodes.servers == ["cp-1", "cp-2"]
    assert cfg.ssh_node_hosts["w-2"] == "10.0.0.12"
    assert "titan" not in text
    assert "192.168.10." not in text
    # untouched keys keep the example's value
    assert cfg.ups.poll_interval_seconds == 5
    assert cfg.startup.foundation_workloads[0].namespace == "kube-system"


def test_rendering_refuses_a_key_the_example_lacks() -> None:
    with pytest.raises(HecateError, match=r"no key nodes\.workers"):
        render_config(EXAMPLE, {("nodes", "workers"): []})


def test_rendering_fails_closed_when_the_result_is_invalid() -> None:
    with pytest.raises(HecateError, match="ssh_node_hosts names nodes not in"):
        render_config(EXAMPLE, {("ssh_node_hosts",): {"ghost": "10.0.0.9"}})


names = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)


@settings(deadline=None)  # rendering and parsing a whole config; slow on a loaded machine
@given(st.lists(names, min_size=1, max_size=6, unique=True), st.data())
def test_any_node_names_round_trip(node_names: list[str], data: st.DataObject) -> None:
    # names that YAML would read as something else (yes, 1e3, null, 0x10) must stay strings;
    # a k3s cluster has at least one server (agents without one are refused by the config)
    servers = data.draw(st.integers(min_value=1, max_value=len(node_names)))
    nodes = [
        node(n, f"10.1.0.{i}", SERVER if i < servers else None) for i, n in enumerate(node_names)
    ]
    plan = plan_config(discovery(nodes=nodes))
    cfg = parse_config(yaml.safe_load(render_config(EXAMPLE, plan.values)))
    assert sorted(cfg.nodes.all) == sorted(node_names)


def test_init_never_overwrites_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "hecate.yaml"
    out.write_text("mine: true\n")
    code = run(["config", "init", "--kubeconfig", str(tmp_path / "k"), "--config", str(out)])
    assert code == 2
    assert "--force" in capsys.readouterr().err
    assert out.read_text() == "mine: true\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file another group needs root")
def test_the_written_config_keeps_the_group_the_daemon_reads_it_through(tmp_path: Path) -> None:
    # The installer's config is root:hecate-daemon 0640 in a directory of that group; `sudo
    # hecate config init --force` must not hand it to root's group, or the unprivileged daemon
    # can no longer read it (found by tests/integration/test_install_offline.py).
    daemon_gid = 4242
    etc = tmp_path / "etc-hecate"
    etc.mkdir()
    os.chown(etc, 0, daemon_gid)
    replaced = etc / "hecate.yaml"
    replaced.write_text("old: true\n")
    os.chown(replaced, 0, daemon_gid)
    _write(replaced, "new: true\n")
    info = replaced.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (0, daemon_gid, 0o640)
    assert replaced.read_text().endswith("new: true\n")
    # a first config takes the directory's group
    fresh = etc / "fresh.yaml"
    _write(fresh, "new: true\n")
    assert (fresh.stat().st_gid, stat.S_IMODE(fresh.stat().st_mode)) == (daemon_gid, 0o640)
    # and an operator's own owner is kept too
    os.chown(replaced, 1234, 0)
    _write(replaced, "again: true\n")
    assert (replaced.stat().st_uid, replaced.stat().st_gid) == (1234, 0)
