"""Does a node's SSH answer? A TCP connect and the SSH banner (RFC 4253: "SSH-"), bounded.

What Wake-on-LAN and `none` nodes have instead of a power state, and the second opinion beside a
BMC's "on" (a BMC can say on while the OS never came up).
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

from hecate.core.power import one_line

DEFAULT_TIMEOUT = 3.0


@dataclass(frozen=True)
class SshTarget:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def ssh_answers(target: SshTarget, timeout: float = DEFAULT_TIMEOUT) -> tuple[bool, str]:
    """(answers, one line saying what was seen). Never raises; `timeout` bounds the whole."""
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((target.host, target.port), timeout=timeout) as conn:
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
