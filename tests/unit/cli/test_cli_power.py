"""`hecate power on|off` dry runs: what they promise is what --execute would do."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from hecate.cli.main import app

runner = CliRunner()


def _config(tmp_path: Path) -> str:
    data = {
        "ups": {"target": "ups@127.0.0.1"},
        "state_dir": str(tmp_path / "state"),
        "nodes": {"servers": ["s0"], "agents": ["w1", "n2"]},
        "power": {
            "nodes": {"w1": {"method": "wol", "mac": "02:00:00:00:00:21", "broadcast": "127.0.0.1"}}
        },
    }
    path = tmp_path / "hecate.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_a_dry_run_off_says_a_node_without_a_bmc_cannot_be_powered_off(tmp_path: Path) -> None:
    done = runner.invoke(app, ["power", "off", "w1", "n2", "-c", _config(tmp_path)])
    assert done.exit_code == 1  # as --execute would
    assert "magic packet" not in done.output
    assert "would power off" not in done.output
    assert "error: w1: no BMC: off goes through SSH" in done.output
    assert "error: n2: no BMC: off goes through SSH" in done.output


def test_a_dry_run_on_says_a_none_node_cannot_be_powered_on(tmp_path: Path) -> None:
    config = _config(tmp_path)
    done = runner.invoke(app, ["power", "on", "w1", "n2", "-c", config])
    assert done.exit_code == 1
    assert "would power on w1 (wol magic packet for 02:00:00:00:00:21" in done.output
    assert "would power on n2" not in done.output
    assert "error: n2: method none: Hecate cannot power this node on" in done.output
    as_json = runner.invoke(app, ["power", "on", "w1", "n2", "--json", "-c", config])
    report = json.loads(as_json.stdout)
    assert report["ok"] is False
    assert [step.get("reason") is None for step in report["plan"]] == [True, False]
