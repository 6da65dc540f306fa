"""Whether a flow runs, seen without taking the flow lock (hecate.adapters.statedir.save.
flow_running): real flocks, the kernel's /proc/locks, and its odd lines."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

from hecate.adapters.statedir.save import flock_holder, flow_lock, flow_running

HOLD = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.read()
"""


def test_another_process_holding_a_flock_is_seen_and_a_dead_one_is_not(tmp_path: Path) -> None:
    lock = tmp_path / "hecate.lock"
    with subprocess.Popen(
        [sys.executable, "-c", HOLD, str(lock)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline() == "held\n"
        assert flock_holder([lock]) == f"pid {holder.pid} holds {lock}"
        # seen without taking it: the holder's lock is untouched, nobody else could take it
        fd = os.open(lock, os.O_RDWR)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                raise AssertionError("the lock was free")
            except BlockingIOError:
                pass
        finally:
            os.close(fd)
        holder.kill()  # a holder that dies: the kernel releases its lock
        holder.wait(10)
    assert flock_holder([lock]) is None


def test_this_process_flow_is_seen_and_its_own_flocks_are_not_another_s(tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert flow_running(state) is None
    with flow_lock(state, "shutdown"):
        assert flow_running(state) == "a flow runs in this process"
    assert flow_running(state) is None


def test_odd_lines_in_proc_locks_are_skipped(tmp_path: Path) -> None:
    lock = tmp_path / "hecate.lock"
    lock.write_text("")
    info = lock.stat()
    dev = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    locks = tmp_path / "locks"
    locks.write_text(
        f"1: POSIX  ADVISORY  WRITE 4242 {dev} 0 EOF\n"  # not a flock
        f"2: -> FLOCK  ADVISORY  WRITE 4243 {dev} 0 EOF\n"  # a waiter
        f"3: FLOCK  ADVISORY  WRITE 4244 zz:yy:{info.st_ino} 0 EOF\n"  # garbled device
        "4: FLOCK\n"  # cut short
        f"5: FLOCK  ADVISORY  WRITE {os.getpid()} {dev} 0 EOF\n"  # this process's own
    )
    assert flock_holder([lock], locks) is None
    with locks.open("a") as f:
        f.write(f"6: FLOCK  ADVISORY  WRITE 4245 {dev} 0 EOF\n")
    assert flock_holder([lock], locks) == f"pid 4245 holds {lock}"
    assert flock_holder([lock], tmp_path / "no-proc") is None  # no /proc: not seen
