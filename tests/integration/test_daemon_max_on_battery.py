"""`ups.max_on_battery_seconds` in the daemon (issue 27 item 7): a real `hecate daemon` process
against a real upsd shuts down a few seconds into an outage while the UPS still claims 1500 s,
and a flicker back to mains (shorter than `ups.outage_clear_seconds`) does not restart the count.

No podman: the node's SSH port has no listener, so the shutdown that follows fails fast (partial)
and the daemon stops cleanly after it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hecate.adapters.statedir.store import StateStore
from hecate.core.run_history import Outcome
from tests.integration.daemon_process import DaemonProcess, daemon_config_data, write_yaml
from tests.testbed.nut import NutServer, free_port

pytestmark = pytest.mark.integration

CAP_S = 5.0  # polls every second: a handful of polls on battery
EVENT = re.compile(r"event=(\w+) t=([-\d.]+) reason=(.*)$")


def _event(line: str) -> tuple[str, float, str]:
    match = EVENT.search(line.rstrip())
    assert match is not None, line
    return match.group(1), float(match.group(2)), match.group(3)


def test_the_cap_shuts_down_with_runtime_to_spare_and_a_flicker_does_not_restart_it(
    tmp_path: Path, nut_server: NutServer
) -> None:
    data = daemon_config_data(
        tmp_path,
        nut_server,
        {"s1": free_port()},  # nothing listens: every SSH connection is refused at once
        ssh_connect_timeout_seconds=2,
        ups={"max_on_battery_seconds": CAP_S, "outage_clear_seconds": 30},
    )
    daemon = DaemonProcess(write_yaml(tmp_path / "hecate.yaml", data))
    try:
        daemon.wait_for("metrics on")
        nut_server.set_reading(status="OB DISCHRG", runtime=1500, charge=90)
        _, first, _ = _event(daemon.wait_for("event=on_battery"))
        nut_server.set_reading(status="OL", runtime=1500, charge=90)  # the flicker
        daemon.wait_for("event=power_restored")
        nut_server.set_reading(status="OB DISCHRG", runtime=1500, charge=89)
        _, again, why_again = _event(daemon.wait_for("reason=mains lost again"))
        _, fired, reason = _event(daemon.wait_for("event=trigger_shutdown", timeout=30))
        daemon.wait_for("shutdown finished", timeout=120)
        code, _ = daemon.stop()
    finally:
        daemon.kill()
    assert code == 0, daemon.text[-3000:]
    assert "same outage episode" in why_again
    # counted from the episode's first poll on battery, not from the one after the flicker
    assert CAP_S <= fired - first < CAP_S + 2.5, daemon.text[-3000:]
    assert fired - again < CAP_S
    assert "(ups.max_on_battery_seconds 5)" in reason
    assert "whatever the runtime estimate says (1500s)" in reason  # far above 330 s
    assert "Traceback" not in daemon.text
    runs = StateStore(Path(data["state_dir"])).load_runs()
    assert [r.kind for r in runs] == ["shutdown"]
    assert runs[0].outcome is not Outcome.SUCCESS  # nodes unreachable: partial or failed
    assert "ups.max_on_battery_seconds" in runs[0].reason
