"""A run that SIGKILL cut short is recorded as `interrupted` by the next run, whichever kind
it is (README, "Staged shutdown and startup"): real `hecate` processes, real SIGKILL, a real
upsd; the nodes are silent SSH listeners and the API a port nothing listens on (no podman)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hecate.core.progress_names import STAGE_LABELS
from tests.integration.daemon_process import (
    KUBECONFIG,
    SilentSsh,
    daemon_config_data,
    processes_mentioning,
    write_yaml,
)
from tests.testbed.nut import NutServer

pytestmark = pytest.mark.integration


class Flow:
    """`hecate shutdown|startup --execute` with its output collected."""

    def __init__(self, config: Path, kind: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hecate", kind, "--execute", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: list[str] = []
        stdout = self.proc.stdout
        assert stdout is not None
        self._reader = threading.Thread(target=lambda: self.lines.extend(stdout), daemon=True)
        self._reader.start()

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in list(self.lines)):
            assert self.proc.poll() is None, "".join(self.lines)[-3000:]
            assert time.monotonic() < deadline, f"no {text!r} in {''.join(self.lines)[-3000:]}"
            time.sleep(0.05)

    def sigkill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.finish(10)

    def finish(self, timeout: float = 120) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return code


@pytest.fixture
def setup(tmp_path: Path, nut_server: NutServer) -> Iterator[tuple[Path, dict[str, Any]]]:
    agent, server = SilentSsh(), SilentSsh()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    data = daemon_config_data(
        tmp_path,
        nut_server,
        {"a1": agent.port, "s1": server.port},
        kubeconfig=str(kubeconfig),
        ssh_connect_timeout_seconds=2,
        # power_on gives up on the silent nodes at once (method none: their BIOS, not Hecate)
        startup={
            "api_timeout_seconds": 5,
            "power_stable_seconds": 0,
            "power_on_timeout_seconds": 1,
        },
        coordination={"startup_guard_max_age_seconds": 1},
    )
    try:
        yield write_yaml(tmp_path / "hecate.yaml", data), data
    finally:
        agent.close()
        server.close()
        for leftover in processes_mentioning(data["state_dir"]):  # the killed runs' children
            os.kill(int(leftover.split(":")[0]), signal.SIGKILL)


def runs(state: Path) -> list[tuple[str, str, str]]:
    try:
        data = json.loads((state / "runs.json").read_text())
    except FileNotFoundError:
        return []
    return [(r["kind"], r["run_id"], r["outcome"]) for r in data["runs"]]


def intent(state: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((state / "intent.json").read_text())
    return data


def test_a_shutdown_cut_short_by_sigkill_is_recorded_by_the_next_startup(
    setup: tuple[Path, dict[str, Any]],
) -> None:
    config, data = setup
    state = Path(data["state_dir"])
    shutdown = Flow(config, "shutdown")
    shutdown.wait_for(f"{STAGE_LABELS['stop_agents']:<22} running")  # the progress line
    shutdown.sigkill()
    killed = intent(state)
    assert killed["state"] == "shutting_down"
    assert runs(state) == []
    time.sleep(1.5)  # the intent guard lets a startup through once the intent is stale
    startup = Flow(config, "startup")
    try:
        deadline = time.monotonic() + 30
        while ("shutdown", killed["run_id"], "interrupted") not in runs(state):
            assert startup.proc.poll() is None or runs(state), "".join(startup.lines)[-3000:]
            assert time.monotonic() < deadline, (runs(state), "".join(startup.lines)[-3000:])
            time.sleep(0.1)
    finally:
        startup.sigkill()


def test_a_startup_cut_short_by_sigkill_is_recorded_by_the_next_shutdown(
    setup: tuple[Path, dict[str, Any]],
) -> None:
    config, data = setup
    state = Path(data["state_dir"])
    startup = Flow(config, "startup")
    startup.wait_for(f"{STAGE_LABELS['time_sync']:<22} running")
    startup.sigkill()
    killed = intent(state)
    assert killed["state"] == "startup_in_progress"
    shutdown = Flow(config, "shutdown")
    shutdown.finish()
    recorded = runs(state)
    assert recorded[0] == ("startup", killed["run_id"], "interrupted"), recorded
    # the silent nodes were never reached: the shutdown is failed and the intent says the
    # cluster was not stopped (issue 25's honest outcome), not shutdown_complete
    assert [(kind, outcome) for kind, _, outcome in recorded[1:]] == [("shutdown", "failed")]
    assert intent(state)["state"] == "shutting_down"
