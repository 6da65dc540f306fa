"""`hecate doctor` on the twin and a real upsd: all green, then each failure made on purpose.

Every broken case asserts the failing check by name, that its line says what to do, and that
doctor exits 1 (the cluster is not protected); everything else it checks stays as it was.
"""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hecate.adapters.peers.http import CoordinatorHandlers, CoordinatorServer
from hecate.cli.main import run
from tests.integration.support import twin_config_data, write_config
from tests.testbed.nut import DEFAULT_UPS, NutServer
from tests.testbed.twin import Twin

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def nut() -> Iterator[NutServer]:
    server = NutServer([DEFAULT_UPS])
    try:
        yield server
    finally:
        server.close()


def doctor(
    capsys: pytest.CaptureFixture[str],
    twin: Twin,
    nut: NutServer,
    tmp: Path,
    replace: dict[str, Any] | None = None,
    **overrides: Any,
) -> tuple[int, dict[str, Any]]:
    state = tmp / "state"
    state.mkdir(exist_ok=True)
    # The host keys the twin learnt at its start, where Hecate keeps them.
    known = state / "ssh_known_hosts"
    if not known.exists():
        shutil.copy(twin.known_hosts, known)
    data = twin_config_data(twin, state, nut, **overrides) | (replace or {})
    config = write_config(tmp / "hecate.yaml", data)
    capsys.readouterr()
    code = run(["doctor", "--config", str(config), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["protected"] is (code == 0)
    return code, report


def failing(report: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {f["check"]: f for f in report["findings"] if f["status"] == "fail"}


def test_a_correct_setup_is_protected(
    capsys: pytest.CaptureFixture[str], twin: Twin, nut: NutServer, tmp_path: Path
) -> None:
    code, report = doctor(capsys, twin, nut, tmp_path)
    assert failing(report) == {}, report
    assert code == 0
    checks = {f["check"]: f["status"] for f in report["findings"]}
    for node in twin.nodes:
        for part in ("ssh", "unit", "sudo", "clock"):
            assert checks[f"node.{node.name}.{part}"] == "ok", (node.name, part, report)
    for check in ("ups.name", "ups.auth", "ups.read", "kube.api", "kube.nodes", "kube.flux"):
        assert checks[check] == "ok", check
    assert checks["kube.gitea"] == "ok"
    # `hecate status` shows the result doctor kept.
    capsys.readouterr()
    assert run(["status", "--config", str(tmp_path / "hecate.yaml"), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["doctor"]["protected"] is True
    assert run(["status", "--config", str(tmp_path / "hecate.yaml")]) == 0
    assert "doctor:  protected" in capsys.readouterr().out


def test_a_wrong_ups_name_lists_the_names_upsd_serves(
    capsys: pytest.CaptureFixture[str], twin: Twin, nut: NutServer, tmp_path: Path
) -> None:
    target = f"pyrphros@{nut.host}:{nut.port}"
    code, report = doctor(capsys, twin, nut, tmp_path, ups={"target": target})
    assert code == 1
    found = failing(report)
    assert set(found) == {"ups.name"}
    assert "pyrphoros" in found["ups.name"]["detail"]
    assert f"pyrphoros@{nut.host}:{nut.port}" in found["ups.name"]["fix"]
    # status shows the failed check
    capsys.readouterr()
    run(["status", "--config", str(tmp_path / "hecate.yaml")])
    assert "NOT PROTECTED" in capsys.readouterr().out


def test_a_wrong_nut_password_fails_the_auth_check(
    capsys: pytest.CaptureFixture[str], twin: Twin, nut: NutServer, tmp_path: Path
) -> None:
    wrong = tmp_path / "nut-password"
    wrong.write_text("not-the-password\n")
    wrong.chmod(0o600)
    code, report = doctor(capsys, twin, nut, tmp_path, ups={"password_file": str(wrong)})
    assert code == 1
    found = failing(report)
    assert set(found) == {"ups.auth"}
    assert "upsd.users" in found["ups.auth"]["fix"]


def test_a_user_without_primary_rights_fails_the_auth_check(
    capsys: pytest.CaptureFixture[str], twin: Twin, nut: NutServer, tmp_path: Path
) -> None:
    # upsd's secondary user is a plain `upsmon secondary`: PRIMARY is refused.
    password = tmp_path / "secondary-password"
    password.write_text(nut.secondary_password + "\n")
    password.chmod(0o600)
    code, report = doctor(
        capsys,
        twin,
        nut,
        tmp_path,
        ups={"user": nut.secondary_user, "password_file": str(password)},
    )
    assert code == 1
    found = failing(report)
    assert set(found) == {"ups.auth"}
    assert "upsmon primary" in found["ups.auth"]["fix"]


def test_a_missing_password_file_fails(
    capsys: pytest.CaptureFixture[str], twin: Twin, nut: NutServer, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-password"
    code, report = doctor(capsys, twin, nut, tmp_path, ups={"password_file": str(missing)})
    assert code == 1
    assert set(failing(report)) == {"ups.auth"}
    assert str(missing) in failing(report)["ups.auth"]["fix"]


def test_upsd_down_fails(
    capsys: pytest.CaptureFixture[str], twin: Twin, nut: NutServer, tmp_path: Path
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    code, report = doctor(
        capsys, twin, nut, tmp_path, ups={"target": f"{DEFAULT_UPS}@127.0.0.1:{closed}"}
    )
    assert code == 1
    assert set(failing(report)) == {"ups.server"}
    assert "upsd" in failing(report)["ups.server"]["fix"]


def test_a_missing_kubeconfig_fails(
    capsys: pytest.CaptureFixture[str], twin: Twin, nut: NutServer, tmp_path: Path
) -> None:
    code, report = doctor(capsys, twin, nut, tmp_path, kubeconfig=str(tmp_path / "none.yaml"))
    assert code == 1
    found = failing(report)
    assert set(found) == {"kube.config"}
    assert "k3s.yaml" in found["kube.config"]["fix"]


def test_a_kubeconfig_at_the_wrong_server_or_token_fails(
    capsys: pytest.CaptureFixture[str], twin: Twin, nut: NutServer, tmp_path: Path
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    text = twin.kubeconfig.read_text()
    elsewhere = tmp_path / "elsewhere.yaml"
    elsewhere.write_text(text.replace(twin.api_url, f"https://127.0.0.1:{closed}"))
    code, report = doctor(capsys, twin, nut, tmp_path, kubeconfig=str(elsewhere))
    assert code == 1
    assert set(failing(report)) == {"kube.api"}
    assert "readyz" in failing(report)["kube.api"]["detail"]

    bad_token = tmp_path / "bad-token.yaml"
    bad_token.write_text(text.replace(twin.token, secrets.token_hex(24)))
    code, report = doctor(capsys, twin, nut, tmp_path, kubeconfig=str(bad_token))
    assert code == 1
    assert set(failing(report)) == {"kube.api"}
    assert "401" in failing(report)["kube.api"]["detail"]


def test_a_key_the_nodes_do_not_know_fails_with_ssh_copy_id(
    capsys: pytest.CaptureFixture[str], twin: Twin, nut: NutServer, tmp_path: Path
) -> None:
    key = tmp_path / "other_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=30
    )
    code, report = doctor(capsys, twin, nut, tmp_path, ssh_identity_file=str(key))
    assert code == 1
    found = failing(report)
    assert set(found) == {f"node.{n.name}.ssh" for n in twin.nodes}
    assert all("ssh-copy-id" in f["fix"] for f in found.values())

    code, report = doctor(capsys, twin, nut, tmp_path, ssh_identity_file=str(tmp_path / "nokey"))
    assert set(failing(report)) == {"ssh.key"}
    assert "ssh-keygen" in failing(report)["ssh.key"]["fix"]


def test_an_unknown_host_key_fails_with_ssh_keyscan(
    capsys: pytest.CaptureFixture[str], twin: Twin, nut: NutServer, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "ssh_known_hosts").write_text("")  # nothing learnt yet
    code, report = doctor(capsys, twin, nut, tmp_path)
    assert code == 1
    found = failing(report)
    assert set(found) == {f"node.{n.name}.ssh" for n in twin.nodes}
    assert all("ssh-keyscan" in f["fix"] for f in found.values())


def test_sudo_rules_missing_on_a_node_fail_and_name_the_shipped_file(
    capsys: pytest.CaptureFixture[str], twin: Twin, nut: NutServer, tmp_path: Path
) -> None:
    agent = twin.agents[0]
    twin.exec(agent, "mv", "/etc/sudoers.d/hecate", "/root/sudoers-hecate")
    try:
        code, report = doctor(capsys, twin, nut, tmp_path)
    finally:
        twin.exec(agent, "mv", "/root/sudoers-hecate", "/etc/sudoers.d/hecate")
    assert code == 1
    found = failing(report)
    assert set(found) == {f"node.{agent.name}.sudo"}
    assert "systemctl stop k3s-agent" in found[f"node.{agent.name}.sudo"]["detail"]
    assert "configs/sudoers-hecate" in found[f"node.{agent.name}.sudo"]["fix"]


def test_a_node_in_the_wrong_role_has_no_such_unit(
    capsys: pytest.CaptureFixture[str], twin: Twin, nut: NutServer, tmp_path: Path
) -> None:
    server, agent = twin.servers[0], twin.agents[0]
    others = [a.name for a in twin.agents[1:]]
    nodes = {"servers": [server.name, agent.name], "agents": others}
    code, report = doctor(capsys, twin, nut, tmp_path, nodes=nodes)
    assert code == 1
    found = failing(report)
    assert f"node.{agent.name}.unit" in found
    assert "k3s.service not found" in found[f"node.{agent.name}.unit"]["detail"]
    warned = {f["check"] for f in report["findings"] if f["status"] == "warn"}
    assert "kube.nodes.roles" in warned


def test_flux_and_gitea_not_as_configured_fail_with_what_exists(
    capsys: pytest.CaptureFixture[str], twin: Twin, nut: NutServer, tmp_path: Path
) -> None:
    startup = {"flux_git_repository": "flux", "gitea_workload": "deployment/forgejo"}
    code, report = doctor(capsys, twin, nut, tmp_path, startup=startup)
    assert code == 1
    found = failing(report)
    assert set(found) == {"kube.flux", "kube.gitea"}
    assert "flux-system/flux-system" in found["kube.flux"]["detail"]
    assert "gitea/deployment/gitea" in found["kube.gitea"]["detail"]


def test_the_example_placeholder_nodes_are_named(
    capsys: pytest.CaptureFixture[str], twin: Twin, nut: NutServer, tmp_path: Path
) -> None:
    example = yaml.safe_load(
        (Path(__file__).resolve().parents[2] / "configs/hecate.example.yaml").read_text()
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    # The example's node names; their addresses point at a closed local port (test traffic
    # stays on 127.0.0.1: the example's own addresses are covered by
    # tests/unit/core/test_doctor.py).
    names = [*example["nodes"]["servers"], *example["nodes"]["agents"]]
    hosts = dict.fromkeys(names, f"127.0.0.1:{closed}")
    code, report = doctor(
        capsys, twin, nut, tmp_path, replace={"nodes": example["nodes"], "ssh_node_hosts": hosts}
    )
    assert code == 1
    found = failing(report)
    assert "config.placeholders" in found
    assert "titan-0" in found["config.placeholders"]["detail"]
    assert "hecate config init" in found["config.placeholders"]["fix"]
    assert "kube.nodes" in found  # not the cluster's nodes either
    assert "twin-s1" in found["kube.nodes"]["detail"]


def test_peers_must_answer_with_a_token_that_verifies(
    capsys: pytest.CaptureFixture[str], twin: Twin, nut: NutServer, tmp_path: Path
) -> None:
    mine = tmp_path / "token"
    mine.write_text(secrets.token_hex(16))
    mine.chmod(0o600)
    handlers = CoordinatorHandlers(
        on_trigger=lambda _r: False,
        on_startup_request=lambda _p: "refused",
        intent=lambda: {"state": "normal"},
        on_rejected=lambda _r: None,
    )
    same = CoordinatorServer("127.0.0.1:0", mine.read_bytes().strip(), handlers)
    other = CoordinatorServer("127.0.0.1:0", b"another-secret", handlers)
    same.start()
    other.start()
    try:
        peers = [f"127.0.0.1:{same.port}", f"127.0.0.1:{other.port}"]
        coordination = {"token_file": str(mine), "peer_hosts": peers}
        code, report = doctor(capsys, twin, nut, tmp_path, coordination=coordination)
    finally:
        same.close()
        other.close()
    assert code == 1
    found = failing(report)
    assert set(found) == {f"coordination.{peers[1]}"}
    assert "token" in found[f"coordination.{peers[1]}"]["fix"]
    checks = {f["check"]: f["status"] for f in report["findings"]}
    assert checks[f"coordination.{peers[0]}"] == "ok"


def test_a_metrics_port_held_by_another_program_fails(
    capsys: pytest.CaptureFixture[str], twin: Twin, nut: NutServer, tmp_path: Path
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        code, report = doctor(capsys, twin, nut, tmp_path, metrics={"listen": f"127.0.0.1:{port}"})
    assert code == 1
    found = failing(report)
    assert set(found) == {"metrics.listen"}
    assert "in use by another program" in found["metrics.listen"]["detail"]
