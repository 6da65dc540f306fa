"""A daemon restarted while a partial shutdown is in force (issue 28) keeps it partial: its
nodes from the intent, its lost feeds from the peers awaited; the feed's return then starts
those nodes only, not the whole cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hecate.adapters.metrics.registry import Metrics
from hecate.adapters.statedir.awaiting import save_awaiting
from hecate.adapters.statedir.store import StateStore
from hecate.config.model import HecateConfig, parse_config
from hecate.core.intent import IntentState
from hecate.core.supervisor import decide
from hecate.core.supervisor_vocabulary import PeerReported, Polled, RunStartup
from hecate.daemon import wiring
from tests.unit.core.test_supervisor import PARAMS, r
from tests.unit.core.test_supervisor_feeds import _back


def _config(tmp_path: Path, **power: Any) -> HecateConfig:
    return parse_config(
        {
            "state_dir": str(tmp_path),
            "ups": {"target": "ups@127.0.0.1"},
            "nodes": {"servers": ["s1", "s2", "s3"], "agents": ["a1", "a2", "a3"]},
            "coordination": {"peer_name": "alpha"},
            "power": {
                "feeds": {"A": {"instance": "alpha"}, "B": {"instance": "beta"}},
                "node_feeds": {
                    "s1": ["A"],
                    "s2": ["A"],
                    "s3": ["B"],
                    "a1": ["A"],
                    "a2": ["B"],
                    "a3": ["A", "B"],
                },
                **power,
            },
        }
    )


def _store(tmp_path: Path, nodes: tuple[str, ...] | None) -> StateStore:
    store = StateStore(tmp_path)
    store.set_intent(IntentState.SHUTTING_DOWN, reason="feed B", run_id=None, nodes=nodes)
    store.set_intent(IntentState.SHUTDOWN_COMPLETE, reason="feed B", run_id=None, nodes=nodes)
    save_awaiting(tmp_path, frozenset({"beta"}))
    return store


def test_a_restart_keeps_the_partial_shutdown_and_restarts_its_nodes_only(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path)
    store = _store(tmp_path, ("s3", "a2"))
    state = wiring.initial_supervisor(config, store, 0.0, Metrics())
    assert state.scope == ("s3", "a2") and state.lost_feeds == {"B"}
    assert state.awaiting == {"beta"}
    state, _ = decide(state, _back("beta"))
    effects: list[Any] = []
    for n in range(30):  # this UPS's own gate (the intent said "down") opens
        state, more = decide(state, Polled(r("OL"), 1000.0 + 5 * n, PARAMS))
        effects += more
    assert [e.nodes for e in effects if isinstance(e, RunStartup)] == [("s3", "a2")]


def test_a_whole_shutdown_restarts_whole(tmp_path: Path) -> None:
    config = _config(tmp_path)
    state = wiring.initial_supervisor(config, _store(tmp_path, None), 0.0, Metrics())
    assert state.scope is None
    assert isinstance(_back("beta"), PeerReported)
