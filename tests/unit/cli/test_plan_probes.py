"""Dry runs look before they plan (issue 23, item 8): the probes against real sockets on
127.0.0.1 (an SSH-speaking listener, a silent one, closed ports, a kubeconfig whose server is
not listening), and `hecate shutdown` / `hecate startup` dry runs that mark what would fail."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from hecate.cli import cmd_flows
from hecate.cli.main import app
from hecate.cli.plan_probes import api_probe, probe_cluster, probes_summary, tcp_reach
from hecate.config.model import HecateConfig, parse_config
from hecate.core.plan_marks import Reach, plan_marks
from hecate.core.plans import ShutdownOptions, shutdown_plan
from hecate.core.readings import CommError, Poll, UpsReading, parse_status
from hecate.core.run_history import Outcome
from tests.fakes import reads_ups

runner = CliRunner()
UPS = {"ups": {"target": "pyrphoros@localhost"}}  # the probes here read no UPS


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class Listener:
    """A TCP listener on 127.0.0.1 that greets each connection with `greeting` (nothing: it
    stays silent) and holds it open until closed."""

    def __init__(self, greeting: bytes) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port: int = self.sock.getsockname()[1]
        self.sock.settimeout(0.1)  # so that the serving thread sees `stop` soon
        self.greeting = greeting
        self.held: list[socket.socket] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.greeting:
                conn.sendall(self.greeting)
            self.held.append(conn)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def sshd() -> Iterator[Listener]:
    listener = Listener(b"SSH-2.0-OpenSSH_9.2 test\r\n")
    yield listener
    listener.close()


@pytest.fixture
def sshds() -> Iterator[dict[str, Listener]]:
    """One SSH-speaking listener per node (each node its own address, as the inventory
    demands)."""
    listeners = {n: Listener(b"SSH-2.0-OpenSSH_9.2 test\r\n") for n in ("alpha", "beta", "gamma")}
    yield listeners
    for listener in listeners.values():
        listener.close()


@pytest.fixture
def silent() -> Iterator[Listener]:
    listener = Listener(b"")
    yield listener
    listener.close()


def kubeconfig(path: Path, port: int) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "c",
                        "cluster": {
                            "server": f"https://127.0.0.1:{port}",
                            "insecure-skip-tls-verify": True,
                        },
                    }
                ],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
                "users": [{"name": "u", "user": {"token": "t"}}],
            }
        )
    )
    return path


def config_data(tmp: Path, hosts: dict[str, str], api_port: int, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "state_dir": str(tmp / "state"),
        "kubeconfig": str(kubeconfig(tmp / "kubeconfig", api_port)),
        "ups": {"target": f"ups@127.0.0.1:{closed_port()}", "timeout_seconds": 1},
        "nodes": {"servers": ["alpha"], "agents": ["beta", "gamma"]},
        "ssh_node_hosts": hosts,
    }
    data.update(extra)
    return data


def write(tmp: Path, data: dict[str, Any]) -> Path:
    path = tmp / "hecate.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def ups_on_mains(monkeypatch: pytest.MonkeyPatch) -> None:
    def reader(_: HecateConfig) -> Poll:
        return UpsReading(parse_status("OL"), 1800, 100)

    reads_ups(monkeypatch, reader)


# --- the probes -------------------------------------------------------------------------


def test_tcp_reach_tells_ssh_from_closed_and_silent(sshd: Listener, silent: Listener) -> None:
    assert tcp_reach("127.0.0.1", sshd.port, ssh=True).ok is True
    port = closed_port()
    refused = tcp_reach("127.0.0.1", port, ssh=True)
    assert refused.ok is False
    assert refused.detail == f"ssh port {port} closed on 127.0.0.1 (connection refused)"
    quiet = tcp_reach("127.0.0.1", silent.port, 0.3, ssh=True)
    assert quiet.ok is False and "says nothing" in quiet.detail
    assert tcp_reach("127.0.0.1", silent.port, ssh=False).ok is True


def test_api_probe_says_refused_and_no_client(tmp_path: Path) -> None:
    port = closed_port()
    cfg = parse_config({"kubeconfig": str(kubeconfig(tmp_path / "kc", port)), **UPS})
    probe = api_probe(cfg)
    assert probe.state == "down"
    assert probe.detail == f"API https://127.0.0.1:{port} refused connection"
    missing = api_probe(parse_config({"kubeconfig": str(tmp_path / "nope"), **UPS}))
    assert missing.state == "no_client" and "nope" in missing.detail


def test_api_probe_names_a_server_that_answers_but_is_not_ready(
    tmp_path: Path, silent: Listener
) -> None:
    cfg = parse_config({"kubeconfig": str(kubeconfig(tmp_path / "kc", silent.port)), **UPS})
    probe = api_probe(cfg)
    assert probe.state == "down"
    assert "answers but is not ready" in probe.detail


def test_the_probes_run_together_and_within_their_deadline(
    tmp_path: Path, silent: Listener
) -> None:
    # every probe as slow as it gets: silent SSH ports, a silent API, a UPS that never answers
    quiet = {n: Listener(b"") for n in ("alpha", "beta", "gamma")}
    hosts = {n: f"127.0.0.1:{listener.port}" for n, listener in quiet.items()}
    cfg = parse_config(config_data(tmp_path, hosts, silent.port))

    release = threading.Event()

    def hanging_ups() -> Poll:
        release.wait(30)
        return CommError("late")

    started = time.monotonic()
    probes, poll = probe_cluster(cfg, read_ups=hanging_ups, deadline_s=2.5)
    elapsed = time.monotonic() - started
    release.set()
    for listener in quiet.values():
        listener.close()
    assert elapsed < 3.5  # in parallel: 3 nodes x 2 s of silence + a 30 s UPS would be 36 s
    # a UPS read still under way is no reading: the guards read the UPS themselves
    assert poll is None
    assert probes.ups is not None and probes.ups.ok is None
    assert "no answer within 2.5s: could not tell" in probes.ups.detail
    assert set(probes.nodes) == set(hosts)
    assert all(r.ok is False and "says nothing" in r.detail for r in probes.nodes.values())


def test_placeholder_addresses_are_never_dialled(tmp_path: Path) -> None:
    hosts = {"alpha": "192.168.10.10", "beta": "192.168.10.11", "gamma": "192.168.10.12"}
    cfg = parse_config(config_data(tmp_path, hosts, closed_port()))
    probes, _ = probe_cluster(cfg, read_ups=None)
    assert all(r.ok is None and "placeholder" in r.detail for r in probes.nodes.values())
    assert "ssh 0/0 node(s) answer (3 not probed (placeholders))" in probes_summary(probes)


# --- the dry runs -------------------------------------------------------------------------


def test_shutdown_dry_run_with_the_api_and_every_node_down_says_so_and_exits_1(
    tmp_path: Path,
) -> None:
    api = closed_port()
    ports = {n: closed_port() for n in ("alpha", "beta", "gamma")}
    config = write(
        tmp_path,
        config_data(tmp_path, {n: f"127.0.0.1:{p}" for n, p in ports.items()}, api),
    )
    started = time.monotonic()
    result = runner.invoke(app, ["shutdown", "-c", str(config)])
    assert time.monotonic() - started < 10
    assert result.exit_code == 1, result.output  # main printed a clean plan and exited 0
    out = result.output
    assert f"would be skipped: API https://127.0.0.1:{api} refused connection" in out
    assert f"would fail: alpha: ssh port {ports['alpha']} closed on 127.0.0.1" in out
    assert "a stage would fail" in out
    assert "dry run: add --execute" in out


def test_shutdown_dry_run_json_carries_the_marks_and_the_probes(
    tmp_path: Path, sshds: dict[str, Listener]
) -> None:
    api = closed_port()
    hosts = {n: f"127.0.0.1:{sshds[n].port}" for n in ("alpha", "gamma")}
    hosts["beta"] = f"127.0.0.1:{closed_port()}"
    config = write(tmp_path, config_data(tmp_path, hosts, api))
    result = runner.invoke(app, ["shutdown", "-c", str(config), "--json"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["would_fail"] is True
    marks = {step["name"]: step["mark"] for step in report["plan"]}
    assert marks["flux_suspend"]["kind"] == "would_skip"
    assert marks["stop_servers"] is None  # alpha answers
    assert marks["stop_agents"]["kind"] == "would_fail"
    assert "beta:" in marks["stop_agents"]["reason"]
    assert "alpha" not in marks["stop_agents"]["reason"]
    assert report["probes"]["api"]["state"] == "down"
    assert report["probes"]["ssh"]["alpha"]["ok"] is True


def test_shutdown_dry_run_with_only_the_api_down_exits_0(
    tmp_path: Path, sshds: dict[str, Listener]
) -> None:
    hosts = {n: f"127.0.0.1:{listener.port}" for n, listener in sshds.items()}
    config = write(tmp_path, config_data(tmp_path, hosts, closed_port()))
    result = runner.invoke(app, ["shutdown", "-c", str(config)])
    assert result.exit_code == 0, result.output  # the API stages skip; the run still succeeds
    assert "would be skipped: API" in result.output
    assert "! would fail" not in result.output
    assert "no stage would fail" in result.output


def test_no_probe_prints_the_plan_unmarked_and_exits_0(tmp_path: Path) -> None:
    hosts = {n: f"127.0.0.1:{closed_port()}" for n in ("alpha", "beta", "gamma")}
    config = write(tmp_path, config_data(tmp_path, hosts, closed_port()))
    result = runner.invoke(app, ["shutdown", "-c", str(config), "--no-probe"])
    assert result.exit_code == 0, result.output
    assert "not probed (--no-probe)" in result.output
    assert "would" not in result.output.replace("would be skipped or fail", "")
    as_json = runner.invoke(app, ["shutdown", "-c", str(config), "--no-probe", "--json"])
    report = json.loads(as_json.stdout)
    assert report["probes"] is None and report["would_fail"] is False
    assert all(step["mark"] is None for step in report["plan"])


def test_startup_dry_run_marks_the_stages_that_cannot_start(
    tmp_path: Path, sshds: dict[str, Listener], ups_on_mains: None
) -> None:
    hosts = {n: f"127.0.0.1:{sshds[n].port}" for n in ("beta", "gamma")}
    hosts["alpha"] = f"127.0.0.1:{closed_port()}"  # the only server: k3s cannot be started
    config = write(tmp_path, config_data(tmp_path, hosts, closed_port()))
    result = runner.invoke(app, ["startup", "-c", str(config), "--json"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    marks = {step["name"]: step["mark"] for step in report["plan"]}
    # alpha's clock cannot be read: the time_sync gate stops the startup before k3s
    assert marks["time_sync"]["kind"] == "would_fail"
    assert marks["start_servers"]["reason"] == "not reached: time_sync would stop the startup"
    assert report["refused"] == []
    # told to start anyway, the run goes on to what the probes say of each stage
    data = config_data(tmp_path, hosts, closed_port())
    data["startup"] = {"time_sync_unsynced": "start_anyway"}
    # one server on SQLite (with etcd, etcd_quorum would stop it first: test_plan_marks.py)
    data["cluster"] = {"datastore": "sqlite"}
    result = runner.invoke(app, ["startup", "-c", str(write(tmp_path, data)), "--json"])
    assert result.exit_code == 1, result.output
    marks = {step["name"]: step["mark"] for step in json.loads(result.stdout)["plan"]}
    assert marks["time_sync"]["kind"] == "would_warn"
    assert marks["start_servers"]["kind"] == "would_fail"
    assert "SSH reaches no server" in marks["wait_api"]["reason"]
    assert marks["start_agents"] is None


def test_startup_dry_run_with_servers_reachable_and_the_api_down_is_fine(
    tmp_path: Path, sshds: dict[str, Listener], ups_on_mains: None
) -> None:
    hosts = {n: f"127.0.0.1:{listener.port}" for n, listener in sshds.items()}
    config = write(tmp_path, config_data(tmp_path, hosts, closed_port()))
    result = runner.invoke(app, ["startup", "-c", str(config)])
    assert result.exit_code == 0, result.output  # the startup brings the API up itself
    assert "no stage would fail" in result.output


def test_startup_dry_run_reads_the_ups_once_for_guards_and_marks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[float] = []

    def reader(_: HecateConfig) -> Poll:
        reads.append(time.monotonic())
        return CommError("connection refused")

    reads_ups(monkeypatch, reader)
    hosts = {n: f"127.0.0.1:{closed_port()}" for n in ("alpha", "beta", "gamma")}
    config = write(tmp_path, config_data(tmp_path, hosts, closed_port()))
    result = runner.invoke(app, ["startup", "-c", str(config), "--json"])
    assert result.exit_code == 3, result.output  # the guards still refuse first
    report = json.loads(result.stdout)
    assert [r["guard"] for r in report["refused"]] == ["ups"]
    assert len(reads) == 1
    # refused or not, a dry run's report has the same keys
    assert report["probes"]["ups"]["ok"] is False and report["would_fail"] is True


def test_an_executed_run_never_probes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hecate.cli.plan_probes  # noqa: PLC0415

    def no_probe(*_: object, **__: object) -> object:
        raise AssertionError("an --execute run probed")

    monkeypatch.setattr(hecate.cli.plan_probes, "probe_cluster", no_probe)
    # No cluster can run here: the run itself is stood in for; what is checked is that the
    # dry run's probing is not on its path.
    monkeypatch.setattr(
        cmd_flows, "execute_flow", lambda *_, **__: SimpleNamespace(outcome=Outcome.SUCCESS)
    )
    hosts = {n: f"127.0.0.1:{closed_port()}" for n in ("alpha", "beta", "gamma")}
    config = write(tmp_path, config_data(tmp_path, hosts, closed_port()))
    result = runner.invoke(app, ["shutdown", "-c", str(config), "--execute"])
    assert result.exit_code == 0, result.output
    assert "would" not in result.output


def test_an_ssh_config_file_is_followed_as_ssh_would(
    tmp_path: Path, sshds: dict[str, Listener]
) -> None:
    # names resolved by `ssh -G` (no connection made), as the run's ssh resolves them; the
    # port stays Hecate's (the inventory's ansible_port wins over the file's Port, as here)
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text(
        "Host alpha beta\n  HostName 127.0.0.1\n  Port 1\nHost gamma\n  ProxyJump bastion.invalid\n"
    )
    hosts = {"alpha": f"alpha:{sshds['alpha'].port}", "beta": f"beta:{closed_port()}"}
    data = config_data(tmp_path, hosts, closed_port(), ssh_config_file=str(ssh_config))
    probes, _ = probe_cluster(parse_config(data), read_ups=None)
    assert probes.nodes["alpha"].ok is True, probes.nodes["alpha"]
    assert probes.nodes["beta"].ok is False and "connection refused" in probes.nodes["beta"].detail
    assert probes.nodes["gamma"].ok is None and "bastion.invalid" in probes.nodes["gamma"].detail


# --- probes that fail, run late, or must not dial -------------------------------------------


def test_a_probe_that_raises_could_not_tell_and_prints_no_traceback(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    hosts = {n: f"127.0.0.1:{closed_port()}" for n in ("alpha", "beta", "gamma")}
    cfg = parse_config(config_data(tmp_path, hosts, closed_port()))

    def broken_ups() -> Poll:
        raise RuntimeError("the NUT binding fell over")

    probes, poll = probe_cluster(cfg, read_ups=broken_ups)
    assert poll is None  # no reading: the startup's guards read the UPS themselves
    assert probes.ups is not None and probes.ups.ok is None
    assert "could not tell: the NUT binding fell over" in probes.ups.detail
    assert "Traceback" not in capfd.readouterr().err  # main: a thread traceback, then "late"


def test_an_api_whose_credentials_plugin_fails_is_probed_not_raised(tmp_path: Path) -> None:
    port = closed_port()
    path = kubeconfig(tmp_path / "kc", port)
    data = yaml.safe_load(path.read_text())
    data["users"] = [{"name": "u", "user": {"exec": {"command": "/bin/false",
                      "apiVersion": "client.authentication.k8s.io/v1beta1"}}}]  # fmt: skip
    path.write_text(yaml.safe_dump(data))
    probe = api_probe(parse_config({"kubeconfig": str(path), **UPS}))  # main: ConfigError
    assert probe.state == "down"
    assert probe.detail == f"API https://127.0.0.1:{port} refused connection"


def test_a_late_ups_probe_leaves_the_guards_their_own_read(
    tmp_path: Path, sshds: dict[str, Listener], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the UPS answers, slower than the probes' 3 s but within ups.timeout_seconds: main took
    # the probe's deadline for a UPS that does not answer and refused (exit 3)
    reads: list[str] = []

    def slow_then_quick(_: HecateConfig) -> Poll:
        reads.append("read")
        if len(reads) == 1:
            time.sleep(4.0)
        return UpsReading(parse_status("OL"), 1800, 100)

    reads_ups(monkeypatch, slow_then_quick)
    hosts = {n: f"127.0.0.1:{listener.port}" for n, listener in sshds.items()}
    data = config_data(tmp_path, hosts, closed_port())
    data["ups"]["timeout_seconds"] = 10
    result = runner.invoke(app, ["startup", "-c", str(write(tmp_path, data)), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["refused"] == []
    assert report["probes"]["ups"]["ok"] is None
    assert len(reads) == 2


def test_probes_that_run_out_of_time_mark_nothing(tmp_path: Path) -> None:
    # silent SSH ports: the banner is not read before the deadline; the run itself would wait
    # ssh_connect_timeout_seconds, so this is no failure (main: "would fail")
    quiet = {n: Listener(b"") for n in ("alpha", "beta", "gamma")}
    try:
        hosts = {n: f"127.0.0.1:{listener.port}" for n, listener in quiet.items()}
        cfg = parse_config(config_data(tmp_path, hosts, closed_port()))
        probes, _ = probe_cluster(cfg, read_ups=None, deadline_s=0.5)
    finally:
        for listener in quiet.values():
            listener.close()
    assert all(r.ok is None and "could not tell" in r.detail for r in probes.nodes.values())
    plan = shutdown_plan(cfg, ShutdownOptions(mode="cluster-only"))
    marks = plan_marks(cfg, plan, probes)
    assert {n: m.kind.value for n, m in marks.items() if m.kind.value == "would_fail"} == {}


def test_a_broken_ssh_config_file_fails_the_nodes_instead_of_dialling_around_it(
    tmp_path: Path, sshds: dict[str, Listener]
) -> None:
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text("Host *\n  NoSuchOption yes\n")
    hosts = {n: f"127.0.0.1:{listener.port}" for n, listener in sshds.items()}
    data = config_data(tmp_path, hosts, closed_port(), ssh_config_file=str(ssh_config))
    probes, _ = probe_cluster(parse_config(data), read_ups=None)
    for reach in probes.nodes.values():  # main: ok True (the raw address was dialled)
        assert reach.ok is False, reach
        assert reach.detail.startswith("ssh_config_file: "), reach
    assert all(not listener.held for listener in sshds.values())


def test_behind_a_jump_host_only_the_jump_host_is_dialled(
    tmp_path: Path, sshds: dict[str, Listener]
) -> None:
    # the nodes' addresses are the jump host's to reach: here they are live SSH servers that
    # must not be dialled; the jump host is named through the ssh_config_file (main dialled
    # "bastion" port 22 with a plain connect, ignoring the file)
    bastion = Listener(b"SSH-2.0-OpenSSH_9.2 bastion\r\n")
    try:
        ssh_config = tmp_path / "ssh_config"
        ssh_config.write_text(f"Host bastion\n  HostName 127.0.0.1\n  Port {bastion.port}\n")
        hosts = {n: f"127.0.0.1:{listener.port}" for n, listener in sshds.items()}
        data = config_data(
            tmp_path, hosts, closed_port(), ssh_config_file=str(ssh_config),
            ssh_jump_host="bastion",
        )  # fmt: skip
        probes, _ = probe_cluster(parse_config(data), read_ups=None)
        time.sleep(0.2)  # let the listeners' threads accept whatever was dialled
        assert probes.jump is not None and probes.jump.ok is True, probes.jump
        assert len(bastion.held) == 1
    finally:
        bastion.close()
    assert all(
        r.ok is None and r.detail == "not probed (reached through the jump host)"
        for r in probes.nodes.values()
    )
    assert all(not listener.held for listener in sshds.values())
    assert "3 not probed (behind the jump host)" in probes_summary(probes)


def test_an_ssh_config_hostname_on_an_example_address_is_not_dialled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hecate.cli.plan_probes  # noqa: PLC0415

    dialled: list[tuple[str, int]] = []

    def spy(host: str, port: int, *_: object, ssh: bool) -> Reach:
        if ssh:  # recorded, never dialled: no address off 127.0.0.1
            dialled.append((host, port))
        return Reach(True, "spied")

    monkeypatch.setattr(hecate.cli.plan_probes, "tcp_reach", spy)
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text("Host alpha\n  HostName 192.168.10.10\nHost beta gamma\n"
                          "  HostName 127.0.0.1\n")  # fmt: skip
    hosts = {"alpha": "alpha:2201", "beta": "beta:2202", "gamma": "gamma:2203"}
    data = config_data(tmp_path, hosts, closed_port(), ssh_config_file=str(ssh_config))
    probes, _ = probe_cluster(parse_config(data), read_ups=None)
    assert probes.nodes["alpha"].ok is None and "placeholder" in probes.nodes["alpha"].detail
    assert sorted(dialled) == [("127.0.0.1", 2202), ("127.0.0.1", 2203)]
