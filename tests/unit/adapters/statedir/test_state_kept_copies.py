"""Kept copies (hecate.adapters.statedir.unsaved) never win over a newer write, never read as
`normal` when
in doubt, and never cost a shutdown a wait (issue 23 item 1, review of branch i23-disk).

Real processes and real faults (a read-only or full tmpfs, a failing ext4, a lock another
process holds): root only, see tests/diskfaults.py. Each test names what it failed with
before the fix.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hecate.adapters.statedir import save as statesave
from hecate.adapters.statedir import unsaved
from hecate.adapters.statedir.store import StateStore
from hecate.core.intent import IntentState
from hecate.core.plans import ShutdownOptions
from hecate.core.readings import UpsReading, parse_status
from hecate.core.run_history import Outcome, RunRecord
from hecate.errors import IntentCorruptError, StateError
from hecate.flows.shutdown import run_shutdown
from tests import diskfaults
from tests.fakes import FakeAnsible
from tests.unit.adapters.statedir.test_state_disk_faults import _config, _ctx

NOBODY = 65534

# Process A: keeps a shutdown's intent and run on a disk that refuses them, then obeys stdin.
KEEPER = """
import sys
from pathlib import Path
from hecate.adapters.statedir import save as statesave
from hecate.core.intent import IntentState
from hecate.core.readings import UpsReading, parse_status
from hecate.core.run_history import Outcome, RunRecord
from hecate.adapters.statedir.store import StateStore

state = Path(sys.argv[1])
store = StateStore(state)
store.set_intent(IntentState.SHUTTING_DOWN, reason="ups", run_id="r1", keep_if_refused=True)
store.record_run(RunRecord("r1", "shutdown", 1.0, 2.0, Outcome.SUCCESS, "ups"), keep=10)
store.set_intent(IntentState.SHUTDOWN_COMPLETE, reason="ups", run_id="r1", keep_if_refused=True)
if sys.argv[2:] == ["exit"]:
    raise SystemExit(0)
print("kept", flush=True)
for line in sys.stdin:
    if line.strip() == "read":
        print(store.read_intent().state.value, flush=True)
    elif line.strip() == "flush":
        statesave.flush(state)
        print("flushed", flush=True)
"""


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs holding a state dir whose intent is `normal`."""
    with diskfaults.tmpfs(tmp_path / "disk", size="256k") as mount:
        state = mount / "state"
        state.mkdir()
        StateStore(state).set_intent(IntentState.NORMAL, reason="seed", run_id=None)
        yield state


def _ask(proc: subprocess.Popen[str], command: str) -> str:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(command + "\n")
    proc.stdin.flush()
    return proc.stdout.readline().strip()


def _disk_intent(state: Path) -> str:
    return str(json.loads((state / "intent.json").read_text())["state"])


def test_an_old_kept_copy_never_overwrites_another_process_s_newer_write(disk: Path) -> None:
    """A keeps shutting_down, shutdown_complete and its run on a read-only disk; the disk
    comes back; B (the operator's reset, then another run) writes. A then reads B's intent and
    its flush (the retry) writes nothing over it. Before: A read its own memory
    (shutdown_complete) and its flush put shutdown_complete and a one-run history back."""
    diskfaults.remount(disk.parent, "ro")
    keeper = subprocess.Popen(
        [sys.executable, "-c", KEEPER, str(disk)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert keeper.stdout is not None and keeper.stdout.readline().strip() == "kept"
        b = StateStore(disk)
        assert b.read_intent().state is IntentState.SHUTDOWN_COMPLETE  # A's copy, from /run
        diskfaults.remount(disk.parent, "rw")
        b.reset_intent(IntentState.NORMAL, reason="operator checked the cluster")
        b.record_run(RunRecord("r2", "startup", 3.0, 4.0, Outcome.SUCCESS, "cli"), keep=10)
        assert _ask(keeper, "read") == "normal"  # the daemon sees the other process's write
        assert _ask(keeper, "flush") == "flushed"
        assert _disk_intent(disk) == "normal"
        runs = json.loads((disk / "runs.json").read_text())["runs"]
        assert [r["run_id"] for r in runs] == ["r1", "r2"]  # A's run was merged by B's read
    finally:
        keeper.kill()
        keeper.communicate()


def test_a_corrupt_intent_on_a_full_disk_stays_unknown(disk: Path) -> None:
    """The block marker cannot be written (full): it is kept, and the corrupt intent is left
    in place, so every read, in this process and in another, says unknown; once the disk
    has room the marker is written. Before: the intent was set aside, the marker refused, and
    the second read found no intent at all: `normal`."""
    (disk / "intent.json").write_text('{"state": "shutdown_compl')
    filler = diskfaults.fill(disk.parent)
    store = StateStore(disk)
    for _ in range(2):
        with pytest.raises(IntentCorruptError):
            store.read_intent()
    other = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\nfrom pathlib import Path\n"
            "from hecate.adapters.statedir.store import StateStore\n"
            "from hecate.errors import IntentCorruptError\n"
            "try:\n    print(StateStore(Path(sys.argv[1])).read_intent().state.value)\n"
            "except IntentCorruptError:\n    print('unknown')\n",
            str(disk),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert other.stdout.strip() == "unknown"
    # a reboot before the disk has room: /run and this process's memory are gone, the
    # corrupt intent left in place still says unknown
    shutil.rmtree(unsaved.kept_dir(disk))
    unsaved.reset_for_tests()
    with pytest.raises(IntentCorruptError):
        store.read_intent()
    filler.unlink()  # room again: the kept marker is written (the retry)
    with pytest.raises(IntentCorruptError):
        store.read_intent()
    assert statesave.flush(disk)
    assert (disk / "intent.json.blocked").exists()
    shutil.rmtree(unsaved.kept_dir(disk), ignore_errors=True)
    unsaved.reset_for_tests()
    with pytest.raises(IntentCorruptError):
        StateStore(disk).read_intent()


def test_a_corrupt_kept_intent_reads_as_unknown_never_the_older_disk(disk: Path) -> None:
    """The /run copy of intent.json is damaged: the intent is unknown. Before: the copy was
    dropped and the older file on disk (`normal`) read in its place."""
    diskfaults.remount(disk.parent, "ro")
    StateStore(disk).set_intent(
        IntentState.SHUTTING_DOWN, reason="ups", run_id="r1", keep_if_refused=True
    )
    copy = unsaved.kept_dir(disk) / "intent.json"
    copy.write_text(copy.read_text()[:-20])
    unsaved.reset_for_tests()  # as another process: only the copy under /run is left
    for _ in range(2):
        with pytest.raises(IntentCorruptError):
            StateStore(disk).read_intent()


def test_the_daemon_takes_over_copies_a_process_that_ended_left(disk: Path) -> None:
    """A CLI shutdown kept its records on a full disk and ended; the disk has room again: the
    daemon's start writes them (nobody else would). Before: they stayed under /run forever."""
    filler = diskfaults.fill(disk.parent)
    subprocess.run([sys.executable, "-c", KEEPER, str(disk), "exit"], check=True)
    filler.unlink()
    assert _disk_intent(disk) == "normal"
    assert sorted(statesave.take_over(disk)) == ["intent.json", "runs.json"]
    assert _disk_intent(disk) == "shutdown_complete"
    assert [r.run_id for r in StateStore(disk).load_runs()] == ["r1"]
    assert unsaved.unsaved_files(disk) == []


def test_a_running_daemon_takes_over_what_a_cli_run_left_since(
    disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon runs (it took over at its start); a CLI shutdown then keeps its records on
    a full disk and ends: the daemon's retry writes them once the disk has room."""
    monkeypatch.setattr(statesave, "RETRY_INTERVAL_S", 0.05)
    assert statesave.take_over(disk) == []
    filler = diskfaults.fill(disk.parent)
    subprocess.run([sys.executable, "-c", KEEPER, str(disk), "exit"], check=True)
    filler.unlink()
    statesave.retry_now()
    deadline = time.monotonic() + 10
    while _disk_intent(disk) != "shutdown_complete" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _disk_intent(disk) == "shutdown_complete"
    assert [r.run_id for r in StateStore(disk).load_runs()] == ["r1"]


@pytest.fixture
def daemon_runtime_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A runtime directory owned by the daemon's user (nobody here), as systemd makes it."""
    path = Path(tempfile.mkdtemp(prefix="hecate-run-", dir="/tmp"))
    path.chmod(0o755)  # the daemon user must reach it, as under /run
    os.chown(path, NOBODY, NOBODY)
    monkeypatch.setenv(unsaved.RUNTIME_DIR_ENV, str(path))
    try:
        yield path
    finally:
        subprocess.run(["rm", "-rf", str(path)], check=False)


def _as_daemon_user(*argv: str) -> subprocess.CompletedProcess[str]:
    """A command as the daemon's user (nobody here: the venv is root's, so no Python)."""
    return subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv],
        capture_output=True,
        text=True,
        check=False,
    )


def test_what_a_root_run_leaves_under_run_the_daemon_user_can_use(
    disk: Path, daemon_runtime_dir: Path
) -> None:
    """A root CLI shutdown on a read-only disk: its copies and lock files belong to the
    runtime directory's owner, so the daemon (another user) can take the fallback locks and
    remove the copies. Before: root-only 0600/0700 files locked it out until a reboot."""
    diskfaults.remount(disk.parent, "ro")
    report = run_shutdown(_ctx(_config(disk), FakeAnsible()), ShutdownOptions(reason="ups"))
    assert report.outcome is Outcome.SUCCESS
    made = list(daemon_runtime_dir.rglob("*"))
    locks = [p for p in made if p.name.endswith(".lock")]
    assert {p.name.split("-")[0] for p in locks} == {"flow", "write"}
    assert made and all(p.stat().st_uid == NOBODY for p in made), [
        (p, p.stat().st_uid) for p in made
    ]
    for lock in locks:  # flock(1) opens it as the daemon user and takes it
        taken = _as_daemon_user("flock", "-n", "-x", str(lock), "true")
        assert taken.returncode == 0, (lock, taken.stderr)
    removed = _as_daemon_user("rm", "-r", str(unsaved.kept_dir(disk)))
    assert removed.returncode == 0, removed.stderr


HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(60)
"""


def test_a_shutdown_never_waits_on_a_hung_holder_of_the_write_lock(disk: Path) -> None:
    """Another process holds state_dir/.write.lock and does not let go (stuck in fsync): the
    shutdown runs every stage without waiting, its records are kept, and written once the
    holder is gone. Before: each save waited 10 s for the lock (a shutdown: a minute), the
    stages that save the ledger included."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(disk / ".write.lock")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        report = run_shutdown(_ctx(_config(disk), FakeAnsible()), ShutdownOptions(reason="ups"))
        took = time.monotonic() - started
        assert report.outcome is Outcome.SUCCESS
        assert all(s.duration_s < 1.0 for s in report.stages), report.to_json()
        # the intent and each ledger save wait 0.5 s, the run record (after every stage) 5 s
        assert took < 15.0, took
        assert StateStore(disk).read_intent().state is IntentState.SHUTDOWN_COMPLETE
        assert _disk_intent(disk) == "normal"  # not written under another process's lock
    finally:
        holder.kill()
        holder.communicate()
    assert statesave.flush(disk)
    assert _disk_intent(disk) == "shutdown_complete"
    assert [r["run_id"] for r in json.loads((disk / "runs.json").read_text())["runs"]] == [
        report.run_id
    ]


def test_a_startup_that_finds_the_state_files_locked_says_so(disk: Path) -> None:
    """Contention is not a disk to repair: the startup's intent write reports the lock.
    Before: "make the state directory readable and writable"."""
    from hecate.core.plans import StartupOptions  # noqa: PLC0415
    from hecate.flows.startup import run_startup  # noqa: PLC0415

    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(disk / ".write.lock")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        ctx = dataclasses.replace(
            _ctx(_config(disk), FakeAnsible()),
            read_ups=lambda: UpsReading(parse_status("OL"), 1800, 100),
        )
        with pytest.raises(StateError) as caught:
            run_startup(ctx, StartupOptions())
        assert "locked" in str(caught.value)
        assert "readable and writable" not in str(caught.value)
    finally:
        holder.kill()
        holder.communicate()


def test_an_unreadable_run_history_or_ledger_is_never_written_over(tmp_path: Path) -> None:
    """runs.json and ledger.json cannot be read (a failing disk, not corrupt) nor moved aside:
    the new run and the new ledger are kept apart, held (never written over the files, which
    still say what earlier runs did and what the next startup must undo). Before: a one-run
    history and an empty ledger were kept as ordinary copies, to be written over them as soon
    as the disk took writes again."""
    from hecate.flows.ledger import Ledger, load_ledger_or_new, save_ledger  # noqa: PLC0415

    with diskfaults.failing_ext4(tmp_path / "eio") as (mount, _fail):
        state = mount / "state"
        state.mkdir()
        store = StateStore(state)
        store.record_run(RunRecord("old", "shutdown", 1.0, 2.0, Outcome.SUCCESS, "x"), keep=10)
        save_ledger(state, Ledger(suspended=["Kustomization/flux-system/apps"], run_id="old"))
        diskfaults.shutdown_fs(mount)  # nothing can be read, written or renamed any more
        store.record_run(RunRecord("new", "shutdown", 3.0, 4.0, Outcome.SUCCESS, "y"), keep=10)
        ledger, problem = load_ledger_or_new(state)
        assert "cannot read" in problem
        ledger.add_cordoned("s1")
        save_ledger(state, ledger)
        assert [r.run_id for r in store.load_runs()] == ["new"]  # what is kept, read back
        for name in ("runs.json", "ledger.json"):
            copy = unsaved.kept_dir(state) / name
            header = json.loads(copy.read_text().partition("\n")[0])
            assert header["hold"] is True, name
            assert unsaved.is_held(state / name)
        assert state / "runs.json" not in unsaved.to_flush(state)


def test_the_retry_writes_what_was_kept_once_the_disk_has_room(
    disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(statesave, "RETRY_INTERVAL_S", 0.05)
    filler = diskfaults.fill(disk.parent)
    StateStore(disk).set_intent(
        IntentState.SHUTTING_DOWN, reason="ups", run_id="r1", keep_if_refused=True
    )
    filler.unlink()
    statesave.retry_now()
    deadline = time.monotonic() + 10
    while _disk_intent(disk) != "shutting_down" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _disk_intent(disk) == "shutting_down"
    assert unsaved.unsaved_files(disk) == []


def test_the_peers_a_startup_waits_for_are_kept_when_the_disk_is_full(disk: Path) -> None:
    """startup-awaits.json goes through the same path: kept, read back, counted, written
    once the disk has room. Before: save_awaiting raised (No space left on device)."""
    from hecate.adapters.statedir.awaiting import load_awaiting, save_awaiting  # noqa: PLC0415

    filler = diskfaults.fill(disk.parent)
    save_awaiting(disk, frozenset({"@peer:9100"}))
    assert load_awaiting(disk) == frozenset({"@peer:9100"})
    assert unsaved.write_failure_counts()["startup-awaits.json"] == 1
    assert {f.name for f in unsaved.unsaved_files(disk)} == {"startup-awaits.json"}
    filler.unlink()
    assert statesave.flush(disk)
    assert json.loads((disk / "startup-awaits.json").read_text()) == {"peers": ["@peer:9100"]}
