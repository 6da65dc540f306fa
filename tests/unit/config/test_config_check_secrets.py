"""`hecate config check`: a missing ups.password_file is an error (the daemon cannot start)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from hecate.cli.main import app
from tests.config_files import with_files

runner = CliRunner()


def write(tmp_path: Path, password_file: str | None) -> Path:
    path = tmp_path / "hecate.yaml"
    data = with_files({"nodes": {"servers": ["s1"]}, "ups": {"target": "u@h"}}, tmp_path)
    data["ups"]["password_file"] = password_file  # the other files it names are real
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_missing_password_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nut-password"
    config = write(tmp_path, str(missing))
    result = runner.invoke(app, ["config", "check", "--config", str(config)])
    assert result.exit_code == 2
    assert f"ups.password_file: {missing} does not exist" in result.output
    assert "valid (" not in result.output
    result = runner.invoke(app, ["config", "check", "--config", str(config), "--json"])
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    assert report["valid"] is False
    assert str(missing) in report["problems"][0]


def test_an_existing_private_password_file_is_valid(tmp_path: Path) -> None:
    secret = tmp_path / "nut-password"
    secret.write_text("pw\n")
    secret.chmod(0o600)
    result = runner.invoke(app, ["config", "check", "--config", str(write(tmp_path, str(secret)))])
    assert result.exit_code == 0
    assert "valid (" in result.output
    assert "warning" not in result.output


def test_no_password_file_means_anonymous_reads_and_is_valid(tmp_path: Path) -> None:
    result = runner.invoke(app, ["config", "check", "--config", str(write(tmp_path, None))])
    assert result.exit_code == 0


def _with_bmc(tmp_path: Path, password_file: Path) -> Path:
    path = tmp_path / "hecate.yaml"
    data = with_files({"nodes": {"servers": ["s1"]}, "ups": {"target": "u@h"}}, tmp_path)
    data["power"] = {
        "nodes": {
            "s1": {
                "method": "ipmi",
                "address": "127.0.0.1",
                "user": "admin",
                "password_file": str(password_file),
            }
        }
    }
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_missing_bmc_password_file_is_an_error_like_the_nut_password(tmp_path: Path) -> None:
    missing = tmp_path / "bmc-s1"
    config = _with_bmc(tmp_path, missing)
    result = runner.invoke(app, ["config", "check", "--config", str(config)])
    assert result.exit_code == 2
    assert f"power.nodes.s1.password_file: {missing} does not exist" in result.output
    # the daemon watches the UPS without it: only a warning at its start
    start = runner.invoke(app, ["config", "check", "--daemon-start", "--config", str(config)])
    assert start.exit_code == 0


def test_an_empty_or_loose_bmc_password_file_is_reported(tmp_path: Path) -> None:
    secret = tmp_path / "bmc-s1"
    secret.write_text("")
    secret.chmod(0o600)
    empty = runner.invoke(app, ["config", "check", "--config", str(_with_bmc(tmp_path, secret))])
    assert empty.exit_code == 2
    assert f"power.nodes.s1.password_file: {secret} is empty" in empty.output
    secret.write_text("pw\n")
    secret.chmod(0o644)
    loose = runner.invoke(app, ["config", "check", "--config", str(_with_bmc(tmp_path, secret))])
    assert loose.exit_code == 0
    assert "warning: power.nodes.s1.password_file" in loose.output
    assert "mode 0644" in loose.output
