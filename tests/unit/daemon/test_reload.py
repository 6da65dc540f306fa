"""SIGHUP: a valid config is taken live, an invalid one refused with a log line (old one kept);
what only a restart can change is refused as a whole. Also end to end on a `hecate daemon`."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from hecate.config.model import load_config, parse_config
from hecate.core.readings import CommError
from hecate.daemon.reload import RESTART_FIELDS, restart_needed
from tests.unit.daemon.test_daemon import World

BASE: dict[str, Any] = {
    "nodes": {"servers": ["s1"], "agents": ["a1"]},
    "ups": {"target": "pyrphoros@localhost", "debounce_polls": 2, "poll_interval_seconds": 1},
    "startup": {
        "power_stable_seconds": 10,
        "min_battery_charge": 50,
        "flux_ready_timeout_seconds": 1,
        "nodes_ready_timeout_seconds": 1,
    },
}


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def base(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {**BASE, "state_dir": str(tmp_path / "state")}
    for key, value in changes.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return data


def test_a_valid_config_is_taken_and_the_policy_uses_it(tmp_path: Path) -> None:
    w = World(tmp_path)
    path = write(tmp_path / "new.yaml", base(tmp_path, ups={"debounce_polls": 5}))
    w.daemon.request_reload(lambda: load_config(path))
    assert w.daemon.reload()
    assert w.daemon.config.ups.debounce_polls == 5
    assert w.daemon.params.debounce_polls == 5


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("ups: [unclosed\n", "not YAML"),
        ("ups:\n  debounce_polls: -1\n", "a value out of range"),
        ("ups:\n  debouce_polls: 3\n", "a misspelt key (extra=forbid)"),
        ("", "empty: no nodes"),
    ],
)
def test_an_invalid_config_is_refused_and_the_running_one_kept(
    tmp_path: Path, text: str, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    w = World(tmp_path)
    before = w.daemon.config
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    w.daemon.request_reload(lambda: load_config(path))
    with caplog.at_level(logging.ERROR, logger="hecate.daemon"):
        assert not w.daemon.reload(), why
    assert w.daemon.config is before
    assert any("reload refused" in r.getMessage() for r in caplog.records)


def test_what_only_a_restart_can_change_is_refused_by_name(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    w = World(tmp_path)
    before = w.daemon.config
    path = write(
        tmp_path / "new.yaml",
        base(tmp_path, ups={"debounce_polls": 5}, metrics={"listen": "127.0.0.1:9999"}),
    )
    w.daemon.request_reload(lambda: load_config(path))
    with caplog.at_level(logging.ERROR, logger="hecate.daemon"):
        assert not w.daemon.reload()
    assert w.daemon.config is before  # not half applied: debounce is unchanged too
    assert "metrics.listen" in caplog.text


def test_restart_fields_exist_in_the_config(tmp_path: Path) -> None:
    config = parse_config(base(tmp_path))
    for dotted in RESTART_FIELDS:
        value: Any = config
        for part in dotted.split("."):
            assert hasattr(value, part), dotted
            value = getattr(value, part)
    assert restart_needed(config, config) == []


def test_sighup_reloads_a_running_daemon_and_sigterm_stops_it(tmp_path: Path) -> None:
    data = base(
        tmp_path,
        ups={"target": "pyrphoros@127.0.0.1:9", "timeout_seconds": 1},  # nothing listens there
        metrics={"listen": "127.0.0.1:0"},
    )
    config = write(tmp_path / "hecate.yaml", data)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hecate", "daemon", "--config", str(config)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: list[str] = []
    assert proc.stderr is not None
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr or []), daemon=True)
    reader.start()

    def wait_for(text: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in list(lines)):
            assert proc.poll() is None, f"the daemon died: {''.join(lines)[-2000:]}"
            assert time.monotonic() < deadline, f"no {text!r} in {''.join(lines)[-2000:]}"
            time.sleep(0.1)

    try:
        wait_for("metrics on")
        config.write_text("ups: [unclosed\n")
        proc.send_signal(signal.SIGHUP)
        wait_for("reload refused")
        assert proc.poll() is None  # SIGHUP used to kill it
        write(config, base(tmp_path, **{**data, "ups": {**data["ups"], "debounce_polls": 4}}))
        proc.send_signal(signal.SIGHUP)
        wait_for("configuration reloaded")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        reader.join(10)
        proc.stderr.close()
    assert not any("Traceback" in line for line in lines)


def test_a_daemon_on_its_own_ports_gets_new_ones_for_a_new_config(tmp_path: Path) -> None:
    """Built without a context factory, the daemon owns its Ansible port: a reload makes a new
    one for the new inventory (the old one kept for a running flow, closed at the end)."""
    from hecate.daemon.service import Daemon  # noqa: PLC0415

    config = parse_config(base(tmp_path))
    daemon = Daemon(config, reader=lambda: CommError("no UPS here"))
    try:
        first, factory = daemon.warmer, daemon.context_factory
        path = write(tmp_path / "new.yaml", base(tmp_path, nodes={"agents": ["a1", "a2"]}))
        daemon.request_reload(lambda: load_config(path))
        assert daemon.reload()
        assert daemon.warmer is not None and daemon.warmer is not first
        assert daemon.context_factory is not factory
    finally:
        daemon.close()
