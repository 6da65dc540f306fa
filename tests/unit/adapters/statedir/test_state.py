"""Intent transitions, atomic state files, corrupt files and the exclusive flow lock."""

from __future__ import annotations

import json
import multiprocessing
import os
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path

import pytest

from hecate.adapters.statedir.files import atomic_write_json, exclusive_lock
from hecate.adapters.statedir.store import StateStore
from hecate.core.intent import (
    ALLOWED_TRANSITIONS,
    Intent,
    IntentState,
    blocks_startup,
    is_stale,
    transition,
)
from hecate.core.run_history import Outcome, RunRecord, StageRecord, append_bounded
from hecate.errors import IntentLockedError, StateCorruptError, StateError, TransitionError

S = IntentState
NOW = 1_700_000_000.0


def _intent(state: IntentState, since: float = NOW) -> Intent:
    return Intent(state, since, "test", "host-a", "run-1")


@pytest.mark.parametrize(
    ("start", "target", "allowed"),
    [
        (S.NORMAL, S.SHUTTING_DOWN, True),
        (S.NORMAL, S.STARTUP_IN_PROGRESS, True),
        (S.NORMAL, S.SHUTDOWN_COMPLETE, False),
        (S.SHUTTING_DOWN, S.SHUTDOWN_COMPLETE, True),
        (S.SHUTTING_DOWN, S.NORMAL, False),
        (S.SHUTTING_DOWN, S.SHUTTING_DOWN, True),
        (S.SHUTDOWN_COMPLETE, S.STARTUP_IN_PROGRESS, True),
        (S.SHUTDOWN_COMPLETE, S.NORMAL, False),
        (S.STARTUP_IN_PROGRESS, S.NORMAL, True),
        (S.STARTUP_IN_PROGRESS, S.SHUTTING_DOWN, True),
        (S.STARTUP_IN_PROGRESS, S.SHUTDOWN_COMPLETE, False),
    ],
)
def test_transition_table(start: IntentState, target: IntentState, allowed: bool) -> None:
    current = _intent(start)
    if allowed:
        nxt = transition(current, target, now=NOW + 1, reason="r", host="h", run_id="x")
        assert (nxt.state, nxt.since, nxt.run_id) == (target, NOW + 1, "x")
    else:
        with pytest.raises(TransitionError, match=start.value):
            transition(current, target, now=NOW + 1, reason="r", host="h", run_id="x")


def test_every_state_has_a_row() -> None:
    assert set(ALLOWED_TRANSITIONS) == set(IntentState)


@pytest.mark.parametrize(
    ("state", "age", "blocks"),
    [
        (S.SHUTTING_DOWN, 10, True),
        (S.SHUTTING_DOWN, 3601, False),  # stale
        (S.SHUTDOWN_COMPLETE, 10, False),
        (S.NORMAL, 10, False),
        (S.STARTUP_IN_PROGRESS, 10, False),
    ],
)
def test_only_a_fresh_shutdown_intent_blocks_startup(
    state: IntentState, age: float, blocks: bool
) -> None:
    intent = _intent(state, since=NOW - age)
    assert blocks_startup(intent, NOW, max_age_s=3600) is blocks
    assert is_stale(intent, NOW, 3600) is (age > 3600)


def test_intent_roundtrip_through_the_store(tmp_path: Path) -> None:
    store = StateStore(tmp_path, host="h1")
    assert store.read_intent(NOW).state is S.NORMAL  # nothing recorded yet
    store.set_intent(S.SHUTTING_DOWN, reason="ups", run_id="r1", now=NOW)
    store.set_intent(S.SHUTDOWN_COMPLETE, reason="done", run_id="r1", now=NOW + 5)
    intent = store.read_intent()
    assert (intent.state, intent.since, intent.host, intent.run_id) == (
        S.SHUTDOWN_COMPLETE,
        NOW + 5,
        "h1",
        "r1",
    )
    with pytest.raises(TransitionError):
        store.set_intent(S.NORMAL, reason="skip startup", run_id=None, now=NOW + 6)
    assert store.read_intent().state is S.SHUTDOWN_COMPLETE  # refused moves write nothing


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "x.json"
    atomic_write_json(target, {"a": 1})
    atomic_write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert [p.name for p in target.parent.iterdir()] == ["x.json"]


def test_corrupt_runs_file_is_set_aside_not_replaced(tmp_path: Path) -> None:
    runs = tmp_path / "runs.json"
    runs.write_text('{"runs": [ {"trunc')
    store = StateStore(tmp_path)
    with pytest.raises(StateCorruptError, match="corrupt") as info:
        store.load_runs()
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("runs.json.corrupt-")]
    assert len(kept) == 1
    assert kept[0].read_text() == '{"runs": [ {"trunc'
    assert str(kept[0]) in str(info.value)
    assert store.load_runs() == []  # a fresh history starts after the file was kept


def test_runs_file_with_wrong_shape_is_set_aside(tmp_path: Path) -> None:
    (tmp_path / "runs.json").write_text('{"runs": [{"kind": "reboot"}]}')
    with pytest.raises(StateError, match="moved to"):
        StateStore(tmp_path).load_runs()
    assert any(p.name.startswith("runs.json.corrupt-") for p in tmp_path.iterdir())


def test_corrupt_intent_is_set_aside(tmp_path: Path) -> None:
    (tmp_path / "intent.json").write_text('{"state": "dancing", "since": 1}')
    with pytest.raises(StateError, match="moved to"):
        StateStore(tmp_path).read_intent()
    assert any(p.name.startswith("intent.json.corrupt-") for p in tmp_path.iterdir())


def _run(run_id: str, start: float, outcome: Outcome = Outcome.SUCCESS) -> RunRecord:
    return RunRecord(
        run_id,
        "shutdown",
        start,
        start + 60,
        outcome,
        "ups",
        "poweroff",
        (StageRecord("stop_agents", 12.5, "ok"),),
    )


def test_history_is_bounded_and_roundtrips(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    for n in range(7):
        store.record_run(_run(f"r{n}", NOW + n), keep=5)
    runs = store.load_runs()
    assert [r.run_id for r in runs] == ["r2", "r3", "r4", "r5", "r6"]
    assert runs[-1].stages[0] == StageRecord("stop_agents", 12.5, "ok")
    assert runs[-1].duration_s == 60


def test_append_replaces_a_record_with_the_same_id() -> None:
    first = _run("a", NOW, Outcome.INTERRUPTED)
    final = _run("a", NOW, Outcome.SUCCESS)
    assert append_bounded([first], final, keep=10) == [final]


def _hold_lock(state_dir: str, ready: MpEvent, release: MpEvent) -> None:
    with exclusive_lock(Path(state_dir), "shutdown"):
        ready.set()
        release.wait(10)


def test_a_second_process_is_refused_with_the_holder_named(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(tmp_path), ready, release))
    holder.start()
    try:
        assert ready.wait(10)
        with pytest.raises(IntentLockedError) as info, exclusive_lock(tmp_path, "startup"):
            pass
        assert f"pid={holder.pid}" in str(info.value)
        assert "purpose=shutdown" in str(info.value)
    finally:
        release.set()
        holder.join(10)
    with exclusive_lock(tmp_path, "startup"):  # free again once the holder is gone
        held_by = (tmp_path / "hecate.lock").read_text()
        assert f"pid={os.getpid()}" in held_by
        assert "purpose=startup" in held_by


def test_concurrent_writers_never_corrupt_the_runs_file(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")

    def writer(offset: int) -> None:
        store = StateStore(tmp_path)
        for n in range(15):
            store.record_run(_run(f"w{offset}-{n}", NOW + n), keep=1000)
        os._exit(0)

    procs = [ctx.Process(target=writer, args=(k,)) for k in range(3)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0
    runs = StateStore(tmp_path).load_runs()
    assert len(runs) == 45  # the write lock serialises read-modify-write: nothing lost
