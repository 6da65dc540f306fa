"""Which run the intent says a crash cut short (hecate/flows/report.py interrupted_run)."""

from __future__ import annotations

import pytest

from hecate.core.intent import Intent, IntentState
from hecate.core.run_history import Outcome
from hecate.flows.report import interrupted_run


def intent(state: IntentState, run_id: str | None = "run-1") -> Intent:
    return Intent(state, 100.0, "why", "host", run_id)


@pytest.mark.parametrize(
    ("state", "kind"),
    [(IntentState.SHUTTING_DOWN, "shutdown"), (IntentState.STARTUP_IN_PROGRESS, "startup")],
)
def test_a_run_under_way_and_unrecorded_is_interrupted_whatever_runs_next(
    state: IntentState, kind: str
) -> None:
    run = interrupted_run(intent(state), ["other"], 250.0)
    assert run is not None
    assert (run.run_id, run.kind, run.outcome) == ("run-1", kind, Outcome.INTERRUPTED)
    assert (run.started_at, run.ended_at) == (100.0, 250.0)


@pytest.mark.parametrize(
    ("previous", "known"),
    [
        (None, []),  # unknown (corrupt) intent
        (intent(IntentState.NORMAL), []),
        (intent(IntentState.SHUTDOWN_COMPLETE), []),
        (intent(IntentState.SHUTTING_DOWN, run_id=None), []),  # an older Hecate's intent
        (intent(IntentState.STARTUP_IN_PROGRESS), ["run-1"]),  # recorded: failed or stopped
    ],
)
def test_nothing_else_is_interrupted(previous: Intent | None, known: list[str]) -> None:
    assert interrupted_run(previous, known, 250.0) is None
