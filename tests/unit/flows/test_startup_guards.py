"""One guard set for every startup: the peers' intents behind the Peers port (a real signed
server on 127.0.0.1), staleness on the injected clock, one UPS reading, and the daemon's
power-return startup refused by a busy peer like the CLI is."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from hecate.adapters.peers.http import CoordinatorHandlers, CoordinatorServer, HttpPeers
from hecate.adapters.statedir.awaiting import (
    AWAITS_FILE,
    awaiting_at_start,
    load_awaiting,
    save_awaiting,
)
from hecate.adapters.statedir.store import StateStore
from hecate.cli.main import app
from hecate.config.model import HecateConfig
from hecate.core.intent import IntentState
from hecate.core.peers import PeerIntent, PeerUps, parse_peer_intent
from hecate.core.readings import Poll, UpsReading, parse_status
from hecate.core.startup_refusals import StartupOverrides, peer_refusals, peer_ups_refusals
from hecate.flows.context import FlowContext
from hecate.flows.guard_facts import StartupRefusedError, guard_startup
from tests.fakes import FakeAnsible, FakeKube, reads_ups
from tests.unit.daemon.test_daemon import World, r

TOKEN = secrets.token_hex(24).encode()
MAX_AGE = 6 * 3600.0


def intent(state: str, since: float | None, running: str | None = None) -> PeerIntent:
    return PeerIntent("10.0.0.2:9561", "peer-a", state, since, running, None)


@pytest.mark.parametrize(
    ("peer", "now", "refused", "why"),
    [
        (intent("normal", 1000.0), 1000.0, False, "a peer at rest blocks nothing"),
        (intent("normal", 1000.0, "startup"), 1000.0, True, "a running flow always blocks"),
        (intent("shutting_down", 1000.0), 1000.0 + 60, True, "a fresh busy intent blocks"),
        (intent("shutting_down", 1000.0), 1000.0 + MAX_AGE + 1, False, "stale on OUR clock"),
        (intent("startup_in_progress", 1000.0), 1000.0 + MAX_AGE, True, "exactly max age"),
        (intent("unknown", None), 1e12, True, "unknown never goes stale: no since"),
        (intent("shutdown_complete", 1000.0), 1000.0, False, "a peer whose cluster is down"),
    ],
)
def test_peer_refusals_judge_staleness_on_the_injected_clock(
    peer: PeerIntent, now: float, refused: bool, why: str
) -> None:
    assert bool(peer_refusals([peer], now, MAX_AGE)) is refused, why


@pytest.mark.parametrize(
    ("data", "state", "running", "ups", "why"),
    [
        ({}, "unknown", None, None, "an empty answer is unknown: busy for the guard"),
        ({"state": 7}, "unknown", None, None, "a state that is not text"),
        ({"state": "normal", "running": True}, "normal", None, None, "running must be text"),
        ({"state": "normal", "running": "startup"}, "normal", "startup", None, "a running flow"),
        ({"state": "normal", "since": float("nan")}, "normal", None, None, "nan since dropped"),
        (
            {"state": "normal", "ups": {"name": "u", "back": "yes"}},
            "normal",
            None,
            PeerUps("u", False, ""),
            "only a real true is back",
        ),
        (
            {"state": "normal", "ups": {"name": "u", "back": True, "detail": "stable 30s"}},
            "normal",
            None,
            PeerUps("u", True, "stable 30s"),
            "a UPS back on mains",
        ),
        ({"state": "normal", "ups": [1]}, "normal", None, None, "a UPS that is not an object"),
    ],
)
def test_peer_answers_are_parsed_once_at_the_boundary(
    data: dict[str, Any], state: str, running: str | None, ups: PeerUps | None, why: str
) -> None:
    parsed = parse_peer_intent("a:1", data)
    assert (parsed.state, parsed.running, parsed.ups) == (state, running, ups), why


class PeerServer:
    """A real signed endpoint whose intent answer the test sets."""

    def __init__(self) -> None:
        self.answer: dict[str, Any] = {"state": "normal", "running": None}
        handlers = CoordinatorHandlers(
            on_trigger=lambda _: False,
            on_startup_request=lambda _: "refused",
            intent=lambda: self.answer,
            on_rejected=lambda _: None,
        )
        self.server = CoordinatorServer("127.0.0.1:0", TOKEN, handlers)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.port}"


@pytest.fixture
def peer() -> Iterator[PeerServer]:
    server = PeerServer()
    server.server.start()
    try:
        yield server
    finally:
        server.server.close()


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_bytes(TOKEN)
    path.chmod(0o600)
    return path


def test_http_peers_reports_the_reachable_ones(peer: PeerServer) -> None:
    peer.answer = {"state": "shutting_down", "since": 5.0, "running": "shutdown", "name": "p"}
    dead = "127.0.0.1:1"  # nothing listens: left out (a down instance starts nothing)
    answers = HttpPeers([dead, peer.address], TOKEN).intents()  # type: ignore[list-item]
    assert [(a.address, a.name, a.running) for a in answers] == [(peer.address, "p", "shutdown")]


def coordinator_world(tmp_path: Path, peer: PeerServer, token_file: Path) -> World:
    return World(
        tmp_path,
        coordination={"peer_hosts": [peer.address], "token_file": str(token_file)},
    )


def test_the_daemons_power_return_startup_asks_the_peers_first(
    tmp_path: Path, peer: PeerServer, token_file: Path
) -> None:
    w = coordinator_world(tmp_path, peer, token_file)
    store = StateStore(w.config.state_dir)
    w.poll(r("OB DISCHRG", 100))
    assert w.poll(r("OB DISCHRG", 100)) == ["RunShutdown"]
    assert store.read_intent().state is IntentState.SHUTDOWN_COMPLETE
    peer.answer = {"state": "startup_in_progress", "since": w.clock.t, "running": "startup"}
    w.poll(r("OL", 900, 90))
    assert w.poll(r("OL", 900, 90), dt=11) == ["RunStartup"]
    assert store.read_intent().state is IntentState.SHUTDOWN_COMPLETE  # refused: peer busy
    assert w.daemon.reports[-1].kind == "shutdown"  # a refused startup touched nothing
    peer.answer = {"state": "normal", "since": w.clock.t, "running": None}
    for _ in range(2):
        assert w.poll(r("OL", 900, 90), dt=25) == []  # the refusal's back-off (60 s)
    assert w.poll(r("OL", 900, 90), dt=11) == ["RunStartup"]
    assert store.read_intent().state is IntentState.NORMAL


def test_the_guard_set_reads_the_ups_once_and_lists_every_refusal(
    tmp_path: Path, peer: PeerServer, token_file: Path
) -> None:
    w = coordinator_world(tmp_path, peer, token_file)
    reads: list[int] = []

    def read() -> Poll:
        reads.append(1)
        return UpsReading(parse_status("OB DISCHRG"), 900, 20)

    peer.answer = {"state": "shutting_down", "since": w.clock.t, "running": None}
    ctx = FlowContext(
        w.config, FakeAnsible(), FakeKube(), StateStore(w.config.state_dir), read, clock=w.clock
    )
    with pytest.raises(StartupRefusedError) as info:
        guard_startup(ctx, StartupOverrides())
    assert [x.guard for x in info.value.refusals] == ["battery", "charge", "peer_busy"]
    assert len(reads) == 1


runner = CliRunner()


def test_cli_startup_execute_is_refused_inside_the_lock_with_one_ups_read(
    tmp_path: Path, peer: PeerServer, token_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[int] = []

    def reader(_: HecateConfig) -> Poll:
        reads.append(1)
        return UpsReading(parse_status("OL"), 1800, 100)

    reads_ups(monkeypatch, reader)
    example = Path(__file__).resolve().parents[3] / "configs" / "hecate.example.yaml"
    data = yaml.safe_load(example.read_text())
    data["state_dir"] = str(tmp_path / "state")
    data["ups"]["password_file"] = None
    data["coordination"].update(peer_hosts=[peer.address], token_file=str(token_file))
    config = tmp_path / "hecate.yaml"
    config.write_text(yaml.safe_dump(data))
    peer.answer = {"state": "normal", "running": "shutdown"}
    result = runner.invoke(app, ["startup", "-c", str(config), "--execute", "--json"])
    assert result.exit_code == 3, result.output
    assert [x["guard"] for x in json.loads(result.stdout)["refused"]] == ["peer_busy"]
    assert len(reads) == 1  # evaluated once, in the lock (it used to read twice)
    dry = runner.invoke(app, ["startup", "-c", str(config)])
    assert dry.exit_code == 3 and "peer_busy" in dry.output  # the dry run says the same


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"{", "truncated JSON"),
        (b'{"peers": "peer-a"}', "peers is not a list"),
        (b'{"peers": [1]}', "a name that is not text"),
        (b"[]", "not an object"),
    ],
)
def test_an_unreadable_awaits_file_waits_for_every_peer(
    tmp_path: Path, content: bytes, why: str
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / AWAITS_FILE).write_bytes(content)
    assert awaiting_at_start(state, ["10.0.0.2:9561", "10.0.0.3:9561"]) == {
        "@10.0.0.2:9561",
        "@10.0.0.3:9561",
    }, why
    save_awaiting(state, frozenset({"peer-a"}))
    assert awaiting_at_start(state, ["10.0.0.2:9561"]) == {"peer-a"}
    (state / AWAITS_FILE).unlink()
    assert awaiting_at_start(state, ["10.0.0.2:9561"]) == frozenset()  # absent: nobody


def reporting(ups: PeerUps | None, name: str = "peer-a") -> PeerIntent:
    return PeerIntent("10.0.0.2:9561", name, "shutdown_complete", 1000.0, None, ups)


BACK = PeerUps("eaton", True, "on mains for 300s")
DOWN = PeerUps("eaton", False, "on battery")


@pytest.mark.parametrize(
    ("awaiting", "peers", "refused", "why"),
    [
        (frozenset(), [], [], "no peer's trigger: nothing to wait for"),
        (frozenset({"peer-a"}), [reporting(BACK)], [], "its UPS is back"),
        (frozenset({"peer-a"}), [reporting(DOWN)], ["peer-a"], "still on battery"),
        (frozenset({"peer-a"}), [], ["peer-a"], "it does not answer: not back (fail closed)"),
        (frozenset({"peer-a"}), [reporting(None)], ["peer-a"], "an older Hecate: not back"),
        (frozenset({"@10.0.0.2:9561"}), [reporting(BACK)], [], "known by address only"),
        (
            frozenset({"peer-a", "peer-b"}),
            [reporting(BACK), reporting(DOWN, "peer-b")],
            ["peer-b"],
            "each awaited peer on its own",
        ),
    ],
)
def test_a_startup_waits_for_the_triggering_peers_ups(
    awaiting: frozenset[str], peers: list[PeerIntent], refused: list[str], why: str
) -> None:
    refusals = peer_ups_refusals(awaiting, peers)
    assert [r.guard for r in refusals] == ["peer_ups"] * len(refused), why
    for name, refusal in zip(refused, refusals, strict=True):
        assert f"peer {name}'s trigger" in refusal.message, why
        assert "--allow-peer-ups-down" in refusal.message


def test_cli_and_boot_startup_wait_for_the_triggering_peers_ups(
    tmp_path: Path, peer: PeerServer, token_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`hecate startup --execute` (also what hecate-bootstrap.service runs at a cold boot) is
    held by the same rule as the daemon: the peer whose trigger shut the cluster down must
    report its own UPS back; --allow-peer-ups-down is the operator's way past it."""
    reads_ups(monkeypatch, lambda _: UpsReading(parse_status("OL"), 1800, 100))
    example = Path(__file__).resolve().parents[3] / "configs" / "hecate.example.yaml"
    data = yaml.safe_load(example.read_text())
    data["state_dir"] = str(tmp_path / "state")
    data["ups"]["password_file"] = None
    data["coordination"].update(peer_hosts=[peer.address], token_file=str(token_file))
    config = tmp_path / "hecate.yaml"
    config.write_text(yaml.safe_dump(data))
    (tmp_path / "state").mkdir()
    save_awaiting(tmp_path / "state", frozenset({"peer-a"}))
    peer.answer = {
        "state": "shutdown_complete",
        "name": "peer-a",
        "running": None,
        "ups": {"name": "eaton", "back": False, "detail": "on battery"},
    }
    held = runner.invoke(app, ["startup", "-c", str(config), "--json"])
    assert held.exit_code == 3, held.output
    assert [x["guard"] for x in json.loads(held.stdout)["refused"]] == ["peer_ups"]
    forced = runner.invoke(
        app, ["startup", "-c", str(config), "--json", "--allow-peer-ups-down", "--no-probe"]
    )
    assert forced.exit_code == 0, forced.output
    assert json.loads(forced.stdout)["refused"] == []
    peer.answer = {**peer.answer, "ups": {"name": "eaton", "back": True, "detail": "on mains"}}
    back = runner.invoke(app, ["startup", "-c", str(config), "--json", "--no-probe"])
    assert back.exit_code == 0, back.output


def test_an_unreadable_awaits_file_is_written_back_for_every_other_startup(tmp_path: Path) -> None:
    """The daemon sets the corrupt file aside at its start; the CLI's and the boot unit's
    peer_ups guard must then still wait for every peer, not read "nobody"."""
    state = tmp_path / "state"
    state.mkdir()
    (state / AWAITS_FILE).write_bytes(b"{")
    assert awaiting_at_start(state, ["10.0.0.2:9561"]) == {"@10.0.0.2:9561"}
    assert load_awaiting(state, move=False) == frozenset({"@10.0.0.2:9561"})
    assert list(state.glob(f"{AWAITS_FILE}.corrupt-*")), "the unreadable copy is kept aside"
