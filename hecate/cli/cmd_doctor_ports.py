"""`hecate doctor`'s port checks: the metrics and coordination ports can be bound, or are
served by a running Hecate (another program holding one fails)."""

from __future__ import annotations

import errno
import http.client
import socket

from hecate.config.model import HecateConfig
from hecate.core.doctor.findings import Finding, fail, ok


def port_checks(cfg: HecateConfig) -> list[Finding]:
    findings = [_port("metrics.listen", cfg.metrics.listen, "/metrics")]
    if cfg.coordination.token_file is not None:
        findings.append(_port("coordination.listen", cfg.coordination.listen, "/v1/intent"))
    return findings


def _port(key: str, listen: str, path: str) -> Finding:
    host, _, port_text = listen.rpartition(":")
    port = int(port_text)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((host, port))
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            return fail(key, f"cannot bind {listen}: {exc.strerror}", f"fix {key}")
        if _served_by_hecate(host or "127.0.0.1", port, path):
            return ok(key, f"{listen} is served by a running Hecate")
        return fail(
            key,
            f"{listen} is in use by another program",
            f"choose a free port for {key} (ss -ltnp shows who holds {port})",
        )
    finally:
        sock.close()
    return ok(key, f"{listen} can be bound")


def _served_by_hecate(host: str, port: int, path: str) -> bool:
    conn = http.client.HTTPConnection(host, port, timeout=3.0)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read(1 << 20).decode("utf-8", "replace")
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()
    if path == "/metrics":
        return "hecate_" in body
    return response.status == 401 and body.lstrip().startswith("{")
