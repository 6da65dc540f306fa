"""Closing a bounded HTTP port while its loop is already closing its sockets (seen in CI as a
teardown error: the peer server's close raised EBADF from waitress's trigger)."""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any, cast

from hecate.adapters.http_server import BoundedServer, Limits


def _app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [])
    return [b""]


def test_close_after_the_loop_closed_the_trigger_does_not_raise() -> None:
    server = BoundedServer("127.0.0.1:0", _app, name="test", limits=Limits())
    server.start()
    waitress_server = cast(Any, server._server)
    real_pull = waitress_server.pull_trigger

    def pull_a_closed_trigger() -> None:
        # What the pull meets when the loop saw the stop first and closed every socket
        # (wasyncore.close_all), the trigger's too: waitress's os.write on a closed descriptor.
        raise OSError(errno.EBADF, "Bad file descriptor")

    waitress_server.pull_trigger = pull_a_closed_trigger
    try:
        server.close()  # the loop sees the stop on its own within its 0.5 s tick
    finally:
        waitress_server.pull_trigger = real_pull
    assert not server._thread.is_alive()
