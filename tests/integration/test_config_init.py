"""`hecate config init` against the twin's API stand-in (HTTPS at 127.0.0.1) and a real upsd."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from hecate.cli.main import run
from hecate.config.model import load_config
from tests.testbed.nut import NutServer
from tests.testbed.twin import Twin

pytestmark = pytest.mark.integration
EXAMPLE = Path(__file__).resolve().parents[2] / "configs/hecate.example.yaml"


def internal_ips(twin: Twin) -> dict[str, str]:
    nodes = twin.get("/api/v1/nodes")
    found = {}
    for item in nodes["items"]:
        for address in item["status"]["addresses"]:
            if address["type"] == "InternalIP":
                found[item["metadata"]["name"]] = address["address"]
    return found


def test_init_writes_the_cluster_and_the_ups_with_every_comment(
    capsys: pytest.CaptureFixture[str],
    twin: Twin,
    tmp_path: Path,
) -> None:
    nut = NutServer(["eaton", "pyrphoros"])
    try:
        out = tmp_path / "etc" / "hecate.yaml"
        argv = ["config", "init", "--kubeconfig", str(twin.kubeconfig), "--config", str(out)]
        code = run([*argv, "--nut", f"127.0.0.1:{nut.port}"])
        printed = capsys.readouterr().out
    finally:
        nut.close()
    assert code == 0, printed
    cfg = load_config(out)  # valid as written
    assert cfg.nodes.servers == [n.name for n in twin.servers]
    assert sorted(cfg.nodes.agents) == sorted(n.name for n in twin.agents)
    assert cfg.ssh_node_hosts == internal_ips(twin)
    assert cfg.kubeconfig == twin.kubeconfig.resolve()
    assert cfg.startup.flux_namespace == "flux-system"
    assert cfg.startup.flux_git_repository == "flux-system"
    assert cfg.startup.gitea_namespace == "gitea"
    assert cfg.startup.gitea_workload == "deployment/gitea"  # not gitea-postgresql
    assert cfg.ups.target == f"eaton@127.0.0.1:{nut.port}"
    # every comment of the example is still there, in order
    comments = [line.strip() for line in EXAMPLE.read_text().splitlines() if "#" in line]
    written = out.read_text()
    missing = [c for c in comments if c.startswith("#") and c not in written]
    assert missing == []
    # what it found and what is left
    assert "upsd serves: eaton, pyrphoros" in printed
    assert "several UPSes" in printed
    assert "still to decide" in printed
    assert "hecate doctor" in printed
    assert "127.0.0.1" in printed  # the kubeconfig's server is local: said so

    # never overwritten without --force
    before = out.read_text()
    assert run([*argv, "--nut", "127.0.0.1:1"]) == 2
    assert "--force" in capsys.readouterr().err
    assert out.read_text() == before


def test_init_with_force_keeps_the_operators_choices_and_a_backup(
    capsys: pytest.CaptureFixture[str], twin: Twin, tmp_path: Path
) -> None:
    out = tmp_path / "hecate.yaml"
    mine = yaml.safe_load(EXAMPLE.read_text())
    mine["ssh_user"] = "ops"
    mine["ssh_identity_file"] = "/etc/hecate/ops_key"
    mine["ups"]["user"] = "watcher"
    mine["state_dir"] = str(tmp_path / "state")
    out.write_text(yaml.safe_dump(mine))
    closed = "127.0.0.1:1"  # nothing listens there: upsd cannot be asked
    argv = ["config", "init", "--kubeconfig", str(twin.kubeconfig), "--config", str(out)]
    assert run([*argv, "--nut", closed, "--force", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    cfg = load_config(out)
    assert (cfg.ssh_user, str(cfg.ssh_identity_file), cfg.ups.user) == (
        "ops",
        "/etc/hecate/ops_key",
        "watcher",
    )
    assert cfg.state_dir == tmp_path / "state"
    assert cfg.nodes.all != ["titan-0", "titan-1", "titan-2"]
    assert cfg.ups.target == "pyrphoros@localhost"  # the example's, since upsd said nothing
    assert any("could not be asked" in line for line in report["todo"])
    assert yaml.safe_load((tmp_path / "hecate.yaml.bak").read_text())["ssh_user"] == "ops"


def test_init_fails_clearly_without_a_cluster(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "hecate.yaml"
    code = run(["config", "init", "--kubeconfig", str(tmp_path / "none"), "--config", str(out)])
    assert code == 1
    assert "cannot read the cluster" in capsys.readouterr().err
    assert not out.exists()
