"""The CLI through typer's runner: exit codes, --json shapes, guards with an injected UPS."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from hecate.adapters.statedir.store import StateStore
from hecate.cli.main import app, run
from hecate.config.model import HecateConfig
from hecate.core.intent import IntentState
from hecate.core.readings import CommError, Poll, UpsReading, parse_status
from hecate.core.run_history import Outcome, RunRecord
from tests.config_files import secret
from tests.fakes import reads_ups

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "configs" / "hecate.example.yaml"
TRACE = ROOT / "hecate" / "data" / "traces" / "clean-outage.jsonl"
runner = CliRunner()


@pytest.fixture
def ups(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Poll]]:
    """The UPS reading the CLI sees; tests set ups[0]."""
    current: list[Poll] = [UpsReading(parse_status("OL"), 1800, 100)]

    def reader(_: HecateConfig) -> Poll:
        return current[0]

    reads_ups(monkeypatch, reader)
    yield current


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["state_dir"] = str(tmp_path / "state")
    data["ups"]["password_file"] = None
    for key, name in (("kubeconfig", "kubeconfig.yaml"), ("ssh_identity_file", "id_ed25519")):
        data[key] = secret(tmp_path / name, "stand-in\n")  # `config check` wants them real
    path = tmp_path / "hecate.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _peer(config_file: Path) -> None:
    data = yaml.safe_load(config_file.read_text())
    data["coordination"].update(role="peer", coordinator_address="127.0.0.1:9561")
    config_file.write_text(yaml.safe_dump(data))


def test_help_documents_exit_codes() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "3 refused by a safety guard" in text
    for command in ("startup", "shutdown", "daemon", "status", "config", "replay"):
        if command == "daemon":
            continue
        assert command in result.output


def test_config_check_ok_and_bad(tmp_path: Path, config_file: Path) -> None:
    ok = runner.invoke(app, ["config", "check", "--config", str(config_file)])
    assert ok.exit_code == 0, ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("ups:\n  debounce_polls: zero\n  colour: red\nmetrics:\n  listen: nope\n")
    result = runner.invoke(app, ["config", "check", "--config", str(bad)])
    assert result.exit_code == 2
    for path in ("ups.debounce_polls", "ups.colour", "metrics.listen"):
        assert path in result.output
    assert "Traceback" not in result.output


def test_config_check_json(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("nodes: {servers: [a], agents: [a]}\n")
    result = runner.invoke(app, ["config", "check", "--config", str(bad), "--json"])
    assert result.exit_code == 2
    assert json.loads(result.output)["valid"] is False


def test_run_edge_maps_errors_to_exit_codes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["status", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "no such config file" in capsys.readouterr().err
    assert run(["no-such-command"]) == 2
    bad_trace = tmp_path / "t.jsonl"
    bad_trace.write_text("garbage\n")
    assert run(["replay", str(bad_trace), "--default-config"]) == 2


def test_replay_json_lines(config_file: Path) -> None:
    result = runner.invoke(app, ["replay", str(TRACE), "--config", str(config_file), "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert {"t", "event", "reason", "threshold_s", "runtime_s"} <= set(lines[0])
    trigger = next(line for line in lines if line["event"] == "trigger_shutdown")
    assert trigger["t"] == 35
    assert trigger["threshold_s"] == pytest.approx(330)


def test_replay_uses_learned_budget(config_file: Path, tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state")
    for n in range(3):
        store.record_run(RunRecord(f"r{n}", "shutdown", 0, 200, Outcome.SUCCESS), keep=10)
    result = runner.invoke(app, ["replay", str(TRACE), "--config", str(config_file), "--json"])
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert lines[0]["threshold_s"] == pytest.approx(220)
    # with a 220 s threshold the outage only turns critical on LB at t=40, then stays latched
    assert not any(line["event"] == "trigger_shutdown" for line in lines)


def test_status_json(config_file: Path, ups: list[Poll]) -> None:
    result = runner.invoke(app, ["status", "--config", str(config_file), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["intent"]["state"] == "normal"
    assert report["budget"] == {
        "estimate_s": 300.0,
        "threshold_s": pytest.approx(330.0),
        "source": "fallback",
        "samples": 0,
        "max_on_battery_s": None,
    }
    assert report["ups"]["readable"] is True
    ups[0] = CommError("connection refused")
    report = json.loads(
        runner.invoke(app, ["status", "--config", str(config_file), "--json"]).output
    )
    assert report["ups"] == {
        "readable": False,
        "error": "connection refused",
        "kind": "unreachable",
    }


def test_status_shows_the_cap_on_time_on_battery(config_file: Path, ups: list[Poll]) -> None:
    # issue 27 item 7: beside the runtime threshold, the other reason to shut down
    data = yaml.safe_load(config_file.read_text())
    data["ups"]["max_on_battery_seconds"] = 120
    config_file.write_text(yaml.safe_dump(data))
    result = runner.invoke(app, ["status", "--config", str(config_file), "--json"])
    assert json.loads(result.output)["budget"]["max_on_battery_s"] == 120
    text = runner.invoke(app, ["status", "--config", str(config_file)]).output
    assert "shutdown when runtime < 330s or after 120s on battery" in text


def test_status_reports_stale_intent(config_file: Path, ups: list[Poll], tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state")
    store.set_intent(IntentState.SHUTTING_DOWN, reason="ups", run_id="r", now=1000.0)
    report = json.loads(
        runner.invoke(app, ["status", "--config", str(config_file), "--json"]).output
    )
    assert report["intent"]["state"] == "shutting_down"
    assert report["intent"]["stale"] is True
    result = runner.invoke(app, ["status", "--config", str(config_file)])
    assert "stale" in result.output


def test_startup_dry_run_prints_plan(config_file: Path, ups: list[Poll]) -> None:
    result = runner.invoke(app, ["startup", "--config", str(config_file), "--no-probe"])
    assert result.exit_code == 0, result.output
    assert "start_servers" in result.output
    assert "dry run" in result.output


@pytest.mark.parametrize(
    ("setup", "guard"),
    [
        ("battery", "battery"),
        ("charge", "charge"),
        ("intent", "intent"),
        ("peer", "peer"),
        ("comm", "ups"),
    ],
)
def test_startup_guards_refuse_with_exit_3(
    config_file: Path, ups: list[Poll], tmp_path: Path, setup: str, guard: str
) -> None:
    if setup == "battery":
        ups[0] = UpsReading(parse_status("OB DISCHRG"), 1200, 90)
    elif setup == "charge":
        ups[0] = UpsReading(parse_status("OL CHRG"), 1200, 20)
    elif setup == "intent":
        StateStore(tmp_path / "state").set_intent(
            IntentState.SHUTTING_DOWN, reason="ups", run_id="r"
        )
    elif setup == "peer":
        _peer(config_file)
    else:
        ups[0] = CommError("connection refused")
    result = runner.invoke(app, ["startup", "--config", str(config_file), "--json"])
    assert result.exit_code == 3, result.output
    refused = json.loads(result.output)["refused"]
    assert [r["guard"] for r in refused] == [guard]


def test_startup_overrides(config_file: Path, ups: list[Poll]) -> None:
    ups[0] = UpsReading(parse_status("OB DISCHRG"), 1200, 90)
    result = runner.invoke(
        app, ["startup", "--config", str(config_file), "--allow-on-battery", "--no-probe"]
    )
    assert result.exit_code == 0, result.output
    _peer(config_file)
    result = runner.invoke(
        app,
        [
            "startup",
            "-c",
            str(config_file),
            "--allow-on-battery",
            "--allow-peer-startup",
            "--no-probe",
        ],
    )
    assert result.exit_code == 0, result.output


def test_shutdown_dry_run_plan_json(config_file: Path) -> None:
    result = runner.invoke(
        app,
        [
            "shutdown",
            "--config",
            str(config_file),
            "--json",
            "--mode",
            "cluster-only",
            "--skip-etcd-snapshot",
            "--reason",
            "maintenance",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    names = [stage["name"] for stage in report["plan"]]
    assert report["execute"] is False
    assert "etcd_snapshot" not in names
    assert "poweroff_agents" not in names
    assert names.index("stop_agents") < names.index("stop_servers")
    full = json.loads(
        runner.invoke(app, ["shutdown", "--config", str(config_file), "--json"]).output
    )
    full_names = [stage["name"] for stage in full["plan"]]
    assert full_names.index("poweroff_agents") < full_names.index("poweroff_servers")
    # the node stages share one ansible-playbook; the API stages run alone
    batch = {stage["name"]: stage["batch"] for stage in full["plan"]}
    assert batch["stop_agents"] == batch["poweroff_servers"] == 0
    assert batch["cordon"] is None


def test_bad_mode_is_usage_error(config_file: Path) -> None:
    assert run(["shutdown", "--config", str(config_file), "--mode", "nuke"]) == 2


def test_inventory_command_prints_groups_and_hosts(config_file: Path) -> None:
    result = runner.invoke(app, ["inventory", "--config", str(config_file), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    cluster = data["all"]["children"]["k3s_cluster"]["children"]
    assert set(cluster["server"]["hosts"]) == {"titan-0"}
    assert set(cluster["agent"]["hosts"]) == {"titan-1", "titan-2"}
    assert "StrictHostKeyChecking=no" not in json.dumps(data)
    text = runner.invoke(app, ["inventory", "--config", str(config_file)]).output
    assert "ansible_host: 192.168.10.11" in text


def test_unknown_drill_is_a_usage_error(config_file: Path) -> None:
    assert run(["drill", "run", "no-such-drill", "--config", str(config_file)]) == 2


def test_startup_refused_when_charge_is_unknown(config_file: Path, ups: list[Poll]) -> None:
    ups[0] = UpsReading(parse_status("OL"), 1200, None)
    result = runner.invoke(app, ["startup", "--config", str(config_file), "--json"])
    assert result.exit_code == 3
    assert [r["guard"] for r in json.loads(result.output)["refused"]] == ["charge"]
