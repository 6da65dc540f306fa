"""Power return across instances (issue #14 item 4): two daemons, two real upsd, the twin.

The peer's UPS runs low and its trigger shuts the cluster down through the coordinator, whose own
UPS never left mains. The coordinator's startup then waits for the PEER's UPS to be back on mains
and stable (asked on its signed /v1/intent), not only for its own gate; `hecate status` says so.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from hecate.adapters.statedir.awaiting import load_awaiting
from hecate.adapters.statedir.store import StateStore
from hecate.cli.main import app
from hecate.config.model import parse_config
from hecate.core.run_history import Outcome
from tests.integration.support import twin_config_data
from tests.integration.test_daemon import FAST, Running, make_daemon, wait_for
from tests.testbed.pytest_nut import NutServerFactory
from tests.testbed.pytest_twin import TwinFactory

pytestmark = pytest.mark.integration
STABLE_S = 3


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def runs(state: Path, kind: str) -> list[Outcome]:
    try:
        return [r.outcome for r in StateStore(state).load_runs() if r.kind == kind]
    except Exception:
        return []


def test_the_coordinator_starts_up_only_once_the_triggering_peers_ups_is_back(
    make_twin: TwinFactory, nut_server_factory: NutServerFactory, tmp_path: Path
) -> None:
    cluster = make_twin(1, 1)
    main_ups, peer_ups = nut_server_factory(["pyrphoros"]), nut_server_factory(["pyrphoros"])
    token = tmp_path / "token"
    token.write_text("power-return-test-token-0123456789")
    token.chmod(0o600)
    coord_port, peer_port = free_port(), free_port()
    coord_state, peer_state = tmp_path / "coord", tmp_path / "peer"
    common = {**FAST, "startup": {"power_stable_seconds": STABLE_S, "min_battery_charge": 50}}
    coord_data = twin_config_data(
        cluster,
        coord_state,
        main_ups,
        **common,
        coordination={
            "role": "coordinator",
            "token_file": str(token),
            "listen": f"127.0.0.1:{coord_port}",
            "peer_hosts": [f"127.0.0.1:{peer_port}"],
        },
    )
    peer_data = twin_config_data(
        cluster,
        peer_state,
        peer_ups,
        **common,
        coordination={
            "role": "peer",
            "token_file": str(token),
            "listen": f"127.0.0.1:{peer_port}",
            "coordinator_address": f"127.0.0.1:{coord_port}",
            "peer_name": "peer-ups",
        },
    )
    for data in (coord_data, peer_data):
        data["ups"] = {**data["ups"], **FAST["ups"]}
    config_file = tmp_path / "coordinator.yaml"
    config_file.write_text(yaml.safe_dump(coord_data))
    coordinator = make_daemon(parse_config(coord_data))
    peer = make_daemon(parse_config(peer_data))
    with Running(coordinator), Running(peer):
        peer_ups.set_reading(status="OB DISCHRG LB", runtime=100, charge=10)
        wait_for(lambda: runs(coord_state, "shutdown") == [Outcome.SUCCESS], 90, "the shutdown")
        assert load_awaiting(coord_state) == frozenset({"peer-ups"})
        # The coordinator's own UPS has been on mains all along: its gate opens after STABLE_S,
        # but the peer's UPS is still on battery.
        time.sleep(STABLE_S + 6)
        assert runs(coord_state, "startup") == []
        status = CliRunner().invoke(app, ["status", "-c", str(config_file), "--json"])
        startup = json.loads(status.stdout)["startup"]
        assert startup["pending"] is True and startup["waits_for_peers"] == ["peer-ups"]
        text = CliRunner().invoke(app, ["status", "-c", str(config_file)]).output
        assert "the UPS of peer peer-ups back on mains and stable" in text

        started = time.monotonic()
        peer_ups.set_reading(status="OL CHRG", runtime=1500, charge=90)
        wait_for(lambda: runs(coord_state, "startup") != [], 120, "the coordinator's startup")
        assert runs(coord_state, "startup") == [Outcome.SUCCESS]
        assert time.monotonic() - started >= STABLE_S  # the peer's mains had to be stable
        assert load_awaiting(coord_state) == frozenset()
        assert runs(peer_state, "startup") == runs(peer_state, "shutdown") == []
    assert cluster.api_ready()
