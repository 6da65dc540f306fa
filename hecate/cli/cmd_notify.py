"""`hecate notify test`: send a test message to every notification target, say which failed."""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated

import typer

from hecate.adapters.notify import child
from hecate.adapters.notify.targets import load_targets
from hecate.cli.common import emit_json, load
from hecate.cli.exits import EXIT_FAILED, EXIT_USAGE
from hecate.cli.options import ConfigOpt, JsonOpt
from hecate.config.load import DEFAULT_CONFIG_PATH
from hecate.config.notify import EVENT_NAMES
from hecate.core import notify_events as ne

app = typer.Typer(help="Notifications from the host: try the targets.", no_args_is_help=True)

EventOpt = Annotated[
    str,
    typer.Option(
        "--event",
        help=f"Send the test in this event's words and severity: {', '.join(EVENT_NAMES)}.",
    ),
]


@app.command("test")
def test_command(
    config: ConfigOpt = DEFAULT_CONFIG_PATH, event: EventOpt = "test", as_json: JsonOpt = False
) -> None:
    """Send a test message to each target (whatever events it wants); exit 1 if any failed,
    saying which and why."""
    if event not in EVENT_NAMES:
        typer.echo(f"error: unknown event {event!r} (known: {', '.join(EVENT_NAMES)})", err=True)
        raise typer.Exit(EXIT_USAGE)
    cfg = load(config)
    targets = load_targets(cfg)
    if not targets:
        typer.echo("error: no notification targets (notify.targets, notify.urls_file)", err=True)
        raise typer.Exit(EXIT_USAGE)
    where = ne.Where(cfg.coordination.peer_name or socket.gethostname(), str(cfg.ups.target))
    message = ne.test_message(where, event, time.time())
    with ThreadPoolExecutor(max_workers=min(8, len(targets))) as pool:  # each its own child
        results = list(pool.map(lambda t: child.send(t.url, [message])[0], targets))
    rows = [
        {"target": t.name, "ok": r.ok, "why": r.why} for t, r in zip(targets, results, strict=True)
    ]
    if as_json:
        emit_json(rows)
    else:
        for row in rows:
            typer.echo(f"{row['target']}: " + ("sent" if row["ok"] else f"FAILED: {row['why']}"))
    if not all(row["ok"] for row in rows):
        raise typer.Exit(EXIT_FAILED)
