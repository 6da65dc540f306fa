"""Issue 28's Done-when, exactly: `hecate shutdown --feed B` (dry run) on servers s1, s2 on feed
A, s3 on B, agents a1 (A), a2 (B), a3 (A and B) plans to stop s3 and a2 only; with s2 on B it
refuses (etcd would lose quorum), says so and plans the whole cluster; `--json` says the same."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from hecate.cli.main import app, run

runner = CliRunner()
SERVERS, AGENTS = ["s1", "s2", "s3"], ["a1", "a2", "a3"]
EVERY = SERVERS + AGENTS


def _config(tmp_path: Path, s2_feed: str) -> Path:
    data: dict[str, Any] = {
        "ups": {"target": "ups@127.0.0.1:1"},
        "state_dir": str(tmp_path / "state"),
        "nodes": {"servers": SERVERS, "agents": AGENTS},
        "ssh_node_hosts": dict.fromkeys(EVERY, "127.0.0.1"),
        "power": {
            "feeds": {"A": {"instance": "alpha"}, "B": {"instance": "beta"}},
            "node_feeds": {
                "s1": ["A"],
                "s2": [s2_feed],
                "s3": ["B"],
                "a1": ["A"],
                "a2": ["B"],
                "a3": ["A", "B"],
            },
        },
    }
    path = tmp_path / "hecate.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _shutdown(path: Path, *extra: str) -> tuple[int, str]:
    result = runner.invoke(
        app, ["shutdown", "--config", str(path), "--feed", "B", "--no-probe", *extra]
    )
    return result.exit_code, result.output


def _stage_nodes(plan: list[dict[str, Any]]) -> dict[str, list[str]]:
    return {step["name"]: step["nodes"] for step in plan if step["skip"] is None}


def test_feed_b_stops_s3_and_a2_only(tmp_path: Path) -> None:
    code, out = _shutdown(_config(tmp_path, "A"))
    assert code == 0, out
    assert "partial shutdown: stops s3, a2 only" in out
    assert "refused" not in out
    assert "[s3, a2]" in out  # cordon
    assert "  [a2]" in out and "  [s3]" in out
    for node in ("s1", "s2", "a1", "a3"):
        assert f"{node}," not in out.split("shutdown plan")[1] and f"[{node}]" not in out


def test_feed_b_json_carries_the_partial_plan(tmp_path: Path) -> None:
    code, out = _shutdown(_config(tmp_path, "A"), "--json")
    assert code == 0, out
    data = json.loads(out)
    assert data["feeds"]["scope"] == "partial"
    assert data["feeds"]["nodes"] == ["s3", "a2"]
    assert data["feeds"]["refused"] == []
    stages = _stage_nodes(data["plan"])
    assert stages["cordon"] == ["s3", "a2"]
    assert stages["stop_agents"] == ["a2"] and stages["stop_servers"] == ["s3"]
    assert stages["poweroff_agents"] == ["a2"] and stages["poweroff_servers"] == ["s3"]
    assert "flux_suspend" not in stages  # the cluster keeps running
    touched = {node for nodes in stages.values() for node in nodes}
    assert touched == {"s3", "a2"}


def test_s2_on_b_refuses_for_quorum_and_plans_the_whole_cluster(tmp_path: Path) -> None:
    code, out = _shutdown(_config(tmp_path, "B"))
    assert code == 0, out
    assert (
        "refused partial shutdown (quorum_safe): etcd would lose quorum: 1 of 3 servers keep "
        "power (s1), 2 needed"
    ) in out
    assert "whole-cluster shutdown instead" in out
    assert "cordon every node  [s1, s2, s3, a1, a2, a3]" in out
    assert "stop k3s on servers  [s1, s2, s3]" in out


def test_s2_on_b_json_carries_the_refusal_and_the_whole_cluster_plan(tmp_path: Path) -> None:
    code, out = _shutdown(_config(tmp_path, "B"), "--json")
    assert code == 0, out
    data = json.loads(out)
    feeds = data["feeds"]
    assert feeds["scope"] == "full" and feeds["policy"] == "quorum_safe"
    assert feeds["stop"] == ["s2", "s3", "a2"]
    assert feeds["nodes"] == EVERY
    assert len(feeds["refused"]) == 1 and "etcd would lose quorum" in feeds["refused"][0]
    stages = _stage_nodes(data["plan"])
    assert "flux_suspend" in stages
    assert stages["cordon"] == EVERY
    assert stages["stop_servers"] == SERVERS and stages["stop_agents"] == AGENTS


@pytest.mark.parametrize("feed", ["C", "b"])
def test_an_unknown_feed_is_a_usage_error(
    tmp_path: Path, feed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _config(tmp_path, "A")
    assert run(["shutdown", "--config", str(path), "--feed", feed, "--no-probe"]) == 2
    assert f"{feed} not in power.feeds (A, B)" in capsys.readouterr().err


def test_feed_without_power_feeds_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _config(tmp_path, "A")
    data = yaml.safe_load(path.read_text())
    del data["power"]
    path.write_text(yaml.safe_dump(data))
    assert run(["shutdown", "--config", str(path), "--feed", "A", "--no-probe"]) == 2
    assert "needs power.feeds" in capsys.readouterr().err


def test_a_feed_no_node_depends_on_alone_stops_nothing(tmp_path: Path) -> None:
    path = _config(tmp_path, "A")
    data = yaml.safe_load(path.read_text())
    data["power"]["feeds"]["C"] = {"instance": "gamma"}
    data["power"]["node_feeds"]["a3"] = ["A", "C"]
    path.write_text(yaml.safe_dump(data))
    result = runner.invoke(
        app, ["shutdown", "--config", str(path), "--feed", "C", "--no-probe", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["feeds"]["scope"] == "none"


def test_status_shows_the_nodes_per_feed_and_a_partial_shutdown(tmp_path: Path) -> None:
    from hecate.adapters.statedir.store import StateStore  # noqa: PLC0415
    from hecate.core.intent import IntentState  # noqa: PLC0415

    path = _config(tmp_path, "A")
    StateStore(tmp_path / "state").set_intent(
        IntentState.SHUTTING_DOWN, reason="feed B", run_id=None, nodes=("s3", "a2")
    )
    result = runner.invoke(app, ["status", "--config", str(path), "--json"])
    data = json.loads(result.output)
    assert data["intent"]["nodes"] == ["s3", "a2"]
    feeds = data["feeds"]
    assert feeds["partial_shutdown"] == ["s3", "a2"]
    assert feeds["feeds"][1] == {
        "name": "B",
        "instance": "beta",
        "nodes": ["s3", "a2", "a3"],
        "down": ["s3", "a2"],
    }
    text = runner.invoke(app, ["status", "--config", str(path)]).output
    assert "B            via beta: s3, a2, a3 (down: s3, a2)" in text
    assert "partial shutdown: s3, a2 stopped" in text
    assert "intent:  shutting_down (partial: s3, a2)" in text


def test_replay_says_what_a_trigger_of_a_feed_stops(tmp_path: Path) -> None:
    path = _config(tmp_path, "A")
    result = runner.invoke(app, ["replay", "clean-outage", "-c", str(path), "--feed", "B"])
    assert result.exit_code == 0, result.output
    assert "partial shutdown: stops s3, a2 only" in result.output
    as_json = runner.invoke(
        app, ["replay", "clean-outage", "-c", str(path), "--feed", "B", "--json"]
    ).output
    events = [json.loads(line) for line in as_json.splitlines()]
    [trigger] = [e for e in events if e["event"] == "trigger_shutdown"]
    assert trigger["feeds"]["scope"] == "partial" and trigger["feeds"]["nodes"] == ["s3", "a2"]
    assert all("feeds" not in e for e in events if e["event"] != "trigger_shutdown")
    refused = runner.invoke(
        app, ["replay", "clean-outage", "-c", str(_config(tmp_path, "B")), "--feed", "B"]
    ).output
    assert "refused partial shutdown (quorum_safe): etcd would lose quorum" in refused
