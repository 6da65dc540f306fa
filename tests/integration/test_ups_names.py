"""A wrong UPS name against a real upsd: every error names the UPSes upsd serves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from hecate.adapters.nut.client import NutClient, UpsUnknownError
from hecate.cli.main import run
from hecate.config.addresses import UpsTarget
from tests.testbed.pytest_nut import NutServerFactory

pytestmark = pytest.mark.integration


def test_a_wrong_name_lists_the_served_ones(
    nut_server_factory: NutServerFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nut = nut_server_factory(["eaton", "pyrphoros"])
    target = f"pyrphros@{nut.host}:{nut.port}"
    client = NutClient(UpsTarget.parse(target), nut.user, nut.password, timeout_s=3.0)
    with pytest.raises(UpsUnknownError, match="it serves: eaton, pyrphoros"):
        client.read()
    assert sorted(client.ups_names()) == ["eaton", "pyrphoros"]

    config = tmp_path / "hecate.yaml"
    data = {
        "state_dir": str(tmp_path / "state"),
        "nodes": {"servers": ["s1"]},
        "ups": {"target": target, "user": nut.user, "password_file": str(nut.password_file)},
    }
    config.write_text(yaml.safe_dump(data))
    capsys.readouterr()
    run(["status", "--config", str(config), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["ups"]["readable"] is False
    assert "it serves: eaton, pyrphoros" in report["ups"]["error"]
    assert any("not protected" in p for p in report["problems"])
