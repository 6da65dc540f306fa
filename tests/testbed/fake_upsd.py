"""A tiny scripted upsd on 127.0.0.1, for answers a real upsd would never give.

Each connection is served in its own thread: every command line the client sends is answered
from `answers` (the exact command line, without its LF, maps to the raw bytes to send); the
handshake a client needs (USERNAME, PASSWORD, PRIMARY/LOGIN for the UPS) is answered OK unless
scripted, LOGOUT closes, and anything else gets `ERR UNKNOWN-COMMAND`. An answer may also be a
callable that takes the connection over (to trickle, to stream forever, to hang); the connection
is closed when it returns. Every wait is bounded, and `close()` ends every thread.

`var`, `answer`, `ON_MAINS` and `ON_BATTERY` build raw `LIST VAR` answers.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Mapping
from types import TracebackType

Answer = bytes | Callable[[socket.socket, threading.Event], None]

DEFAULT_UPS = "pyrphoros"


def hang(conn: socket.socket, stop: threading.Event) -> None:
    """Keep the connection open and say nothing more, until the client or the test ends."""
    conn.settimeout(0.05)
    while not stop.is_set():
        try:
            if not conn.recv(1024):
                return
        except TimeoutError:
            continue


def then_hang(data: bytes) -> Answer:
    """Send `data`, then hold the connection open (an answer that never ends)."""

    def answer(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(data)
        hang(conn, stop)

    return answer


def then_close(data: bytes) -> Answer:
    """Send `data`, then close the connection (an answer cut short)."""

    def answer(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(data)

    return answer


def stream(line: bytes) -> Answer:
    """Send `line` forever (an endless list), until the client goes away."""

    def answer(conn: socket.socket, stop: threading.Event) -> None:
        chunk = line * 64
        while not stop.is_set():
            conn.sendall(chunk)

    return answer


# -- answers ---------------------------------------------------------------------------------


def var(name: str, value: str, ups: str = DEFAULT_UPS) -> bytes:
    """One `VAR` line (the value written as given: escape it yourself)."""
    return f'VAR {ups} {name} "{value}"'.encode()


def answer(*lines: bytes, begin: str = DEFAULT_UPS, end: str | None = DEFAULT_UPS) -> bytes:
    """A `LIST VAR` answer: BEGIN, the lines, END (none when `end` is None)."""
    body = [f"BEGIN LIST VAR {begin}".encode(), *lines]
    if end is not None:
        body.append(f"END LIST VAR {end}".encode())
    return b"".join(line + b"\n" for line in body)


# A UPS on mains and one on battery, as `VAR` lines.
ON_MAINS = (
    var("ups.status", "OL"),
    var("battery.charge", "100"),
    var("battery.runtime", "1800"),
    var("ups.load", "20"),
)
ON_BATTERY = (
    var("ups.status", "OB DISCHRG"),
    var("battery.charge", "60"),
    var("battery.runtime", "900"),
    var("ups.load", "20"),
)


class FakeUpsd:
    """A scripted NUT server. `answers` maps a command line to its answer (see module doc)."""

    def __init__(self, answers: Mapping[str, Answer] | None = None, ups: str = DEFAULT_UPS) -> None:
        self.answers: dict[str, Answer] = {
            f"PRIMARY {ups}": b"OK PRIMARY-GRANTED\n",
            f"LOGIN {ups}": b"OK\n",
            **(answers or {}),
        }
        self.ups = ups
        self.commands: list[str] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._serve, daemon=True)
        self._accept.start()

    def target(self, ups: str | None = None) -> str:
        return f"{ups or self.ups}@127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._connection, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _connection(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):  # the client may reset the connection
            conn.settimeout(0.05)
            buffer = b""
            while True:
                try:
                    chunk = conn.recv(4096)
                except TimeoutError:
                    # Stop only once nothing is left to read: a LOGOUT the client sent before
                    # the test closed this server is still recorded (a loaded machine ran the
                    # close before this thread read it).
                    if self._stop.is_set():
                        return
                    continue
                if not chunk:
                    return
                buffer += chunk
                while b"\n" in buffer:
                    raw, _, buffer = buffer.partition(b"\n")
                    command = raw.decode("ascii", "replace")
                    self.commands.append(command)
                    if command == "LOGOUT":
                        conn.sendall(b"OK Goodbye\n")
                        return
                    answer = self._answer(command)
                    if callable(answer):
                        answer(conn, self._stop)
                        return
                    conn.sendall(answer)

    def _answer(self, command: str) -> Answer:
        if command in self.answers:
            return self.answers[command]
        if command.startswith(("USERNAME ", "PASSWORD ")):
            return b"OK\n"
        return b"ERR UNKNOWN-COMMAND\n"

    def close(self) -> None:
        self._stop.set()
        self._accept.join(5)
        for thread in self._threads:
            thread.join(5)
        self._listener.close()

    def __enter__(self) -> FakeUpsd:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.close()
