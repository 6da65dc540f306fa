"""The daemon's notifications (issue 27 item 3): which messages a real Daemon makes for an
outage, its shutdown and its startup, and that a daemon without targets makes none (no thread,
no spool). Delivery is tested in tests/unit/adapters/notify and tests/integration/test_notify.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from hecate.adapters.statedir.drill_history import DRILLS_FILE, KNOWN_DRILLS, last_runs
from hecate.adapters.statedir.files import atomic_write_json
from hecate.adapters.statedir.store import StateStore
from hecate.core.notify_events import DRILL_MAX_AGE_S, Notice, overdue_drills
from hecate.daemon.reload import restart_needed
from hecate.errors import IntentCorruptError
from tests.unit.daemon.test_daemon import World, r

TARGETS = {"targets": [{"name": "hook", "url": "json://127.0.0.1:9/h"}]}


def _world(tmp_path: Path, **config: object) -> tuple[World, list[Notice]]:
    w = World(tmp_path, notify=TARGETS, **config)
    sender = w.daemon.notices.sender
    assert sender is not None
    sender.close()  # the wiring is under test here: what it hands the sender
    got: list[Notice] = []
    sender.submit = got.extend  # type: ignore[method-assign,assignment]
    return w, got


def test_an_outage_its_shutdown_and_the_startup_are_told_in_order(tmp_path: Path) -> None:
    w, got = _world(tmp_path)
    w.poll(r("OL", 1800))
    assert got == []
    w.poll(r("OB DISCHRG", 1000))
    w.poll(r("OB DISCHRG", 200))
    w.poll(r("OB DISCHRG", 190))  # the trigger: a shutdown runs
    w.poll(r("OL CHRG", 300, 40))
    w.poll(r("OL CHRG", 600, 55), dt=11)  # the startup runs
    w.poll(r("OL CHRG", 600, 60), dt=30)  # mains stable: the episode is over
    assert [n.event for n in got] == [
        "on_battery",
        "shutdown_triggered",
        "shutdown_finished",
        "startup_finished",
        "power_restored",
    ]
    assert "shutdown triggered (UPS: " in got[1].body
    assert got[1].severity == "critical"
    assert "shutdown success in" in got[2].body
    assert all("UPS pyrphoros@localhost" in n.body for n in got)
    w.daemon.close()


def test_a_state_file_set_aside_is_told(tmp_path: Path) -> None:
    w, got = _world(tmp_path)
    w.poll(r("OL", 1800))
    intent = w.config.state_dir / "intent.json"
    intent.parent.mkdir(parents=True, exist_ok=True)
    intent.write_text("{garbage")
    with pytest.raises(IntentCorruptError):
        StateStore(w.config.state_dir).read_intent(0.0)  # set aside, counted
    w.poll(r("OL", 1800))
    assert [n.event for n in got] == ["state_set_aside"]
    assert "intent.json" in got[0].body
    w.daemon.close()


def test_no_targets_no_thread_no_spool(tmp_path: Path) -> None:
    w = World(tmp_path)
    assert w.daemon.notices.sender is None
    w.poll(r("OB DISCHRG", 1000))
    assert not (w.config.state_dir / "notify-spool").exists()
    w.daemon.close()


def test_a_reload_that_changes_notify_is_refused(tmp_path: Path) -> None:
    w = World(tmp_path, notify=TARGETS)
    other = World(tmp_path / "other", notify={"targets": [], "max_per_hour": 5}).config
    assert restart_needed(w.config, other.model_copy(update={"state_dir": w.config.state_dir})) == [
        "notify"
    ]
    w.daemon.close()


def test_a_failed_self_update_is_told_once_per_stretch_off_the_poll_thread(tmp_path: Path) -> None:
    w, got = _world(tmp_path)
    notices = w.daemon.notices
    states = iter([False, True, True, False, True])
    notices.update_failed = lambda: next(states)
    for _ in range(5):
        notices._chores()  # the sender thread runs these once a minute
    assert [n.event for n in got] == ["self_update_failed"]  # the second stretch: folded
    assert "journalctl -u hecate-update" in got[0].body
    w.daemon.close()


def test_drills_overdue_are_told_when_one_becomes_overdue(tmp_path: Path) -> None:
    w, got = _world(tmp_path)
    notices = w.daemon.notices
    notices.update_failed = lambda: False
    now = notices.clocks.wall()
    fresh = [{"drill": name, "started_at": now - 86400, "passed": True} for name in KNOWN_DRILLS]
    atomic_write_json(w.daemon.config.state_dir / DRILLS_FILE, {"drills": fresh})
    notices._chores()
    assert got == []  # the first look comes an hour after start
    notices._drills_at = None
    notices._chores()
    assert got == []  # every drill ran yesterday
    stale = [dict(fresh[0], started_at=now - 31 * 86400), *fresh[1:]]
    atomic_write_json(w.daemon.config.state_dir / DRILLS_FILE, {"drills": stale})
    notices._chores()
    assert got == []  # looked at once an hour, not once a minute
    notices._drills_at = None
    notices._chores()
    assert [n.event for n in got] == ["drills_overdue"]
    assert KNOWN_DRILLS[0] in got[0].body and "hecate drill run" in got[0].body
    notices._drills_at = None
    notices._chores()
    assert len(got) == 1  # the same drill still overdue: told once
    w.daemon.close()


def test_overdue_drills_counts_never_run_and_old_runs() -> None:
    now = 100 * 86400.0
    last = {"a": now - 86400, "b": now - 31 * 86400}
    assert overdue_drills(last, ("a", "b", "c"), now, DRILL_MAX_AGE_S) == ("b", "c")
    assert last_runs([{"drill": "a", "started_at": 5}, {"drill": "a", "started_at": 3}]) == {
        "a": 5.0
    }
    assert last_runs([{"drill": "a", "started_at": True}, {"started_at": 1}, {"drill": 1}]) == {}
