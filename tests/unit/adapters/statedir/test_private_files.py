"""Owner-only state whatever the umask (hecate/adapters/statedir/private_files.py, used by
statefiles, the trace
recorder and Ansible's run dirs)."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hecate.adapters.ansible.rundir import new_run_dir, prepare_run_dir, write_private_data_dir
from hecate.adapters.statedir.files import exclusive_lock
from hecate.adapters.statedir.private_files import private_dir, private_umask
from hecate.adapters.statedir.save import flow_lock
from hecate.adapters.statedir.store import StateStore
from hecate.core.intent import IntentState
from hecate.core.readings import UpsReading, parse_status
from hecate.core.run_history import Outcome, RunRecord
from hecate.daemon.trace_recorder import TraceRecorder


@pytest.fixture(params=[0o000, 0o022], ids=["umask000", "umask022"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield int(request.param)
    finally:
        os.umask(old)


def loose(root: Path) -> dict[str, str]:
    """Paths under `root` (itself included) that are not 0700 dirs or 0600 files."""
    found = {}
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode != (0o700 if path.is_dir() else 0o600):
            found[str(path.relative_to(root.parent))] = f"{mode:04o}"
    return found


def test_the_state_store_locks_traces_and_run_dirs_are_owner_only(
    tmp_path: Path, umask: int
) -> None:
    state = tmp_path / "new" / "state"  # missing parents too
    store = StateStore(state)
    with exclusive_lock(state, "test"):
        store.set_intent(IntentState.SHUTTING_DOWN, reason="t", run_id="r", now=1.0)
        store.record_run(RunRecord("r", "shutdown", 1.0, 2.0, Outcome.SUCCESS, "t"), keep=5)
    recorder = TraceRecorder(state / "traces")
    recorder.observe(1.0, UpsReading(parse_status("OB"), 100, 50), active=True)
    run_dir = new_run_dir(state / "ansible-artifacts", "connect", datetime.now(UTC))
    write_private_data_dir(
        run_dir,
        inventory_text="all: {}\n",
        envvars={"A": "1"},
        settings={},
        extravars={},
        state_dir=state,
        batch="- hosts: all\n",
    )
    assert loose(tmp_path / "new") == {}
    assert len(list(state.rglob("*"))) > 15  # it looked at the files this test is about


def test_private_dir_leaves_an_existing_directory_alone(tmp_path: Path, umask: int) -> None:
    mine = tmp_path / "operator"
    mine.mkdir()
    mine.chmod(0o750)  # the operator's choice (a group that reads the traces, say)
    private_dir(mine / "a" / "b")
    assert stat.S_IMODE(mine.stat().st_mode) == 0o750
    assert stat.S_IMODE((mine / "a").stat().st_mode) == 0o700


def test_private_umask_is_shared_by_threads_and_restored_by_the_last(umask: int) -> None:
    inside = threading.Event()
    leave = threading.Event()

    def hold() -> None:
        with private_umask():
            inside.set()
            leave.wait(5)

    other = threading.Thread(target=hold)
    other.start()
    assert inside.wait(5)
    with private_umask():
        pass  # this one leaves first: the other still holds it
    current = os.umask(0o077)
    os.umask(current)
    assert current == umask | 0o077
    leave.set()
    other.join(5)
    current = os.umask(umask)
    assert current == umask  # restored to what the first holder found


def test_the_flows_lock_and_run_dirs_are_owner_only_on_a_new_state_dir(
    tmp_path: Path, umask: int, caplog: pytest.LogCaptureFixture
) -> None:
    """What a shutdown takes and writes: flow_lock (not exclusive_lock) and prepare_run_dir.
    Before: hecate.lock 0640 and batch.yml by the umask, and a state dir not there yet was
    "state files cannot be written" with no state lock taken."""
    state = tmp_path / "new" / "state"
    with flow_lock(state, "shutdown", required=True):
        prepare_run_dir(
            state,
            "connect",
            datetime.now(UTC),
            envvars=lambda _run, _state: {"A": "1"},
            inventory_text="all: {}\n",
            settings={},
            extravars={},
            batch="- hosts: all\n",
        )
    assert loose(tmp_path / "new") == {}
    assert {"hecate.lock", "batch.yml"} <= {p.name for p in state.rglob("*")}
    assert [r.getMessage() for r in caplog.records if r.levelno >= 30] == []
