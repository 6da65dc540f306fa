"""The leftovers of a cancelled run are killed, detached workers and their children included
(hecate/adapters/ansible/reap.py), and nothing that does not name the run is touched."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from hecate.adapters.ansible.reap import processes_of_run, reap_run

# A stand-in for ansible-playbook: it forks a worker that leaves the group (setsid, as
# ansible-core's WorkerProcess does) and runs a child of its own (the ssh), then the parent is
# killed as ansible-runner kills it. argv names the run dir, as ansible-playbook's -i does.
WORKER = """
import os, subprocess, sys, time
if os.fork() == 0:
    os.setsid()
    child = subprocess.Popen(["sleep", "60"])
    print(child.pid, flush=True)
    time.sleep(60)
else:
    time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_gone(pids: list[int], bound_s: float = 5.0) -> list[int]:
    deadline = time.monotonic() + bound_s
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [p for p in pids if _alive(p)]


def test_a_detached_worker_and_its_child_are_killed_and_others_are_not(tmp_path: Path) -> None:
    run_dir = tmp_path / "ansible-artifacts" / "20261207T120732Z-connect-2eee1bc5"
    other_dir = tmp_path / "ansible-artifacts" / "20261207T120733Z-connect-ffffffff"
    playbook = subprocess.Popen(
        [sys.executable, "-c", WORKER, "-i", str(run_dir / "inventory")],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    bystander = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", str(other_dir / "inventory")]
    )
    try:
        assert playbook.stdout is not None
        ssh_pid = int(playbook.stdout.readline())
        playbook.kill()  # ansible-runner's killpg reaches the parent only
        playbook.wait(5)
        workers = processes_of_run(run_dir)
        assert len(workers) == 1, "the detached worker outlives its parent's kill"
        assert _alive(ssh_pid)

        assert reap_run(run_dir) == 1
        assert _wait_gone([*workers, ssh_pid]) == []
        assert processes_of_run(run_dir) == []
        assert bystander.poll() is None, "a process of another run is left alone"
    finally:
        bystander.kill()
        bystander.wait(5)
        playbook.kill()
        playbook.wait(5)
        if playbook.stdout is not None:
            playbook.stdout.close()
        reap_run(run_dir)


def test_nothing_to_reap_is_zero(tmp_path: Path) -> None:
    assert reap_run(tmp_path / "no-such-run") == 0
