"""Notifications against real receivers on 127.0.0.1 (issue 27): `hecate notify test` to
json://, ntfy:// and mailto:// (aiosmtpd), and a real daemon against a real upsd: on battery
gives a message within 10 s; a receiver down through the outage gets every message in order
once it is up, across a daemon restart, none lost and none sent twice.

No podman: the nodes are silent SSH listeners (tests/integration/daemon_process.py)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.integration.daemon_process import (
    DaemonProcess,
    SilentSsh,
    daemon_config_data,
    write_yaml,
)
from tests.testbed.nut import NutServer, free_port
from tests.testbed.receivers import HttpReceiver, SmtpReceiver

pytestmark = pytest.mark.integration


@pytest.fixture
def http() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver()
    try:
        yield receiver
    finally:
        receiver.stop()


def _notify_test(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hecate", "notify", "test", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_notify_test_reaches_json_ntfy_and_mail_and_names_the_target_that_failed(
    tmp_path: Path, nut_server: NutServer, silent_ssh: SilentSsh, http: HttpReceiver
) -> None:
    http.start()
    smtp = SmtpReceiver().start()
    dead = free_port()
    urls = tmp_path / "notify-urls"
    secret = "s3cr3t-t0ken-do-not-print"  # noqa: S105 - a stand-in token
    urls.write_text(
        f"mail mailto://127.0.0.1:{smtp.port}?from=hecate@example.org&to=ops@example.org"
        "&mode=insecure\n"
        f"gone json://127.0.0.1:{dead}/{secret} events=on_battery\n"
    )
    urls.chmod(0o600)
    targets = [
        {"name": "hook", "url": f"json://127.0.0.1:{http.port}/hecate"},
        {"name": "phone", "url": f"ntfy://127.0.0.1:{http.port}/hecate-alerts"},
    ]
    notify = {"targets": targets, "urls_file": str(urls)}
    data = daemon_config_data(tmp_path, nut_server, {"s1": silent_ssh.port}, notify=notify)
    config = write_yaml(tmp_path / "hecate.yaml", data)
    try:
        done = _notify_test(config, "--event", "on_battery", "--json")
    finally:
        smtp.stop()
    assert done.returncode == 1, done.stderr
    rows = {row["target"]: row for row in json.loads(done.stdout)}
    assert {name: row["ok"] for name, row in rows.items()} == {
        "hook": True,
        "phone": True,
        "mail": True,
        "gone": False,
    }
    assert "127.0.0.1" in rows["gone"]["why"]
    assert secret not in done.stdout + done.stderr
    got = {a.path: a for a in http.wait_for(2)}
    hook = got["/hecate"].json()
    assert hook["type"] == "warning"  # on_battery's severity
    assert "on battery" in hook["title"]
    assert nut_server.target() in hook["message"]
    phone = got["/"].json()  # Apprise posts ntfy to the server's root with the topic inside
    assert phone["topic"] == "hecate-alerts"
    assert "TEST of the on_battery message" in phone["message"]
    assert len(smtp.messages) == 1
    assert "on battery" in smtp.messages[0]["Subject"]


def _config(tmp: Path, nut: NutServer, ssh: SilentSsh, url: str, **extra: Any) -> Path:
    notify = {"targets": [{"name": "hook", "url": url}], "retry_max_seconds": 1}
    data = daemon_config_data(
        tmp, nut, {"s1": ssh.port}, notify=notify, ups={"outage_clear_seconds": 2}, **extra
    )
    return write_yaml(tmp / "hecate.yaml", data)


def test_a_daemon_on_battery_tells_within_10s(
    tmp_path: Path, nut_server: NutServer, silent_ssh: SilentSsh, http: HttpReceiver
) -> None:
    http.start()
    config = _config(tmp_path, nut_server, silent_ssh, f"json://127.0.0.1:{http.port}/h")
    daemon = DaemonProcess(config)
    try:
        daemon.wait_for("metrics on")
        time.sleep(1.5)  # a poll or two on mains: nothing to tell
        assert http.arrivals == []
        nut_server.set_reading(status="OB DISCHRG", runtime=1500, charge=90)
        went = time.monotonic()
        arrived = http.wait_for(1, timeout=10)
        assert time.monotonic() - went < 10
        message = arrived[0].json()
        assert "on battery" in message["title"]
        assert "runtime 25 min" in message["message"]
        assert "hecate_notifications_total" in daemon.metrics()
    finally:
        daemon.kill()


def test_a_receiver_down_through_the_outage_gets_every_message_in_order_across_a_restart(
    tmp_path: Path, nut_server: NutServer, silent_ssh: SilentSsh, http: HttpReceiver
) -> None:
    config = _config(tmp_path, nut_server, silent_ssh, f"json://127.0.0.1:{http.port}/h")
    spool = tmp_path / "state" / "notify-spool"
    began = time.time()
    daemon = DaemonProcess(config)
    try:
        daemon.wait_for("metrics on")
        nut_server.set_reading(status="OB DISCHRG", runtime=1500, charge=90)
        daemon.wait_for("notification to hook failed")
        code, _ = daemon.stop()
        assert code == 0
    finally:
        daemon.kill()
    assert len(list(spool.glob("*.json"))) == 1  # on_battery, kept across the restart
    # restarted during the outage: it must not announce it again
    again = DaemonProcess(config)
    try:
        again.wait_for("metrics on")
        time.sleep(2.0)  # polls on battery
        nut_server.set_reading(status="OL CHRG", runtime=1500, charge=90)
        deadline = time.monotonic() + 15
        while len(list(spool.glob("*.json"))) < 2:  # power_restored joins it
            assert time.monotonic() < deadline, again.text[-2000:]
            time.sleep(0.1)
        up_at = time.time()
        http.start()
        arrived = http.wait_for(2, timeout=15)
        time.sleep(2.5)  # a second send, or a second on_battery, would arrive by now
        metrics = again.metrics()
    finally:
        again.kill()
    titles = [a.json()["title"].rpartition(": ")[2] for a in http.arrivals]
    assert titles == ["on battery", "power restored"]
    for arrival in arrived:  # the original time, kept through the spool, not the delivery's
        match = re.search(r"\(at (\S+ \S+) UTC\)", arrival.json()["message"])
        assert match is not None
        made = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()
        assert began - 1 <= made <= up_at
    assert list(spool.glob("*.json")) == []
    assert 'hecate_notifications_total{result="sent",target="hook"} 2.0' in metrics
    assert "hecate_notify_spool_messages 0.0" in metrics
