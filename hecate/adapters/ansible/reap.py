"""Kill what a cancelled or timed-out ansible-playbook leaves behind.

ansible-runner ends a cancelled or timed-out run by SIGKILL to the process group of the
``ansible-playbook`` it spawned. ansible-core's workers leave that group (``WorkerProcess._detach``
calls ``setsid()``), so each worker and the ssh it runs outlive the kill: a worker waiting on a
node that never answers lives until ssh's connect timeout, one running a drain for minutes. The
workers are forks of ``ansible-playbook`` and keep its command line, which names the run's
private data dir; that is how they are found here, and each is killed with its own group (its
ssh). Linux only (``/proc``), as Hecate is.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

log = logging.getLogger(__name__)

PROC = Path("/proc")


def processes_of_run(run_dir: Path, proc: Path = PROC) -> list[int]:
    """Pids of the live processes whose command line names `run_dir` (never this process)."""
    needle = str(run_dir).encode()
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if needle in cmdline:
            found.append(int(entry.name))
    return found


def reap_run(run_dir: Path, proc: Path = PROC) -> int:
    """SIGKILL every process left by the run in `run_dir`, with its process group when it leads
    one (a detached worker and its ssh) and that group is not this process's; returns how many
    processes were found."""
    own_group = os.getpgid(0)
    pids = processes_of_run(run_dir, proc)
    for pid in pids:
        try:
            group = os.getpgid(pid)
            if group == pid and group != own_group:
                os.killpg(group, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):  # ended meanwhile
            continue
    if pids:
        log.info("ansible: killed %d leftover process(es) of %s", len(pids), run_dir.name)
    return len(pids)


__all__ = ["processes_of_run", "reap_run"]
