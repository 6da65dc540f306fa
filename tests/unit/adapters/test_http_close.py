"""Closing a bounded HTTP port while its loop is already closing its sockets (seen in CI as a
teardown error: the peer server's close raised EBADF from waitress's trigger)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from hecate.adapters.http_server import BoundedServer, Limits


def _app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [])
    return [b""]


def test_close_after_the_loop_closed_the_trigger_does_not_raise() -> None:
    server = BoundedServer("127.0.0.1:0", _app, name="test", limits=Limits())
    server.start()
    # What the loop does on its way out (wasyncore.close_all) done first, while the thread
    # still runs: the wake-up pull then finds the trigger's descriptor closed.
    cast(Any, server._server).trigger.close()  # the race, made certain
    server.close()
    assert not server._thread.is_alive()
