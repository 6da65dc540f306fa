"""`hecate status` says exactly what a pending startup waits for (issue #11)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hecate.adapters.statedir.awaiting import save_awaiting
from hecate.adapters.statedir.store import StateStore
from hecate.cli.main import app
from hecate.core.intent import IntentState
from hecate.core.readings import CommError, Poll, UpsReading, parse_status
from tests.unit.cli.test_cli import config_file, ups  # noqa: F401  (fixtures)

runner = CliRunner()


def _status(config: Path) -> dict[str, object]:
    result = runner.invoke(app, ["status", "--config", str(config), "--json"])
    report = json.loads(result.output)
    assert isinstance(report, dict)
    # exit 4 exactly when the UPS cannot be read (the cluster is not protected)
    assert result.exit_code == (0 if report["ups"]["readable"] else 4), result.output
    return report


def test_no_pending_startup_while_normal(config_file: Path, ups: list[Poll]) -> None:  # noqa: F811
    assert _status(config_file)["startup"] == {"pending": False, "waits_for": None}


@pytest.mark.parametrize(
    ("reading", "expected"),
    [
        (UpsReading(parse_status("OB DISCHRG"), 900, 80), "mains to return"),
        (UpsReading(parse_status("OL CHRG"), 900, 30), "charge 30% < 50%"),
        (UpsReading(parse_status("OL FSD"), 900, 90), "FSD flag to clear"),
        (UpsReading(parse_status("OFF"), 900, 90), "on line (now OFF)"),
        (UpsReading(parse_status("OL"), 100, None), "charge unknown: runtime >= 330s"),
        (UpsReading(parse_status("OL"), 900, None), "runtime 900s >= threshold 330s: met"),
        (UpsReading(parse_status("OL"), 900, 80), "charge 80%: met"),
        (CommError("connection refused"), "the UPS to answer (connection refused)"),
    ],
)
def test_pending_startup_says_what_it_waits_for(
    config_file: Path,  # noqa: F811
    ups: list[Poll],  # noqa: F811
    tmp_path: Path,
    reading: Poll,
    expected: str,
) -> None:
    store = StateStore(tmp_path / "state")
    store.set_intent(IntentState.SHUTTING_DOWN, reason="ups", run_id="r")
    store.set_intent(IntentState.SHUTDOWN_COMPLETE, reason="ups", run_id="r")
    ups[0] = reading
    startup = _status(config_file)["startup"]
    assert isinstance(startup, dict)
    assert startup["pending"] is True
    assert expected in startup["waits_for"]
    text = runner.invoke(app, ["status", "--config", str(config_file)]).output
    assert "startup: pending; waits for" in text
    assert expected in " ".join(text.split())


def test_after_a_peers_trigger_status_names_the_peers_ups_too(
    config_file: Path,  # noqa: F811
    ups: list[Poll],  # noqa: F811
    tmp_path: Path,
) -> None:
    store = StateStore(tmp_path / "state")
    store.set_intent(IntentState.SHUTTING_DOWN, reason="peer peer-a: LB", run_id="r")
    store.set_intent(IntentState.SHUTDOWN_COMPLETE, reason="peer peer-a: LB", run_id="r")
    save_awaiting(tmp_path / "state", frozenset({"peer-a"}))
    ups[0] = UpsReading(parse_status("OL"), 900, 80)
    startup = _status(config_file)["startup"]
    assert isinstance(startup, dict)
    assert startup["waits_for_peers"] == ["peer-a"]
    assert "the UPS of peer peer-a back on mains and stable" in startup["waits_for"]
    text = runner.invoke(app, ["status", "--config", str(config_file)]).output
    assert "waits for mains seen stable" in text and "peer peer-a" in text


def test_status_says_the_cluster_was_not_stopped(
    config_file: Path,  # noqa: F811
    ups: list[Poll],  # noqa: F811
    tmp_path: Path,
) -> None:
    """Issue 25: a shutdown that reached no node; status says so in one line, with the cause."""
    store = StateStore(tmp_path / "state")
    store.set_intent(
        IntentState.SHUTTING_DOWN,
        reason="ups (failed)",
        run_id="r",
        nodes_unknown={"titan-0": "Connection refused", "titan-1": "Connection refused"},
    )
    cluster = _status(config_file)["intent"]["cluster"]  # type: ignore[index]
    assert cluster["not_stopped"] is True
    text = runner.invoke(app, ["status", "--config", str(config_file)]).output
    assert (
        "nodes:   cluster not stopped: the shutdown reached no node "
        "(titan-0, titan-1: Connection refused)"
    ) in text.splitlines()


def test_pending_startup_says_power_on_brings_back_what_was_powered_off(
    config_file: Path,  # noqa: F811
    ups: list[Poll],  # noqa: F811
    tmp_path: Path,
) -> None:
    store = StateStore(tmp_path / "state")
    store.set_intent(IntentState.SHUTTING_DOWN, reason="ups", run_id="r")
    store.set_intent(
        IntentState.SHUTDOWN_COMPLETE,
        reason="ups",
        run_id="r",
        nodes_down={"titan-1": "off", "titan-0": "stopped"},
        nodes_unknown={"titan-2": "Connection refused"},
    )
    waits_for = _status(config_file)["startup"]["waits_for"]  # type: ignore[index]
    assert waits_for.endswith(
        "; then power_on powers on the nodes the shutdown powered off: titan-1 (none)"
    ), waits_for
