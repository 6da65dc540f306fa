"""The daemon against a real upsd and the twin: debounce, comm loss, peers, metrics."""

from __future__ import annotations

import secrets
import socket
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hecate.adapters.nut.port import Ups, poll
from hecate.adapters.peers.http import CoordinatorClient
from hecate.adapters.statedir.store import StateStore
from hecate.config.model import HecateConfig, parse_config
from hecate.core.intent import IntentState
from hecate.core.run_history import Outcome
from hecate.daemon.service import Daemon
from hecate.errors import HecateError
from tests.integration.support import twin_config_data
from tests.testbed.nut import NutServer
from tests.testbed.pytest_nut import NutServerFactory
from tests.testbed.pytest_twin import TwinFactory
from tests.testbed.twin import Twin

pytestmark = pytest.mark.integration

FAST: dict[str, Any] = {
    "ups": {"poll_interval_seconds": 1, "debounce_polls": 3, "comm_loss_dead_seconds": 4},
    "shutdown": {"ups_mode": "cluster-only", "etcd_snapshot": False, "stop_timeout_seconds": 30},
    "default_budget_seconds": 300,
}


def daemon_config(twin: Twin, state: Path, nut: NutServer, **extra: Any) -> HecateConfig:
    data = twin_config_data(twin, state, nut, **FAST)
    for key, value in extra.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    data["ups"] = {**data["ups"], **FAST["ups"]}
    return parse_config(data)


class Running:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.thread = threading.Thread(target=daemon.run, name="daemon-under-test")

    def __enter__(self) -> Daemon:
        self.thread.start()
        wait_for(lambda: self.daemon.metrics_port is not None, 15, "daemon metrics up")
        return self.daemon

    def __exit__(self, *exc: object) -> None:
        self.daemon.request_stop()
        self.thread.join(120)
        assert not self.thread.is_alive(), "daemon did not stop"


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


def make_daemon(config: HecateConfig) -> Daemon:
    client = Ups.from_config(config).client
    return Daemon(config, reader=lambda: poll(client))


def scrape(daemon: Daemon) -> str:
    url = f"http://127.0.0.1:{daemon.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def shutdowns(state: Path) -> list[Outcome]:
    try:
        return [r.outcome for r in StateStore(state).load_runs() if r.kind == "shutdown"]
    except Exception:
        return []


@pytest.fixture
def cluster(make_twin: TwinFactory) -> Twin:
    return make_twin(1, 1)


def test_runtime_above_threshold_and_blips_do_nothing_then_low_runtime_shuts_down(
    cluster: Twin, nut_server: NutServer, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    daemon = make_daemon(daemon_config(cluster, state, nut_server))
    with Running(daemon):
        nut_server.set_reading(status="OB DISCHRG", runtime=1500, charge=90)  # above 330 s
        time.sleep(4)
        nut_server.set_reading(status="OB DISCHRG", runtime=200)  # a blip below: 1-2 polls
        time.sleep(1.2)
        nut_server.set_reading(status="OL CHRG", runtime=1500)
        time.sleep(3)
        assert shutdowns(state) == []
        metrics = scrape(daemon)
        assert 'hecate_ups_on_battery{ups="pyrphoros"} 0.0' in metrics
        assert "hecate_shutdown_threshold_seconds 330.0" in metrics
        assert 'hecate_shutdown_budget_seconds{source="fallback"} 300.0' in metrics
        assert 'hecate_ups_status{flag="OL",ups="pyrphoros"} 1.0' in metrics
        assert 'hecate_build_info{role="coordinator",ups="pyrphoros",version="' in metrics

        started = time.monotonic()
        nut_server.set_reading(status="OB DISCHRG", runtime=250, charge=60)
        wait_for(lambda: shutdowns(state) == [Outcome.SUCCESS], 90, "the UPS-triggered shutdown")
        assert time.monotonic() - started >= 2  # at least debounce_polls-1 poll intervals
        assert not cluster.unit_active(cluster.agents[0])
        assert not cluster.api_ready()
        metrics = scrape(daemon)
        assert 'hecate_triggers_total{source="ups"} 1.0' in metrics
        assert 'hecate_runs_total{kind="shutdown",outcome="success"} 1.0' in metrics
        assert 'hecate_intent_state{state="shutdown_complete"} 1.0' in metrics
        assert 'hecate_ups_runtime_seconds{ups="pyrphoros"} 250.0' in metrics
    traces = list((state / "traces").glob("outage-*.jsonl"))
    assert traces, "the outage was not recorded"


def test_upsd_loss_on_mains_is_harmless_on_battery_is_critical(
    cluster: Twin, nut_server: NutServer, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    daemon = make_daemon(daemon_config(cluster, state, nut_server))
    with Running(daemon):
        nut_server.stop_upsd()
        time.sleep(7)  # longer than comm_loss_dead_seconds
        assert shutdowns(state) == []
        assert 'hecate_nut_errors_total{kind="unreachable",ups="pyrphoros"}' in scrape(daemon)
        nut_server.start_upsd()
        nut_server.set_reading(status="OB DISCHRG", runtime=1500, charge=90)
        time.sleep(2)
        assert shutdowns(state) == []
        nut_server.stop_driver("pyrphoros")  # upsd answers DRIVER-NOT-CONNECTED
        wait_for(lambda: shutdowns(state) == [Outcome.SUCCESS], 90, "comm-loss shutdown")
    assert StateStore(state).read_intent().state is IntentState.SHUTDOWN_COMPLETE


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(secrets.token_hex(24))
    path.chmod(0o600)
    return path


def make_coordinator(cluster: Twin, state: Path, nut: NutServer, token: Path) -> Daemon:
    return make_daemon(
        daemon_config(
            cluster,
            state,
            nut,
            coordination={"role": "coordinator", "token_file": str(token), "listen": "127.0.0.1:0"},
        )
    )


def _peer_config(
    cluster: Twin,
    state: Path,
    nut: NutServer,
    token: Path,
    coordinator: str,
    fallback: bool,
) -> HecateConfig:
    return daemon_config(
        cluster,
        state,
        nut,
        coordination={
            "role": "peer",
            "coordinator_address": coordinator,
            "token_file": str(token),
            "fallback_local_shutdown": fallback,
            "peer_name": "peer-ups",
            "listen": "127.0.0.1:0",
        },
    )


def test_peer_forwards_its_trigger_to_the_coordinator(
    cluster: Twin, nut_server_factory: NutServerFactory, token_file: Path, tmp_path: Path
) -> None:
    main_ups, peer_ups = nut_server_factory(["pyrphoros"]), nut_server_factory(["pyrphoros"])
    coord_state, peer_state = tmp_path / "coord", tmp_path / "peer"
    coordinator = make_coordinator(cluster, coord_state, main_ups, token_file)
    with Running(coordinator):
        assert coordinator.server is not None
        address = f"127.0.0.1:{coordinator.server.port}"
        peer = make_daemon(
            _peer_config(cluster, peer_state, peer_ups, token_file, address, fallback=False)
        )
        with Running(peer):
            peer_ups.set_reading(status="OB DISCHRG LB", runtime=100, charge=10)
            wait_for(
                lambda: shutdowns(coord_state) == [Outcome.SUCCESS],
                90,
                "the coordinator's shutdown",
            )
            assert shutdowns(peer_state) == []  # the peer did not run it itself
            assert 'hecate_triggers_total{source="peer"} 1.0' in scrape(coordinator)
            assert "hecate_coordinator_reachable 1.0" in scrape(peer)
    assert not cluster.unit_active(cluster.servers[0])


def test_peer_falls_back_when_the_coordinator_is_down(
    cluster: Twin, nut_server: NutServer, token_file: Path, tmp_path: Path
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{probe.getsockname()[1]}"
    state = tmp_path / "peer"
    peer = make_daemon(_peer_config(cluster, state, nut_server, token_file, dead, fallback=True))
    with Running(peer):
        nut_server.set_reading(status="OB DISCHRG LB", runtime=100, charge=10)
        wait_for(lambda: shutdowns(state) == [Outcome.SUCCESS], 120, "the peer's own shutdown")
        assert "hecate_coordinator_reachable 0.0" in scrape(peer)


def test_a_bad_token_is_rejected_and_counted(
    cluster: Twin, nut_server: NutServer, token_file: Path, tmp_path: Path
) -> None:
    state = tmp_path / "coord"
    coordinator = make_coordinator(cluster, state, nut_server, token_file)
    with Running(coordinator):
        assert coordinator.server is not None
        intruder = CoordinatorClient(
            f"127.0.0.1:{coordinator.server.port}", b"not-the-real-token-0123"
        )
        with pytest.raises(HecateError, match="401"):
            intruder.send_trigger("mallory", "shut it all down")
        time.sleep(2)
        assert shutdowns(state) == []
        assert 'hecate_coordination_rejected_total{reason="bad_signature"} 1.0' in scrape(
            coordinator
        )
    assert cluster.unit_active(cluster.servers[0])
