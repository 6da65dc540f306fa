"""Bounded HTTP serving for the metrics and coordination ports (waitress underneath).

Why waitress: it is a well-kept, pure-Python WSGI server that serves the metrics' WSGI app
(hecate.adapters.metrics.exposition), does all socket I/O in one non-blocking loop (a slow client
costs a file descriptor, never a thread), runs the application in a small fixed thread pool, and
offers, as settings: a listen backlog, a cap on open connections, a bound on header and body
size (answered 431/413), and quiet socket errors. It lacks two controls this daemon needs, so
this module adds them to its server class and nothing else:

- a deadline for the whole request: waitress's `channel_timeout` counts inactivity, so a client
  that sends one header byte every few seconds is never closed (the slowloris that exhausted
  the descriptors). Here a connection is closed once it is older than `request_deadline_s`
  and no request of it is being served.
- excess connections closed at once: at its `connection_limit` waitress stops accepting and
  leaves the excess in the kernel's backlog, where a peer's request would queue behind a flood.
  Here every connection is accepted and those over the cap are reset immediately.

A client that hangs up gives one debug line, never a traceback. The UPS poll and the shutdown
path never wait on any of this: the server has its own thread, and the file descriptors it can
use are capped well below the process's limit (`reserve_file_descriptors`, `connection_cap`).
"""

from __future__ import annotations

import contextlib
import logging
import resource
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer

from hecate.config.addresses import AddressError, ListenAddress
from hecate.errors import ConfigError

log = logging.getLogger("hecate.http")

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# File descriptors the daemon asks for at start (soft RLIMIT_NOFILE, up to the hard limit), and
# how many of them stay out of the HTTP servers' reach: the NUT socket, state files, logs,
# Ansible's pipes and SSH connections to every node.
WANTED_FDS = 16384
RESERVED_FDS = 1024
HTTP_PORTS = 2  # metrics + coordination


@dataclass(frozen=True)
class Limits:
    """What one port accepts. The defaults suit a LAN with a handful of peers and scrapers."""

    max_connections: int = 4096  # open connections per port; more are reset at once
    request_deadline_s: float = 5.0  # a connection older than this is closed unless served
    max_header_bytes: int = 8192
    max_body_bytes: int = 64 * 1024
    backlog: int = 1024
    threads: int = 4  # application threads (the I/O loop is one more)


def reserve_file_descriptors(wanted: int = WANTED_FDS) -> int:
    """Raise the soft RLIMIT_NOFILE towards `wanted` (never above the hard limit); the result."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the file descriptor limit to %d: %s", target, exc)
    return soft


def connection_cap(fd_limit: int, wanted: int, ports: int = HTTP_PORTS) -> int:
    """Connections per port such that all ports together leave RESERVED_FDS (or half the limit,
    whichever is more) for everything else. At least 16, so the ports stay usable."""
    reserve = max(RESERVED_FDS, fd_limit - fd_limit // 2)
    return max(16, min(wanted, (fd_limit - reserve) // max(ports, 1)))


def split_listen(listen: ListenAddress | str) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or `:port` (every interface) as (host, port) to bind; the one
    grammar of hecate.config.addresses (a no-op parse for the config's already parsed value)."""
    try:
        parsed = ListenAddress.parse(listen)
    except AddressError as exc:
        raise ConfigError(f"listen address {listen!r}: {exc}") from None
    return parsed.bind_host, parsed.port


class _HangUpsAreDebug(logging.Filter):
    """waitress logs "Client disconnected while serving ..." at INFO: one debug line here.

    It also warns "Task queue depth is N" on every request that waits for a thread: a client
    that opens many connections would write one journal line per request, so under a flood the
    log is what it blinds. Queueing is the bounded server doing its job; it is debug too.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        hang_up = record.levelno == logging.INFO and "disconnected" in message
        queued = record.name == "waitress.queue" and message.startswith("Task queue depth")
        if hang_up or queued:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return log.isEnabledFor(logging.DEBUG)
        return True


# Filters apply only on the logger a record is made on, so the child logger needs its own.
for _name in ("waitress", "waitress.queue"):
    _waitress_log = logging.getLogger(_name)
    if not any(isinstance(f, _HangUpsAreDebug) for f in _waitress_log.filters):
        _waitress_log.addFilter(_HangUpsAreDebug())


class _Channel(HTTPChannel):
    def _flush_exception(self, flush: Any, do_close: bool = True) -> Any:
        result = super()._flush_exception(flush, do_close)  # type: ignore[misc]
        if result and result[1]:
            log.debug("client %s hung up before its answer was sent", self.addr)
        return result


class _Server(TcpWSGIServer):
    channel_class = _Channel

    def __init__(self, app: WsgiApp, adj: Adjustments, limits: Limits, name: str) -> None:
        self.limits = limits
        self.name = name
        self.refused = 0
        self.expired = 0
        self._next_sweep = 0.0
        self.socket_map: dict[int, Any] = {}  # waitress's channels (its `_map`)
        self.fresh: list[int] = []  # descriptors of channels accepted since the last sync
        super().__init__(app, map=self.socket_map, adj=adj)

    def readable(self) -> bool:
        now = time.time()
        if now >= self._next_sweep:
            self._next_sweep = now + min(1.0, self.limits.request_deadline_s / 4)
            self.maintenance(now)
        return bool(self.accepting)

    def maintenance(self, now: float) -> None:
        cutoff = now - self.limits.request_deadline_s
        channels = cast(dict[int, HTTPChannel], self.active_channels)
        for channel in list(channels.values()):
            if not channel.requests and channel.creation_time < cutoff:
                self.expired += 1
                channel.handle_close()

    def handle_accept(self) -> None:
        try:
            accepted = self.accept()
        except OSError as exc:
            log.warning("%s: accept failed: %s", self.name, exc)
            return
        if accepted is None:
            return
        conn, addr = accepted
        if len(cast(dict[int, HTTPChannel], self.active_channels)) >= self.limits.max_connections:
            self.refused += 1
            if self.refused % 1000 == 1:
                log.warning(
                    "%s: %d connections open (the cap); excess reset (%d so far)",
                    self.name,
                    self.limits.max_connections,
                    self.refused,
                )
            # A reset, not a FIN: the descriptor and the socket are freed at once.
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
            return
        try:
            self.set_socket_options(conn)
        except OSError:
            conn.close()
            return
        channel = self.channel_class(self, conn, addr, self.adj, map=self.socket_map)
        self.fresh.append(cast(Any, channel)._fileno)  # wasyncore keeps the descriptor there


class _EventLoop:
    """waitress's I/O loop on a persistent epoll set.

    wasyncore's own loop asks every channel whether it is readable and writable and builds a
    new poll set at each wake-up: with 2,000 slow clients each sending a byte a second that
    took most of a core (measured). Here a channel's interest is recomputed only when it had an
    event, is new, or has a request in service and a worker thread pulled the trigger.
    """

    IN = select.EPOLLIN | select.EPOLLPRI

    def __init__(self, server: _Server) -> None:
        self.server = server
        self.map = server.socket_map
        self.epoll = select.epoll()
        self.masks: dict[int, int] = {}
        self.busy: set[int] = set()
        self.server_fd: int = cast(Any, server)._fileno
        self.trigger_fd = next(fd for fd, obj in self.map.items() if obj is server.trigger)

    def close(self) -> None:
        self.epoll.close()

    def _sync(self, fd: int, *, fresh: bool = False) -> None:
        obj = self.map.get(fd)
        if obj is None:
            return
        flags = self.IN if obj.readable() else 0
        if obj.writable() and not obj.accepting:
            flags |= select.EPOLLOUT
        old = 0 if fresh else self.masks.get(fd, 0)
        if flags != old or fresh:
            if flags:
                try:
                    self.epoll.modify(fd, flags) if old else self.epoll.register(fd, flags)
                except FileExistsError:
                    self.epoll.modify(fd, flags)
                except FileNotFoundError:
                    self.epoll.register(fd, flags)
            elif old:
                with contextlib.suppress(OSError):
                    self.epoll.unregister(fd)
        self.masks[fd] = flags
        if getattr(obj, "requests", None) or getattr(obj, "total_outbufs_len", 0):
            self.busy.add(fd)
        else:
            self.busy.discard(fd)

    def once(self, timeout: float) -> None:
        for fd in self.masks.keys() - self.map.keys():  # closed channels
            del self.masks[fd]
            self.busy.discard(fd)
            with contextlib.suppress(OSError):
                self.epoll.unregister(fd)
        fresh, self.server.fresh = self.server.fresh, []
        for fd in fresh:
            self._sync(fd, fresh=True)
        for fd in self.map.keys() - self.masks.keys():  # the listener, the trigger
            self._sync(fd, fresh=True)
        self._sync(self.server_fd)  # runs the deadline sweep
        touched: set[int] = set()
        for fd, flags in self.epoll.poll(timeout):
            obj = self.map.get(fd)
            if obj is not None:
                wasyncore.readwrite(obj, flags)
                touched.add(fd)
        if self.trigger_fd in touched:
            touched |= self.busy
        for fd in touched:
            self._sync(fd)


class BoundedServer:
    """One WSGI app on one port with `Limits`, served from its own thread."""

    def __init__(
        self, listen: ListenAddress | str, app: WsgiApp, *, name: str, limits: Limits
    ) -> None:
        host, port = split_listen(listen)
        adj = Adjustments(
            host=host,
            port=port,
            ipv6=":" in host,
            backlog=limits.backlog,
            connection_limit=limits.max_connections + 8,  # never reached: see handle_accept
            threads=limits.threads,
            max_request_header_size=limits.max_header_bytes + 1,  # waitress refuses >= its bound
            max_request_body_size=limits.max_body_bytes + 1,
            channel_timeout=max(1, int(limits.request_deadline_s)),
            cleanup_interval=1,
            log_socket_errors=False,
            outbuf_overflow=16 << 20,  # answers stay in memory: no temp file per answer
            asyncore_use_poll=True,  # select() cannot watch descriptors above 1023
            ident="hecate",
            expose_tracebacks=False,
        )
        try:
            self._server = _Server(app, adj, limits, name)
        except OSError as exc:
            raise ConfigError(f"{name}: cannot listen on {listen}: {exc.strerror}") from None
        self.name = name
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"hecate-{name}", daemon=True)

    @property
    def port(self) -> int:
        return int(cast(Any, self._server).effective_port)

    @property
    def refused(self) -> int:
        """Connections reset because the port was at its cap."""
        return self._server.refused

    @property
    def expired(self) -> int:
        """Connections closed at the request deadline."""
        return self._server.expired

    @property
    def open_connections(self) -> int:
        return len(cast(dict[int, HTTPChannel], self._server.active_channels))

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        socket_map = self._server.socket_map
        loop = _EventLoop(self._server)
        try:
            while not self._stop.is_set():
                loop.once(0.5)
        except Exception:
            log.exception("%s: the HTTP loop stopped", self.name)
        finally:
            loop.close()
            self._server.task_dispatcher.shutdown(timeout=5)
            wasyncore.close_all(socket_map)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            # The loop may see _stop and close every socket (the trigger's too) before this
            # pull: EBADF then only means there is nothing left to wake.
            with contextlib.suppress(OSError):
                self._server.pull_trigger()
            self._thread.join(10)
        else:
            self._server.task_dispatcher.shutdown(timeout=5)
            wasyncore.close_all(self._server.socket_map)
