"""A real `hecate daemon` process, a real upsd and real signals: stopping never waits for a
warm-up, and a background chore that fails never kills its thread (issue 23).

No podman: the nodes are silent SSH listeners on 127.0.0.1 (tests/integration/daemon_process.py).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from hecate.adapters.statedir import unsaved
from hecate.adapters.statedir.store import StateStore
from hecate.core.intent import IntentState
from hecate.core.run_history import Outcome
from tests.integration.daemon_process import (
    KUBECONFIG,
    DaemonProcess,
    SilentSsh,
    daemon_config_data,
    processes_mentioning,
    write_yaml,
)
from tests.testbed.nut import NutServer

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_during_an_on_battery_warmup_exits_within_2s_and_kills_ansible(
    tmp_path: Path, nut_server: NutServer, silent_ssh: SilentSsh, signum: int
) -> None:
    # On battery but far above the threshold: the daemon warms the ssh connections (a node
    # that never answers holds the warm-up for ssh_connect_timeout_seconds) and runs no flow.
    nut_server.set_reading(status="OB DISCHRG", runtime=1500, charge=90)
    data = daemon_config_data(tmp_path, nut_server, {"s1": silent_ssh.port})
    daemon = DaemonProcess(write_yaml(tmp_path / "hecate.yaml", data))
    try:
        daemon.wait_for("ansible: connect")
        time.sleep(1.0)  # ansible-playbook is up and ssh waits for the silent node
        code, took = daemon.stop(signum)
    finally:
        daemon.kill()
    assert code == 0, daemon.text[-2000:]
    assert took < 2.0, f"took {took:.1f}s to exit: {daemon.text[-2000:]}"
    assert "ssh warm-up stopped" in daemon.text
    # Cancelled, not abandoned: no ansible-playbook, detached worker or ssh of it is left
    # running (ansible-runner's kill misses the workers, hecate/adapters/ansible/reap.py kills
    # them). Their end can trail the daemon's by a moment on a loaded machine, so wait a few
    # seconds at most: an abandoned worker would wait out ssh's 10 s connect timeout.
    state = data["state_dir"]
    deadline = time.monotonic() + 4.0
    while processes_mentioning(state, f"Port={silent_ssh.port}") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_mentioning(state, f"Port={silent_ssh.port}") == []
    assert "Traceback" not in daemon.text


def test_a_warmup_that_cannot_write_its_run_dir_is_logged_and_counted_not_a_dead_thread(
    tmp_path: Path, nut_server: NutServer, silent_ssh: SilentSsh
) -> None:
    # The state dir cannot take Ansible's run dir (a file where its directory goes: what a
    # full or read-only disk does to a mkdir, and it works as root too).
    nut_server.set_reading(status="OB DISCHRG", runtime=1500, charge=90)
    data = daemon_config_data(tmp_path, nut_server, {"s1": silent_ssh.port})
    state = Path(data["state_dir"])
    state.mkdir(mode=0o700)
    (state / "ansible-artifacts").write_text("in the way\n")
    # and its fallback under the runtime directory (inherited by the daemon): a broken state
    # disk alone no longer stops a run, it goes there (hecate.adapters.ansible.rundir)
    (unsaved.runtime_dir() / "ansible").write_text("in the way\n")
    daemon = DaemonProcess(write_yaml(tmp_path / "hecate.yaml", data))
    try:
        daemon.wait_for("background chore warmup failed")
        metrics = daemon.metrics()
        code, _ = daemon.stop()
    finally:
        daemon.kill()
    assert code == 0
    assert 'hecate_background_failures_total{chore="warmup"} 1.0' in metrics
    assert "Traceback" not in daemon.text
    assert "Exception in thread" not in daemon.text
    failures = [line for line in daemon.lines if "chore warmup failed" in line]
    assert len(failures) == 1
    assert "level=ERROR" in failures[0]
    assert "ansible-artifacts" in failures[0]  # says what could not be written


def test_sigterm_during_a_shutdown_lets_it_finish_and_records_it(
    tmp_path: Path, nut_server: NutServer
) -> None:
    """README, "The daemon": a running shutdown is allowed to finish (well within the unit's
    TimeoutStopSec), then the daemon exits 0."""
    agent, server = SilentSsh(), SilentSsh()
    data = daemon_config_data(
        tmp_path,
        nut_server,
        {"a1": agent.port, "s1": server.port},
        ssh_connect_timeout_seconds=2,
        ups={"debounce_polls": 2},
    )
    nut_server.set_reading(status="OB DISCHRG LB", runtime=60, charge=10)
    daemon = DaemonProcess(write_yaml(tmp_path / "hecate.yaml", data))
    try:
        daemon.wait_for("stage=stop_agents status=running", timeout=60)
        code, took = daemon.stop(signal.SIGTERM, timeout=120)
    finally:
        daemon.kill()
        agent.close()
        server.close()
    assert code == 0
    # every stage ran; no node was reached, so the run is failed, not partial (issue 25)
    assert "shutdown finished: failed" in daemon.text
    assert took < 900  # hecate_install_daemon_stop_timeout_s, the unit's TimeoutStopSec
    runs = StateStore(Path(data["state_dir"])).load_runs()
    assert [(r.kind, r.outcome) for r in runs] == [("shutdown", Outcome.FAILED)]


def test_sigterm_during_a_startup_cancels_it_at_once(
    tmp_path: Path, nut_server: NutServer, silent_ssh: SilentSsh
) -> None:
    """README, "The daemon": a running startup is cancelled (the next run resumes it)."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    data = daemon_config_data(
        tmp_path,
        nut_server,
        {"s1": silent_ssh.port},
        kubeconfig=str(kubeconfig),
        # power_on gives up on the silent node at once (a none node: its BIOS, not Hecate),
        # so the startup reaches time_sync's playbook, the one this test cancels
        startup={"power_stable_seconds": 0, "power_on_timeout_seconds": 1},
    )
    state = Path(data["state_dir"])
    StateStore(state).reset_intent(IntentState.SHUTDOWN_COMPLETE, reason="test")
    daemon = DaemonProcess(write_yaml(tmp_path / "hecate.yaml", data))
    try:
        daemon.wait_for("stage=time_sync status=running", timeout=60)
        time.sleep(1.0)  # its playbook waits for the silent node
        code, took = daemon.stop(signal.SIGTERM)
    finally:
        daemon.kill()
    assert code == 0
    assert took < 3.0, daemon.text[-2000:]
    runs = StateStore(state).load_runs()
    assert [(r.kind, r.outcome) for r in runs] == [("startup", Outcome.ABORTED)]
    assert StateStore(state).read_intent().state is IntentState.STARTUP_IN_PROGRESS  # resumed
