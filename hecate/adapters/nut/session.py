"""One upsd session through pynutclient, hardened: one deadline, end-of-stream checks, closed.

Private to the NUT adapter: `hecate.adapters.nut.client.NutClient` is the only user.
"""

from __future__ import annotations

import contextlib
import re
import socket
import time
from typing import Final

from PyNUTClient.PyNUT import PyNUTClient, PyNUTError

# A whole LIST VAR answer is a few kB; anything far larger is not upsd.
MAX_ANSWER_BYTES: Final = 1 << 20


def unescape(value: str) -> str:
    r"""Undo upsd's escaping of `\` and `"` in quoted values (pynutclient keeps it)."""
    return re.sub(r"\\(.)", r"\1", value)


def decode(raw: object) -> str:
    if isinstance(raw, bytes):
        return raw.decode("utf-8", "replace")
    return str(raw)


class PeerClosedError(ConnectionError):
    """The server closed the connection before a complete answer."""


class AnswerTooLongError(Exception):
    """The server sent more than any NUT answer could hold."""


class GuardedPyNUT(PyNUTClient):  # type: ignore[misc]  # pynutclient ships no type information
    """PyNUTClient with the three guarantees the adapter needs.

    pynutclient 2.8.5 reads with `recv` in a loop: a server that closes the connection makes it
    spin forever (recv returns b"" at once), and its socket timeout applies per recv, so a
    server that trickles bytes is never timed out. It also never closes its socket, not even when
    its constructor fails. This subclass replaces its private read loop (same contract, plus an
    end-of-stream check and one deadline for the whole session) and adds `close()`.
    """

    def __init__(
        self, host: str, port: int, login: str | None, password: str | None, deadline: float
    ) -> None:
        self._hecate_deadline = deadline
        try:
            super().__init__(
                host=host,
                port=port,
                login=login,
                password=password,
                timeout=max(deadline - time.monotonic(), 0.001),
            )
        except BaseException:
            self.close()
            raise

    def _socket(self) -> socket.socket | None:
        sock = getattr(self, "_PyNUTClient__srv_handler", None)
        return sock if isinstance(sock, socket.socket) else None

    def _read_until_guarded(self, marker: bytes) -> bytes:
        sock = self._socket()
        if sock is None:
            raise PeerClosedError("not connected")
        data = bytes(getattr(self, "_PyNUTClient__recv_leftover", b""))
        while (end := data.find(marker)) == -1:
            if len(data) > MAX_ANSWER_BYTES:
                raise AnswerTooLongError
            remaining = self._hecate_deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no complete answer before the deadline")
            sock.settimeout(remaining)
            chunk = sock.recv(4096)
            if not chunk:
                raise PeerClosedError("the server closed the connection")
            data += chunk
        end += len(marker)
        self._PyNUTClient__recv_leftover = data[end:]
        return data[:end]

    # Name-mangled hook: PyNUTClient's methods call `self.__read_until`.
    _PyNUTClient__read_until = _read_until_guarded

    def _command(self, line: str) -> str:
        sock = self._socket()
        if sock is None:
            raise PeerClosedError("not connected")
        sock.settimeout(max(self._hecate_deadline - time.monotonic(), 0.001))
        sock.sendall(f"{line}\n".encode("ascii"))
        return self._read_until_guarded(b"\n").decode("ascii").rstrip("\r\n")

    def check_primary(self, ups: str) -> None:
        """upsd's `PRIMARY` access check (no side effect); `MASTER` for upsd before 2.8."""
        answer = self._command(f"PRIMARY {ups}")
        if answer.startswith(("ERR UNKNOWN-COMMAND", "ERR INVALID-ARGUMENT")):
            answer = self._command(f"MASTER {ups}")
        if not answer.startswith("OK"):
            raise PyNUTError(answer)

    def instant_command(self, ups: str, command: str) -> None:
        """NUT's INSTCMD (e.g. `shutdown.return`); needs a user with `instcmds` rights."""
        answer = self._command(f"INSTCMD {ups} {command}")
        if not answer.startswith("OK"):
            raise PyNUTError(answer)

    def list_vars(self, ups: str) -> dict[str, str]:
        raw = self.GetUPSVars(ups)
        if not isinstance(raw, dict):
            raise PyNUTError("LIST VAR gave no variables")
        return {decode(key): unescape(decode(value)) for key, value in raw.items()}

    def list_ups(self) -> dict[str, str]:
        """`LIST UPS` (what `upsc -l` shows): UPS name -> description."""
        raw = self.GetUPSList()
        if not isinstance(raw, dict):
            raise PyNUTError("LIST UPS gave no list")
        return {decode(key): unescape(decode(value)) for key, value in raw.items()}

    def close(self) -> None:
        sock = self._socket()
        if sock is None:
            return
        with contextlib.suppress(OSError):
            sock.setblocking(False)
            sock.send(b"LOGOUT\n")
        sock.close()
        self._PyNUTClient__srv_handler = None


def pynut_supported() -> bool:
    """The private names GuardedPyNUT relies on exist in the installed pynutclient."""
    return all(
        hasattr(PyNUTClient, name)
        for name in ("_PyNUTClient__read_until", "_PyNUTClient__srv_handler", "GetUPSVars")
    )
