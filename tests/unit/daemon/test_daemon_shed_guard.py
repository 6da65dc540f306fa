"""Load shedding in the daemon, after review (issue 28): no restore while another process's
flow runs (a real process holding the real flow lock) or the intent is not normal; a restore
that keeps failing backs off and is told once; an unreadable record blocks shedding, is said,
never stops a shutdown, and is read again once the disk (or the operator) has fixed it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hecate.adapters.metrics.exposition import render_text
from hecate.adapters.statedir.shed_file import SHED_FILE, load_shed
from hecate.core import notify_events as ne
from hecate.core.intent import IntentState
from hecate.core.shed import ShedBlocked, ShedRecord
from hecate.core.shed_plan import Candidate
from hecate.daemon.service import Daemon
from tests.unit.daemon.test_daemon import World, r
from tests.unit.daemon.test_daemon_shed import MARK, _settle, _web, _world

HOLD = """
import sys
from pathlib import Path
from hecate.adapters.statedir.save import flow_lock
with flow_lock(Path(sys.argv[1]), "shutdown"):
    print("held", flush=True)
    sys.stdin.read()
"""


def _shed(w: World) -> None:
    w.poll(r("OL", 1800))
    for _ in range(8):
        w.poll(r("OB DISCHRG", 1600))
        _settle(w)
    assert _web(w) == 0


def _mains(w: World, polls: int, dt: float = 5.0) -> None:
    for _ in range(polls):
        w.poll(r("OL", 1800), dt=dt)
        _settle(w)


def test_no_restore_while_another_process_holds_the_flow_lock(tmp_path: Path) -> None:
    """Review 5: a restore racing a CLI `hecate shutdown` (another process, holding the flow
    lock) powered on, started and scaled back what the shutdown was taking down."""
    w = _world(tmp_path)
    _shed(w)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    with subprocess.Popen(
        [sys.executable, "-c", HOLD, str(w.config.state_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    ) as holder:
        assert holder.stdout is not None and holder.stdin is not None
        try:
            assert holder.stdout.readline() == "held\n"
            _mains(w, 6)  # stable mains: the restore is due, and waits
            assert _web(w) == 0 and isinstance(load_shed(w.config.state_dir), ShedRecord)
        finally:
            holder.stdin.close()
            holder.wait(10)
    _mains(w, 4)  # the flow is over: the restore goes on
    assert _web(w) == 3 and not (w.config.state_dir / SHED_FILE).exists()
    w.daemon.close()


def test_no_restore_while_the_intent_is_not_normal(tmp_path: Path) -> None:
    w = _world(tmp_path)
    _shed(w)
    # a CLI startup under way (its intent recorded, its lock not seen: the intent is enough)
    w.daemon.store.reset_intent(IntentState.STARTUP_IN_PROGRESS, reason="cli startup")
    _mains(w, 6)
    assert _web(w) == 0
    w.daemon.store.reset_intent(IntentState.NORMAL, reason="startup done")
    _mains(w, 4)
    assert _web(w) == 3
    w.daemon.close()


def test_a_restore_that_keeps_failing_backs_off_and_is_told_once(tmp_path: Path) -> None:
    """Review 3: an agent that does not come back (no power method: only an operator can
    power it on) was tried every 120 s, each try a notice and a warning."""
    shed = {"label_selector": "hecate.dev/shed=true", "after_seconds": 30, "agents": ["a1"]}
    w = World(tmp_path, power={"shed": shed})
    w.kube.add_workload(Candidate("deployment", "apps", "web", 3, (MARK,)))
    told: list[ne.Notice] = []
    w.daemon.notices.send = told.append  # type: ignore[method-assign,assignment]
    _shed(w)
    assert ("poweroff", ("a1",)) in w.ansible.playbooks
    w.ansible.unreachable = {"a1"}  # it does not come back
    _mains(w, 200)  # 1000 s of stable mains
    tries = [p for p in w.ansible.playbooks if p == ("start_agents", ("a1",))]
    assert 1 <= len(tries) <= 4, tries  # 120 s, then 240, 480: not every 120 s
    assert [n.event for n in told] == ["load_shed", "load_restored"]
    assert _web(w) == 3  # the workloads were restored at the first try
    left = load_shed(w.config.state_dir)
    assert isinstance(left, ShedRecord) and left.agents == ("a1",)
    w.ansible.unreachable = set()
    _mains(w, 400)  # the next try (at most RETRY_MAX_S later) brings it back
    assert not (w.config.state_dir / SHED_FILE).exists() and w.kube.cordoned == set()
    w.daemon.close()


def test_an_unreadable_record_blocks_is_said_and_never_stops_a_shutdown(tmp_path: Path) -> None:
    """Review 4: shed.json that cannot be read at the daemon's start (here a symlink loop:
    ELOOP, as a failing disk gives EIO) blocks shedding in memory; it must be said, never
    stop a shutdown, and be read again once it can be (the daemon kept it blocked until a
    restart, and so never shed again)."""
    w = _world(tmp_path)
    w.daemon.close()
    path = w.config.state_dir / SHED_FILE
    w.config.state_dir.mkdir(parents=True, exist_ok=True)
    path.symlink_to(path.name)  # shed.json -> shed.json
    w.daemon = Daemon(w.config, reader=lambda: w.reading, context_factory=w.context, clock=w.clock)
    assert isinstance(w.daemon.shedder.record, ShedBlocked)
    metrics = render_text(w.daemon.metrics.registry).decode()
    assert "hecate_shed_record_unreadable 1.0" in metrics
    w.poll(r("OL", 1800))
    actions: list[str] = []
    for _ in range(8):  # 40 s on battery: a shed is due, and refused
        actions += w.poll(r("OB DISCHRG", 1600))
        _settle(w)
    assert _web(w) == 3
    for runtime in (200, 190, 180):
        actions += w.poll(r("OB DISCHRG", runtime))
    assert "RunShutdown" in actions  # protection goes on
    w.daemon.close()


def test_an_unreadable_record_is_read_again_without_a_restart(tmp_path: Path) -> None:
    w = _world(tmp_path)
    w.daemon.close()
    path = w.config.state_dir / SHED_FILE
    w.config.state_dir.mkdir(parents=True, exist_ok=True)
    path.symlink_to(path.name)
    w.daemon = Daemon(w.config, reader=lambda: w.reading, context_factory=w.context, clock=w.clock)
    w.poll(r("OL", 1800))
    assert isinstance(w.daemon.shedder.record, ShedBlocked)
    path.unlink()  # the disk reads again (here: the operator removed the broken file)
    for _ in range(8):
        w.poll(r("OB DISCHRG", 1600))
        _settle(w)
    assert isinstance(w.daemon.shedder.record, ShedRecord)
    assert _web(w) == 0  # shedding resumed without a restart
    assert "hecate_shed_record_unreadable 0.0" in render_text(w.daemon.metrics.registry).decode()
    w.daemon.close()
