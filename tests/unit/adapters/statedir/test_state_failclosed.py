"""Issue #12, item 3: every state file fails closed through one store.

Corrupt content of every kind is set aside as NAME.corrupt-TIMESTAMP, logged, counted as a
metric and never silently replaced; a corrupt intent keeps startup refused until
`hecate state reset --intent`; the daemon and /metrics survive any bad file; a corrupt ledger
never delays or skips a node stage; a dry run moves nothing.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from hecate.adapters.metrics.exposition import render_text
from hecate.adapters.metrics.registry import Metrics
from hecate.adapters.statedir.drill_history import load_history
from hecate.adapters.statedir.files import (
    MAX_STATE_BYTES,
    atomic_write_json,
    corrupt_counts,
    read_json,
)
from hecate.adapters.statedir.store import StateStore
from hecate.cli.main import app
from hecate.core.intent import IntentState
from hecate.core.plans import ShutdownOptions, StartupOptions
from hecate.core.readings import UpsReading, parse_status
from hecate.core.run_history import Outcome, RunRecord
from hecate.errors import (
    GuardRefusedError,
    IntentCorruptError,
    StateCorruptError,
    StateError,
)
from hecate.flows.bootstrap_cache import cache_dir, cached_or_configured
from hecate.flows.guard_facts import guard_startup
from hecate.flows.ledger import LEDGER_FILE, load_ledger
from hecate.flows.shutdown import run_shutdown
from tests.fakes import FakeAnsible, reads_ups
from tests.unit.daemon.test_daemon import World, r
from tests.unit.flows.test_flows import _cluster, _config, _ctx

EXAMPLE = Path(__file__).resolve().parents[4] / "configs" / "hecate.example.yaml"
runner = CliRunner()

# (content, why it is unreadable)
BAD_CONTENT: list[tuple[bytes, str]] = [
    (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "binary garbage: not UTF-8"),
    (b"", "empty (a truncated write)"),
    (b'{"state": "shutting_down", "since": 17', "truncated JSON"),
    (b'{"state": "shutting_down", "since": NaN}', "NaN is not JSON"),
    (b'{"state": "shutting_down", "since": Infinity}', "Infinity is not JSON"),
    (b"[1, 2, 3]", "wrong shape: not an object"),
    (b'{"state": "dancing", "since": 1}', "unknown state"),
    (b'{"state": "normal", "since": "yesterday"}', "since is not a number"),
    (b"[" * 100_000 + b"]" * 100_000, "nesting deep enough to overflow the parser"),
]


def kept(directory: Path, name: str) -> list[Path]:
    return sorted(directory.glob(f"{name}.corrupt-*"))


@pytest.mark.parametrize(("content", "why"), BAD_CONTENT, ids=[b[1] for b in BAD_CONTENT])
def test_corrupt_intent_fails_closed_until_reset(tmp_path: Path, content: bytes, why: str) -> None:
    store = StateStore(tmp_path)
    store.intent_path.write_bytes(content)
    before = corrupt_counts().get("intent.json", 0)
    with pytest.raises(IntentCorruptError, match="hecate state reset --intent"):
        store.read_intent()
    [copy] = kept(tmp_path, "intent.json")
    assert copy.read_bytes() == content  # the content is kept, byte for byte
    assert corrupt_counts()["intent.json"] == before + 1
    # The second read (the file is gone now) is still unknown: never `normal`.
    with pytest.raises(IntentCorruptError):
        store.read_intent()
    # Startup is refused; a shutdown may still record its intent (it is always safe).
    with pytest.raises(IntentCorruptError):
        store.set_intent(IntentState.STARTUP_IN_PROGRESS, reason="x", run_id=None)
    store.set_intent(IntentState.SHUTTING_DOWN, reason="ups", run_id="r1")
    with pytest.raises(IntentCorruptError):
        store.read_intent()
    store.reset_intent(IntentState.SHUTDOWN_COMPLETE, reason="checked")
    assert store.read_intent().state is IntentState.SHUTDOWN_COMPLETE
    assert kept(tmp_path, "intent.json") == [copy]  # the reset never deletes the kept copy


def test_huge_fifo_and_directory_state_files_never_hang(tmp_path: Path) -> None:
    huge = tmp_path / "runs.json"
    with huge.open("wb") as handle:
        handle.truncate(MAX_STATE_BYTES + 1)
    with pytest.raises(StateCorruptError, match="larger than"):
        StateStore(tmp_path).load_runs()
    os.mkfifo(tmp_path / "ledger.json")  # a blocking open would wait for a writer forever
    with pytest.raises(StateCorruptError, match="not a regular file"):
        load_ledger(tmp_path)
    (tmp_path / "drills.json").mkdir()
    with pytest.raises(StateCorruptError):
        load_history(tmp_path)
    assert {p.name.split(".corrupt-")[0] for p in tmp_path.glob("*.corrupt-*")} == {
        "runs.json",
        "ledger.json",
        "drills.json",
    }


def test_corruption_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "runs.json").write_bytes(b"\xff\xfe")
    with caplog.at_level(logging.ERROR), pytest.raises(StateCorruptError):
        StateStore(tmp_path).load_runs()
    assert "runs.json is unreadable (not UTF-8" in caplog.text
    assert "moved to" in caplog.text


def test_corrupt_runs_never_lose_the_new_run(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.runs_path.write_bytes(b"\x00\x01garbage")
    run = RunRecord("r1", "shutdown", 1.0, 2.0, Outcome.SUCCESS)
    store.record_run(run, keep=10)
    assert [x.run_id for x in store.load_runs()] == ["r1"]
    assert len(kept(tmp_path, "runs.json")) == 1


def test_strict_json_is_written(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="non-standard JSON"):
        atomic_write_json(tmp_path / "x.json", {"budget": float("inf")})
    assert not (tmp_path / "x.json").exists()
    atomic_write_json(tmp_path / "y.json", {"ok": 1.5})
    assert read_json(tmp_path / "y.json") == {"ok": 1.5}


def test_bad_drills_file_never_breaks_metrics(tmp_path: Path) -> None:
    (tmp_path / "drills.json").write_bytes(b"\x89\x00binary")
    metrics = Metrics()
    metrics.watch_drills(tmp_path)
    text = render_text(metrics.registry).decode()  # a scrape: no exception, no 500
    assert 'hecate_state_corrupt_files_total{file="drills.json"}' in text
    assert len(kept(tmp_path, "drills.json")) == 1
    render_text(metrics.registry)  # and the next scrape too


def test_corrupt_ledger_never_delays_or_skips_a_node_stage(tmp_path: Path) -> None:
    config = _config(tmp_path)
    config.state_dir.mkdir(parents=True)
    (config.state_dir / LEDGER_FILE).write_bytes(b"\xde\xad\xbe\xef")
    kube, ansible = _cluster(), FakeAnsible()
    report = run_shutdown(_ctx(config, kube, ansible), ShutdownOptions(reason="ups"))
    assert report.outcome is Outcome.SUCCESS, report.to_json()
    assert [p for p, _ in ansible.playbooks] == [
        "etcd_snapshot",
        "stop_agents",
        "stop_servers",
        "poweroff",
        "poweroff",
    ]
    assert len(kept(config.state_dir, LEDGER_FILE)) == 1
    # the new ledger records what this shutdown did, for the later startup
    assert load_ledger(config.state_dir).cordoned


def test_shutdown_runs_with_a_corrupt_intent_and_startup_stays_refused(tmp_path: Path) -> None:
    config = _config(tmp_path)
    config.state_dir.mkdir(parents=True)
    (config.state_dir / "intent.json").write_bytes(b"")
    kube, ansible = _cluster(), FakeAnsible()
    ctx = _ctx(config, kube, ansible)
    report = run_shutdown(ctx, ShutdownOptions(reason="ups"))
    assert report.outcome is Outcome.SUCCESS
    with pytest.raises(GuardRefusedError, match="intent"):
        guard_startup(ctx, StartupOptions().overrides)


def _config_file(tmp_path: Path) -> Path:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["state_dir"] = str(tmp_path / "state")
    data["ups"]["password_file"] = None
    path = tmp_path / "hecate.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_cli_truncated_intent_refuses_startup_every_time_until_reset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads_ups(monkeypatch, lambda _: UpsReading(parse_status("OL"), 1800, 100))
    config = _config_file(tmp_path)
    state = tmp_path / "state"
    StateStore(state).set_intent(IntentState.SHUTTING_DOWN, reason="ups", run_id="r")
    (state / "intent.json").write_bytes(b'{"state": "shutt')  # truncated
    for _ in range(2):  # the second try used to go ahead (exit 0): the guard was bypassed
        result = runner.invoke(app, ["startup", "-c", str(config)])
        assert result.exit_code == 3, result.output
        assert "hecate state reset --intent" in result.output
    status = runner.invoke(app, ["status", "-c", str(config), "--json"])
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)["intent"]["state"] == "unknown"
    assert runner.invoke(app, ["state", "reset", "-c", str(config)]).exit_code == 2
    reset = runner.invoke(app, ["state", "reset", "--intent", "-c", str(config), "--json"])
    assert reset.exit_code == 0, reset.output
    assert json.loads(reset.stdout)["kept_copies"][0].startswith(str(state / "intent.json"))
    assert runner.invoke(app, ["startup", "-c", str(config), "--no-probe"]).exit_code == 0


def test_dry_run_shutdown_moves_nothing_and_says_so(tmp_path: Path) -> None:
    config = _config_file(tmp_path)
    state = tmp_path / "state"
    state.mkdir()
    (state / "runs.json").write_bytes(b"\xff\xff")
    result = runner.invoke(app, ["shutdown", "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert "runs.json is unreadable" in result.output and "nothing moved" in result.output
    assert (state / "runs.json").read_bytes() == b"\xff\xff"
    assert kept(state, "runs.json") == []


def test_daemon_survives_a_corrupt_shutdown_complete_intent(tmp_path: Path) -> None:
    w0 = World(tmp_path)
    store = StateStore(w0.config.state_dir)
    store.set_intent(IntentState.SHUTTING_DOWN, reason="x", run_id="r")
    store.set_intent(IntentState.SHUTDOWN_COMPLETE, reason="x", run_id="r")
    store.intent_path.write_bytes(b'{"state": "shutdown_comp')  # truncated
    (w0.config.state_dir / "runs.json").write_bytes(b"\x00")
    w = World(tmp_path)  # starts: no exit on either bad file
    # Power is back and stable: the startup stays pending but the guard refuses it
    assert w.poll(r("OL", 900, 80)) == []
    assert w.poll(r("OL", 900, 80), dt=11) == ["RunStartup"]
    assert w.ansible.playbooks == []  # refused: nothing started
    assert "hecate_state_corrupt_files_total" in render_text(w.daemon.metrics.registry).decode()
    # ...and it still protects the cluster on the UPS
    w.poll(r("OB DISCHRG", 100), dt=30)
    assert w.poll(r("OB DISCHRG", 90)) == ["RunShutdown"]
    assert "poweroff" in [p for p, _ in w.ansible.playbooks]
    StateStore(w.config.state_dir).reset_intent(IntentState.SHUTDOWN_COMPLETE, reason="ok")


def test_corrupt_bootstrap_cache_falls_back_to_the_configured_file(tmp_path: Path) -> None:
    manifest = tmp_path / "gitea.yaml"
    manifest.write_text("kind: Deployment\nmetadata: {name: gitea}\n")
    config = _config(tmp_path, startup={"gitea_bootstrap_manifests": [str(manifest)]})
    cache = cache_dir(config)
    cache.mkdir(parents=True)
    (cache / "gitea.yaml").write_bytes(b"\xff: [unclosed")
    assert cached_or_configured(config, manifest) == manifest
    assert len(kept(cache, "gitea.yaml")) == 1


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(["intent.json", "runs.json", "ledger.json", "drills.json"]),
    content=st.one_of(
        st.binary(max_size=200),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
            lambda kids: (
                st.lists(kids, max_size=3)
                | st.dictionaries(
                    st.sampled_from(["state", "since", "runs", "drills", "suspended", "cordoned"]),
                    kids,
                    max_size=4,
                )
            ),
            max_leaves=10,
        ).map(lambda v: json.dumps(v).encode()),
    ),
)
def test_any_content_reads_or_is_set_aside(
    tmp_path_factory: pytest.TempPathFactory, name: str, content: bytes
) -> None:
    directory = tmp_path_factory.mktemp("state")
    (directory / name).write_bytes(content)
    store = StateStore(directory)
    readers: dict[str, Callable[[], object]] = {
        "intent.json": store.read_intent,
        "runs.json": store.load_runs,
        "ledger.json": lambda: load_ledger(directory),
        "drills.json": lambda: load_history(directory),
    }
    try:
        readers[name]()
    except StateCorruptError:
        assert len(kept(directory, name)) == 1  # set aside, never silently replaced
        assert not (directory / name).exists()
    else:
        assert (directory / name).read_bytes() == content


@pytest.mark.parametrize(
    ("value", "why"),
    [('"nan"', "a string float('nan') would accept"), ("true", "a boolean is not a time")],
)
def test_non_finite_or_non_numeric_run_times_are_corrupt(
    tmp_path: Path, value: str, why: str
) -> None:
    run = {"run_id": "r", "kind": "shutdown", "started_at": 0, "ended_at": 2, "outcome": "success"}
    text = json.dumps({"runs": [run]}).replace('"started_at": 0', f'"started_at": {value}')
    (tmp_path / "runs.json").write_text(text)
    with pytest.raises(StateCorruptError, match="expected a"):
        StateStore(tmp_path).load_runs()
