"""Load shedding wired into the daemon (issue 28, item 3), with in-memory ports and an explicit
clock: shed after `after_seconds` on battery, restored once mains is stable, read back after a
restart, stopped by a shutdown, and never over a corrupt record."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from pytest import MonkeyPatch

from hecate.adapters.metrics.exposition import render_text
from hecate.adapters.statedir.shed_file import SHED_FILE, load_shed
from hecate.core import notify_events as ne
from hecate.core.shed import ShedBlocked, ShedRecord
from hecate.core.shed_plan import Candidate
from hecate.daemon.service import Daemon
from tests.unit.daemon.test_daemon import World, r

MARK = ("hecate.dev/shed", "true")
SHED = {"shed": {"label_selector": "hecate.dev/shed=true", "after_seconds": 30}}


def _world(tmp_path: Path) -> World:
    w = World(tmp_path, power=SHED)
    w.kube.add_workload(Candidate("deployment", "apps", "web", 3, (MARK,)))
    return w


def _settle(w: World) -> None:
    thread = w.daemon.shedder.thread
    if thread is not None:
        thread.join(10)


def _web(w: World) -> int:
    return w.kube.shed["deployment/apps/web"].replicas


def test_shed_on_battery_then_restored_when_mains_is_stable(tmp_path: Path) -> None:
    w = _world(tmp_path)
    w.poll(r("OL", 1800))
    w.poll(r("OB DISCHRG", 1700))
    _settle(w)
    assert _web(w) == 3  # 5 s on battery: not yet
    for _ in range(6):
        w.poll(r("OB DISCHRG", 1600))
        _settle(w)
    assert _web(w) == 0
    assert isinstance(load_shed(w.config.state_dir), ShedRecord)
    assert "hecate_shed_workloads 1.0" in render_text(w.daemon.metrics.registry).decode()
    w.poll(r("OL", 1800))  # back, not yet stable (power_stable_seconds 10)
    _settle(w)
    assert _web(w) == 0
    for _ in range(4):
        w.poll(r("OL", 1800))
        _settle(w)
    assert _web(w) == 3
    assert not (w.config.state_dir / SHED_FILE).exists()
    assert "hecate_shed_workloads 0.0" in render_text(w.daemon.metrics.registry).decode()
    w.daemon.close()


def test_a_restarted_daemon_restores_the_record_it_finds(tmp_path: Path) -> None:
    w = _world(tmp_path)
    w.poll(r("OL", 1800))
    for _ in range(8):
        w.poll(r("OB DISCHRG", 1600))
        _settle(w)
    assert _web(w) == 0
    w.daemon.close()
    # a new process: the record is read at start; mains stable restores it
    w.daemon = Daemon(w.config, reader=lambda: w.reading, context_factory=w.context, clock=w.clock)
    assert isinstance(w.daemon.shedder.record, ShedRecord)
    for _ in range(5):
        w.poll(r("OL", 1800))
        _settle(w)
    assert _web(w) == 3
    w.daemon.close()


def test_a_corrupt_record_blocks_shedding(tmp_path: Path) -> None:
    w = _world(tmp_path)
    w.config.state_dir.mkdir(parents=True, exist_ok=True)
    (w.config.state_dir / SHED_FILE).write_text("{not json")
    w.daemon.close()
    w.daemon = Daemon(w.config, reader=lambda: w.reading, context_factory=w.context, clock=w.clock)
    assert isinstance(w.daemon.shedder.record, ShedBlocked)
    w.poll(r("OL", 1800))
    for _ in range(8):
        w.poll(r("OB DISCHRG", 1600))
        _settle(w)
    assert _web(w) == 3  # fail closed: nothing shed over an unknown record
    assert "hecate_shed_record_unreadable 1.0" in render_text(w.daemon.metrics.registry).decode()
    w.daemon.close()


def test_an_outage_that_ends_in_a_shutdown_is_restored_by_the_startup(tmp_path: Path) -> None:
    w = _world(tmp_path)
    w.poll(r("OL", 1800))
    for _ in range(8):
        w.poll(r("OB DISCHRG", 1600))
        _settle(w)
    assert _web(w) == 0
    actions: list[str] = []
    for runtime in (200, 190, 180):
        actions += w.poll(r("OB DISCHRG", runtime))
    assert "RunShutdown" in actions
    for _ in range(12):
        actions += w.poll(r("OL", 1800), dt=5)
        _settle(w)
    assert "RunStartup" in actions
    assert _web(w) == 3 and not (w.config.state_dir / SHED_FILE).exists()
    w.daemon.close()


def test_the_shed_and_the_restore_are_told(tmp_path: Path) -> None:
    w = _world(tmp_path)
    told: list[ne.Notice] = []
    w.daemon.notices.send = told.append  # type: ignore[method-assign,assignment]
    w.poll(r("OL", 1800))
    for _ in range(8):
        w.poll(r("OB DISCHRG", 1600))
        _settle(w)
    for _ in range(5):
        w.poll(r("OL", 1800))
        _settle(w)
    assert [n.event for n in told] == ["load_shed", "load_restored"]
    assert "deployment/apps/web" not in told[0].body  # the summary counts; status lists
    assert "1 workload(s) at 0" in told[0].body and "after_seconds" in told[0].body
    assert "all is as before" in told[1].body
    w.daemon.close()


def test_a_record_with_an_overflowing_number_blocks_and_never_stops_the_daemon(
    tmp_path: Path,
) -> None:
    """Review: `float()` of a 400-digit integer raises OverflowError, which the record's parser
    did not turn into a corrupt record: the daemon could not even start (and status crashed)."""
    w = _world(tmp_path)
    w.daemon.close()
    w.config.state_dir.mkdir(parents=True, exist_ok=True)
    (w.config.state_dir / SHED_FILE).write_text('{"since": 1' + "0" * 400 + "}")
    w.daemon = Daemon(w.config, reader=lambda: w.reading, context_factory=w.context, clock=w.clock)
    assert isinstance(w.daemon.shedder.record, ShedBlocked)
    blocked = load_shed(w.config.state_dir)
    assert isinstance(blocked, ShedBlocked)
    w.daemon.close()


def test_a_shedder_error_never_stops_the_poll(tmp_path: Path, monkeypatch: MonkeyPatch) -> None:
    """Review: the shedder's step runs in the UPS poll; any error there is counted as the
    `shed` chore's and the poll goes on to the shutdown it owes."""
    w = _world(tmp_path)

    def broken(*_args: object, **_kw: object) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr("hecate.daemon.shedding.shed_move", broken)
    w.poll(r("OL", 1800))
    actions: list[str] = []
    for runtime in (200, 190, 180):
        actions += w.poll(r("OB DISCHRG", runtime))
    assert "RunShutdown" in actions
    assert (
        'hecate_background_failures_total{chore="shed"}'
        in render_text(w.daemon.metrics.registry).decode()
    )
    w.daemon.close()


def test_no_restore_while_a_partial_shutdown_is_in_force(tmp_path: Path) -> None:
    """Review: a shed agent on a feed that is lost (a partial shutdown in force: its nodes
    are off until their feed is back) must not be powered on and started because this
    instance's own UPS has stable mains again; the restore waits for the partial startup."""
    w = World(
        tmp_path,
        power={
            "shed": {
                "label_selector": "hecate.dev/shed=true",
                "after_seconds": 30,
                "agents": ["a1"],
            }
        },
    )
    w.kube.add_workload(Candidate("deployment", "apps", "web", 3, (MARK,)))
    w.poll(r("OL", 1800))
    for _ in range(8):
        w.poll(r("OB DISCHRG", 1600))
        _settle(w)
    assert _web(w) == 0 and ("poweroff", ("a1",)) in w.ansible.playbooks
    # meanwhile a1's feed was lost: a partial shutdown of a1 is in force, awaiting its feed
    w.daemon.sup = replace(w.daemon.sup, scope=("a1",))
    for _ in range(5):
        w.poll(r("OL", 1800))
        _settle(w)
    assert ("start_agents", ("a1",)) not in w.ansible.playbooks
    assert isinstance(load_shed(w.config.state_dir), ShedRecord)
    w.daemon.sup = replace(w.daemon.sup, scope=None)  # its feed back, its nodes started
    for _ in range(2):
        w.poll(r("OL", 1800))
        _settle(w)
    assert _web(w) == 3 and not (w.config.state_dir / SHED_FILE).exists()
    w.daemon.close()


def test_nothing_is_shed_once_the_outage_ended_in_a_shutdown(tmp_path: Path) -> None:
    """Review: after a shutdown (a startup pending) the cluster is down; a shed due later in
    the same outage sheds nothing and tells nobody it did."""
    w = _world(tmp_path)
    told: list[ne.Notice] = []
    w.daemon.notices.send = told.append  # type: ignore[method-assign,assignment]
    w.poll(r("OL", 1800))
    actions: list[str] = []
    for runtime in (200, 190, 180):  # the shutdown comes before after_seconds (30 s)
        actions += w.poll(r("OB DISCHRG", runtime))
    assert "RunShutdown" in actions and w.daemon.sup.policy.startup_pending
    for _ in range(8):
        w.poll(r("OB DISCHRG", 170))
        _settle(w)
    assert not (w.config.state_dir / SHED_FILE).exists()
    assert [n.event for n in told if n.event.startswith("load_")] == []
    w.daemon.close()
