"""One upsd session over a plain socket: one deadline, bounded reads, always closed.

Private to the NUT adapter: `hecate.adapters.nut.client.NutClient` is the only user. Each answer is
read
by the strict grammar in `hecate.adapters.nut.protocol`; this module only moves bytes, within
bounds:

- one deadline for the whole session (connect, every send, every read): a server that trickles
  bytes or never ends a list is cut off when it passes;
- a line is at most `MAX_LINE_BYTES` and a session receives at most `MAX_SESSION_BYTES`;
- a server that closes the connection is an error at once (`PeerClosedError`);
- the socket is closed on every path (`close()`, also when connecting fails).
"""

from __future__ import annotations

import contextlib
import socket
import time
from typing import Final

from hecate.adapters.nut.protocol import (
    MAX_LINE_BYTES,
    ErrAnswer,
    ProtocolViolation,
    check_line,
    expect_ok,
    quote,
    read_get_var,
    read_list_ups,
    read_list_var,
)

# A whole LIST VAR answer is a few kB; a session that receives more is not talking to upsd.
MAX_SESSION_BYTES: Final = 1 << 20
_RECV_BYTES: Final = 4096
# upsd < 2.8 knows PRIMARY as MASTER, and says so with one of these.
_NO_PRIMARY: Final = frozenset({"UNKNOWN-COMMAND", "INVALID-ARGUMENT"})
# upsd writes a list's BEGIN line on its own and the rest only once that is acknowledged (Nagle),
# while a client's kernel holds its ACK back for up to 40 ms (delayed ACK): every LIST VAR waited
# about 44 ms for nothing (`upsc` does too). Asking for immediate ACKs before each read (Linux's
# TCP_QUICKACK; it lapses by itself, hence each time) takes that wait away.
_QUICKACK: Final = getattr(socket, "TCP_QUICKACK", None)


class PeerClosedError(ConnectionError):
    """The server closed the connection before a complete answer."""


class UpsdSession:
    """A connection to upsd: send a command, read its answer by the protocol's grammar."""

    def __init__(self, host: str, port: int, deadline: float) -> None:
        self._deadline = deadline
        self._buffer = bytearray()
        self._received = 0
        self._sock: socket.socket | None = socket.create_connection(
            (host, port), timeout=self._remaining()
        )

    def _remaining(self) -> float:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no complete answer before the deadline")
        return remaining

    def _socket(self) -> socket.socket:
        if self._sock is None:
            raise PeerClosedError("not connected")
        return self._sock

    def send(self, command: str) -> None:
        """One command line. Callers build it from validated words: a line break or NUL in it
        would smuggle in a second command, so it is refused here as well."""
        if any(char in command for char in "\r\n\x00"):
            raise ValueError("a NUT command is one line")
        sock = self._socket()
        sock.settimeout(self._remaining())
        sock.sendall(command.encode("ascii") + b"\n")

    def line(self) -> bytes:
        """The next answer line, without its LF; bounded in size and by the deadline."""
        sock = self._socket()
        while (end := self._buffer.find(b"\n")) == -1:
            if len(self._buffer) > MAX_LINE_BYTES:
                raise ProtocolViolation(
                    f"a line longer than {MAX_LINE_BYTES} bytes", bytes(self._buffer[:80])
                )
            sock.settimeout(self._remaining())
            if _QUICKACK is not None:
                with contextlib.suppress(OSError):  # not TCP (a test's socket pair): no matter
                    sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            chunk = sock.recv(_RECV_BYTES)
            if not chunk:
                raise PeerClosedError("the server closed the connection")
            self._received += len(chunk)
            if self._received > MAX_SESSION_BYTES:
                raise ProtocolViolation(f"more than {MAX_SESSION_BYTES} bytes in one session")
            self._buffer += chunk
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        return check_line(line)

    # -- commands ------------------------------------------------------------------------------

    def authenticate(self, user: str, password: str) -> None:
        """USERNAME and PASSWORD, each quoted (a password may hold spaces or '#')."""
        self.send(f"USERNAME {quote(user)}")
        expect_ok(self.line())
        self.send(f"PASSWORD {quote(password)}")
        expect_ok(self.line())

    def check_primary(self, ups: str) -> None:
        """upsd's `PRIMARY` access check (no side effect); `MASTER` for upsd before 2.8."""
        self.send(f"PRIMARY {ups}")
        try:
            expect_ok(self.line())
        except ErrAnswer as exc:
            if exc.code not in _NO_PRIMARY:
                raise
            self.send(f"MASTER {ups}")
            expect_ok(self.line())

    def device_login(self, ups: str) -> None:
        """`LOGIN <ups>`, as upsmon does (any upsmon user; upsd logs it)."""
        self.send(f"LOGIN {ups}")
        expect_ok(self.line())

    def list_vars(self, ups: str) -> dict[str, bytes]:
        self.send(f"LIST VAR {ups}")
        return read_list_var(self.line, ups)

    def get_var(self, ups: str, name: str) -> bytes:
        self.send(f"GET VAR {ups} {name}")
        return read_get_var(self.line, ups, name)

    def list_ups(self) -> dict[str, bytes]:
        """`LIST UPS` (what `upsc -l` shows): UPS name -> description."""
        self.send("LIST UPS")
        return read_list_ups(self.line)

    def instant_command(self, ups: str, command: str) -> None:
        """NUT's INSTCMD (e.g. `shutdown.return`); needs a user with `instcmds` rights."""
        self.send(f"INSTCMD {ups} {command}")
        expect_ok(self.line())

    def close(self) -> None:
        """Say LOGOUT without waiting for the answer, and close the socket."""
        sock, self._sock = self._sock, None
        if sock is None:
            return
        with contextlib.suppress(OSError):
            sock.setblocking(False)
            sock.send(b"LOGOUT\n")
        sock.close()
