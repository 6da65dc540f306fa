"""The waitress internals hecate/adapters/http_server.py builds on, pinned.

httpserve subclasses waitress's HTTPChannel and TcpWSGIServer to add a whole-request deadline,
an immediate reset over the connection cap and a quiet hang-up. Those hooks are not waitress's
public API, so pyproject.toml allows only the minor release checked here; before widening the
pin, this test (and tests/unit/adapters/test_httpserve.py) must pass on the new release.
"""

from __future__ import annotations

import inspect
from importlib.metadata import version

from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer


def test_the_release_is_the_one_checked() -> None:
    major, minor = (int(part) for part in version("waitress").split(".")[:2])
    assert (major, minor) == (3, 0), "re-check httpserve's hooks, then widen the pin"


def test_the_channel_hook_keeps_its_shape() -> None:
    # _flush_exception(flush, do_close=True) -> (flushed, exception): a hang-up is exception=True
    params = list(inspect.signature(HTTPChannel._flush_exception).parameters)  # type: ignore[attr-defined]
    assert params == ["self", "flush", "do_close"]
    source = inspect.getsource(HTTPChannel)
    assert "self._flush_exception(" in source
    assert "self.server.active_channels[self._fileno] = self" in source


def test_the_server_hooks_keep_their_shape() -> None:
    for name in ("maintenance", "handle_accept", "readable"):
        assert callable(getattr(TcpWSGIServer, name)), name
    assert list(inspect.signature(TcpWSGIServer.maintenance).parameters) == ["self", "now"]
    assert TcpWSGIServer.channel_class is HTTPChannel  # the class attribute httpserve overrides
    base = inspect.getsource(TcpWSGIServer.__mro__[1])
    assert "self.active_channels = {}" in base
    assert "self.channel_class(self, conn, addr, self.adj, map=self._map)" in base
    for name in ("readwrite", "close_all"):  # httpserve's own event loop calls these
        assert callable(getattr(wasyncore, name)), name
    settings = dict(Adjustments._params)  # type: ignore[attr-defined]
    for setting in ("backlog", "connection_limit", "max_request_header_size", "channel_timeout"):
        assert setting in settings, setting
