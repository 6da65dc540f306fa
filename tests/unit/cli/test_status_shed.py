"""`hecate status` shows what load shedding has shed (issue 28, item 5), from the state dir's
record only; a corrupt record is shown as such and never moved by status."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from hecate.adapters.statedir.shed_file import SHED_FILE, save_shed
from hecate.cli.main import app
from hecate.core.shed import ShedRecord, ShedWorkload

runner = CliRunner()


def _config(tmp_path: Path, shed: bool = True) -> Path:
    data: dict[str, Any] = {
        "ups": {"target": "ups@127.0.0.1:1"},
        "state_dir": str(tmp_path / "state"),
        "nodes": {"servers": ["s1"], "agents": ["a1", "a2"]},
    }
    if shed:
        data["power"] = {"shed": {"label_selector": "hecate.dev/shed=true", "agents": ["a2"]}}
    path = tmp_path / "hecate.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _status(path: Path, *extra: str) -> str:
    return runner.invoke(app, ["status", "--config", str(path), *extra]).output


def test_status_shows_what_is_shed(tmp_path: Path) -> None:
    path = _config(tmp_path)
    assert json.loads(_status(path, "--json"))["shed"] == {"state": "none"}
    assert "shed:    nothing shed" in _status(path)
    save_shed(
        tmp_path / "state",
        ShedRecord(
            1.0,
            "runtime 500s < power.shed.below_runtime_seconds 600",
            (ShedWorkload("deployment", "apps", "web", 3),),
            ("Kustomization/flux-system/apps",),
            ("apps/web -> deployment/apps/web",),
            ("a2",),
            ("a2",),
            complete=True,
        ),
    )
    shed = json.loads(_status(path, "--json"))["shed"]
    assert shed["state"] == "shed"
    assert shed["workloads"] == [
        {"kind": "deployment", "namespace": "apps", "name": "web", "replicas": 3}
    ]
    assert shed["flux_suspended"] == ["Kustomization/flux-system/apps"]
    assert shed["agents"] == ["a2"] and shed["reason"].startswith("runtime 500s")
    text = _status(path)
    assert "deployment/apps/web at 0 (was 3)" in text
    assert "Flux suspended by Hecate: Kustomization/flux-system/apps" in text
    assert "HPAs (left alone, idle at 0): apps/web -> deployment/apps/web" in text
    assert "agents powered off: a2" in text


def test_status_reports_a_corrupt_record_and_moves_nothing(tmp_path: Path) -> None:
    path = _config(tmp_path, shed=False)  # a record outlives its config: still shown
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / SHED_FILE).write_text("{half")
    shed = json.loads(_status(path, "--json"))["shed"]
    assert shed["state"] == "unreadable" and "not JSON" in shed["problem"]
    assert "RECORD UNREADABLE" in _status(path)
    assert (tmp_path / "state" / SHED_FILE).read_text() == "{half"  # never moved by status
    assert not list((tmp_path / "state").glob("*.corrupt-*"))


def test_without_shedding_status_says_nothing_of_it(tmp_path: Path) -> None:
    path = _config(tmp_path, shed=False)
    assert json.loads(_status(path, "--json"))["shed"] is None
    assert "shed:" not in _status(path)


def test_a_record_the_disk_cannot_read_is_told_as_such(tmp_path: Path) -> None:
    """Review 4: a record that cannot be read at all (a failing disk; here a symlink loop,
    ELOOP) was told as a corrupt one: "restore by hand from shed.json", a file nobody can
    read. It is the disk to look at, the daemon reads it again by itself, and shutdowns are
    not affected."""
    path = _config(tmp_path)
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / SHED_FILE).symlink_to(SHED_FILE)
    shed = json.loads(_status(path, "--json"))["shed"]
    assert shed["state"] == "unreadable" and shed["kept"] == ""
    text = _status(path)
    assert "RECORD CANNOT BE READ" in text and "state disk" in text
    assert "restore by hand" not in text and "shutdowns are not affected" in text
