"""A bound on a whole HTTP exchange, for urllib (Redfish).

urllib's `timeout` bounds each socket operation, not the call: a BMC that trickles its answer
(one byte now and then, each within the timeout) holds the caller for ever. A `Deadline` gives
urllib connections whose sockets it can shut down when the time is up, which ends any connect,
TLS handshake or read in progress at once; the caller then asks `close()` whether that happened.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import urllib.request
from collections.abc import Callable
from typing import Any


class Deadline:
    def __init__(self, seconds: float) -> None:
        self._lock = threading.Lock()
        self._expired = False
        # A dup of each connection's socket: shutting it down ends the connection whatever
        # object (plain or TLS) wraps the socket by then, and this fd is never reused under us.
        self._handles: list[socket.socket] = []
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def _expire(self) -> None:
        with self._lock:
            self._expired = True
            for handle in self._handles:
                with contextlib.suppress(OSError):  # already closed by its connection
                    handle.shutdown(socket.SHUT_RDWR)

    def _connect(
        self, address: tuple[str, int], timeout: Any = None, source_address: Any = None
    ) -> socket.socket:
        sock = socket.create_connection(address, timeout, source_address)
        with self._lock:
            if self._expired:
                sock.close()
                raise TimeoutError("deadline passed")
            self._handles.append(sock.dup())
        return sock

    def _connection(self, base: type[http.client.HTTPConnection]) -> Callable[..., Any]:
        def make(host: str, **kwargs: Any) -> http.client.HTTPConnection:
            conn = base(host, **kwargs)
            conn._create_connection = self._connect  # type: ignore[attr-defined]
            return conn

        return make

    def handlers(self, context: ssl.SSLContext | None) -> list[urllib.request.BaseHandler]:
        """urllib handlers for http and https whose connections this deadline bounds."""
        deadline = self

        class Http(urllib.request.HTTPHandler):
            def http_open(self, req: Any) -> Any:
                return self.do_open(deadline._connection(http.client.HTTPConnection), req)

        class Https(urllib.request.HTTPSHandler):
            def https_open(self, req: Any) -> Any:
                factory = deadline._connection(http.client.HTTPSConnection)
                return self.do_open(factory, req, context=context)

        return [Http(), Https(context=context)]

    def close(self) -> bool:
        """Stop the clock and let the sockets go; True when the deadline had passed."""
        self._timer.cancel()
        with self._lock:
            for handle in self._handles:
                handle.close()
            self._handles.clear()
            return self._expired
