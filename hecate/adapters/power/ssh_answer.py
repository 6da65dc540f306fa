"""Does a node's SSH answer? A TCP connect and the SSH banner (RFC 4253: "SSH-"), bounded.

What Wake-on-LAN and `none` nodes have instead of a power state, and the second opinion beside a
BMC's "on" (a BMC can say on while the OS never came up).
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from hecate.core.power import one_line

DEFAULT_TIMEOUT = 3.0


@dataclass(frozen=True)
class SshTarget:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def _lookup(target: SshTarget, deadline: float) -> list[tuple[Any, ...]]:
    """getaddrinfo, bounded: it has no timeout of its own and a dead resolver holds it for
    tens of seconds; past the deadline its thread is left to finish alone."""
    box: list[list[tuple[Any, ...]] | OSError] = []

    def look() -> None:
        try:
            box.append(socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM))
        except OSError as exc:
            box.append(exc)

    thread = threading.Thread(target=look, name="hecate-ssh-lookup", daemon=True)
    thread.start()
    thread.join(max(0.0, deadline - time.monotonic()))
    if not box:
        raise TimeoutError
    if isinstance(box[0], OSError):
        raise box[0]
    return box[0]


def _connect(target: SshTarget, deadline: float) -> socket.socket:
    """A connection to the first address that takes one, all of them within the deadline
    (socket.create_connection gives each address the whole timeout)."""
    error: OSError = OSError(f"no address for {target.host}")
    for family, kind, proto, _, address in _lookup(target, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(left)
            sock.connect(address)
        except OSError as exc:
            sock.close()
            if isinstance(exc, TimeoutError):
                raise
            error = exc
            continue
        return sock
    raise error


def ssh_answers(target: SshTarget, timeout: float = DEFAULT_TIMEOUT) -> tuple[bool, str]:
    """(answers, one line saying what was seen). Never raises; `timeout` bounds the whole."""
    deadline = time.monotonic() + timeout
    try:
        with _connect(target, deadline) as conn:
            banner = b""
            while b"\n" not in banner and len(banner) < 256:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                conn.settimeout(left)
                chunk = conn.recv(256)
                if not chunk:
                    break
                banner += chunk
    except TimeoutError:
        return False, f"SSH at {target} did not answer within {timeout:g}s"
    except OSError as exc:
        return False, f"SSH at {target} does not answer: {exc.strerror or type(exc).__name__}"
    if banner.startswith(b"SSH-"):
        return True, f"SSH answers at {target}"
    shown = one_line(banner.decode("ascii", "replace"), 60) or "nothing"
    return False, f"{target} accepts connections but is no SSH server (said {shown!r})"
