"""`hecate notify test` and doctor's notification checks against real receivers on 127.0.0.1
(issue 27 item 5); `config check` parses the URLs file (item 1)."""

from __future__ import annotations

import json
import smtplib
from pathlib import Path

import yaml
from typer.testing import CliRunner

from hecate.cli.cmd_doctor_notify import notify_checks
from hecate.cli.main import app
from hecate.config.model import parse_config
from tests.testbed.nut import free_port
from tests.testbed.receivers import HttpReceiver, SmtpReceiver

runner = CliRunner()
SECRET = "tok-7c1d0e9f55aa"  # noqa: S105 - a stand-in token


def _write(tmp_path: Path, notify: dict[str, object]) -> Path:
    data = {
        "state_dir": str(tmp_path / "state"),
        "nodes": {"servers": ["s1"]},
        "kubeconfig": str(tmp_path / "kubeconfig"),
        "ups": {"target": "ups@localhost"},
        "notify": notify,
    }
    path = tmp_path / "hecate.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_notify_test_sends_and_exits_1_naming_the_failed_target(tmp_path: Path) -> None:
    receiver = HttpReceiver().start()
    dead = free_port()
    targets = [
        {"name": "up", "url": f"json://127.0.0.1:{receiver.port}/x"},
        {"name": "down", "url": f"json://127.0.0.1:{dead}/{SECRET}"},
    ]
    try:
        result = runner.invoke(
            app, ["notify", "test", "--config", str(_write(tmp_path, {"targets": targets}))]
        )
        assert receiver.wait_for(1)[0].json()["title"].endswith(": test")
    finally:
        receiver.stop()
    assert result.exit_code == 1, result.output
    assert "up: sent" in result.output
    assert "down: FAILED: A Connection error occurred" in result.output
    assert SECRET not in result.output


def test_notify_test_refuses_an_unknown_event_and_no_targets(tmp_path: Path) -> None:
    config = str(_write(tmp_path, {}))
    unknown = runner.invoke(app, ["notify", "test", "--config", config, "--event", "nope"])
    assert unknown.exit_code == 2
    none = runner.invoke(app, ["notify", "test", "--config", config, "--json"])
    assert none.exit_code == 2
    assert "no notification targets" in none.output


def test_config_check_reports_a_bad_urls_file_line_without_its_url(tmp_path: Path) -> None:
    urls = tmp_path / "urls"
    urls.write_text(f"ok json://127.0.0.1/a\nbad nosuch://{SECRET}@host/\n")
    urls.chmod(0o600)
    (tmp_path / "kubeconfig").write_text("x")
    config = _write(tmp_path, {"urls_file": str(urls)})
    result = runner.invoke(app, ["config", "check", "--config", str(config), "--json"])
    assert result.exit_code == 2
    assert f"notify.urls_file: {urls} line 2: target 'bad': unknown scheme 'nosuch'" in (
        result.output
    )
    assert SECRET not in result.output


def test_doctor_checks_each_target_without_sending(tmp_path: Path) -> None:
    receiver = HttpReceiver().start()
    smtp = SmtpReceiver().start()
    dead = free_port()
    targets = [
        {"name": "hook", "url": f"json://127.0.0.1:{receiver.port}/x"},
        {"name": "mail", "url": f"mailto://127.0.0.1:{smtp.port}?to=a@example.org"},
        {"name": "gone", "url": f"ntfy://127.0.0.1:{dead}/topic"},
        {"name": "chat", "url": "tgram://123456:abcdef/987654"},
    ]
    cfg = parse_config({"ups": {"target": "u@localhost"}, "notify": {"targets": targets}})
    try:
        found = {f.check: f for f in notify_checks(cfg)}
    finally:
        receiver.stop()
        smtp.stop()
    assert {k: f.status for k, f in found.items()} == {
        "notify.hook": "ok",
        "notify.mail": "ok",
        "notify.gone": "warn",
        "notify.chat": "ok",
    }
    assert "does not answer" in found["notify.gone"].detail
    assert receiver.arrivals == [] and smtp.messages == []  # nothing sent
    assert json.dumps([f.to_json() for f in found.values()]).count("abcdef") == 0


def test_smtp_noop_is_what_doctor_speaks() -> None:
    smtp = SmtpReceiver().start()
    try:
        with smtplib.SMTP("127.0.0.1", smtp.port, timeout=3) as client:
            assert client.noop()[0] == 250
    finally:
        smtp.stop()
