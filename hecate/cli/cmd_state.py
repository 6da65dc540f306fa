"""`hecate state reset --intent`: the operator's way out of an unknown (corrupt) intent."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from hecate.adapters.statedir.save import flow_lock
from hecate.adapters.statedir.store import StateStore
from hecate.cli.common import emit_json, load, now
from hecate.cli.exits import EXIT_USAGE
from hecate.cli.failure import fail
from hecate.cli.options import ConfigOpt, JsonOpt
from hecate.config.load import DEFAULT_CONFIG_PATH
from hecate.core.intent import IntentState
from hecate.errors import StateError

app = typer.Typer(help="Inspect and repair the state directory.", no_args_is_help=True)


class ResetTo(StrEnum):
    normal = "normal"
    shutdown_complete = "shutdown_complete"


@app.command("reset")
def reset(
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
    intent: Annotated[
        bool, typer.Option("--intent", help="Reset the intent (required: say what to reset).")
    ] = False,
    to: Annotated[
        ResetTo,
        typer.Option(
            "--to",
            help="normal: the cluster is up (no automatic startup). shutdown_complete: the "
            "cluster is down, let the daemon start it when power is back.",
        ),
    ] = ResetTo.normal,
    as_json: JsonOpt = False,
) -> None:
    """Clear an unknown intent after you checked the cluster.

    When intent.json is found corrupt it is kept as intent.json.corrupt-TIMESTAMP and startup
    stays refused (exit 3), while shutdowns still run. Read the kept copy, look at the cluster,
    then run this with --to saying what is true now. Kept copies are never deleted.
    """
    if not intent:
        fail("say what to reset: hecate state reset --intent", EXIT_USAGE, "--intent")
    cfg = load(config)
    store = StateStore(cfg.state_dir)
    with flow_lock(cfg.state_dir, "state reset", required=True):  # apart from any flow
        try:
            previous = store.read_intent(now()).state.value
        except StateError:
            previous = "unknown"
        fresh = store.reset_intent(IntentState(to.value), reason="reset by the operator", now=now())
    kept = [str(p) for p in store.kept_copies()]
    if as_json:
        emit_json({"previous": previous, "intent": fresh.to_json(), "kept_copies": kept})
        return
    typer.echo(f"intent reset to {fresh.state.value} (was {previous})")
    for path in kept:
        typer.echo(f"kept copy: {path}")
