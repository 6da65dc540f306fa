"""Post-start probes from the Hecate host: an HTTP(S) GET expecting a status, or a TCP connect.

One port: `probe_once` touches the network (httpx, as the Kubernetes client does; sockets for
TCP) and never raises; `run_probe` adds the retries.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

import httpx2

from hecate.config.startup import StartupProbe


@dataclass(frozen=True)
class ProbeResult:
    label: str
    ok: bool
    attempts: int
    detail: str


def _host_port(target: str) -> tuple[str, int]:
    host, _, port = target.rpartition(":")
    return host.strip("[]"), int(port)


def probe_once(probe: StartupProbe) -> tuple[bool, str]:
    """(passed, what was seen)."""
    if probe.kind == "tcp":
        host, port = _host_port(probe.target)
        try:
            with socket.create_connection((host, port), timeout=probe.timeout_seconds):
                return True, f"TCP {host}:{port} accepts connections"
        except OSError as exc:
            return False, f"TCP {host}:{port}: {exc.strerror or type(exc).__name__}"
    try:
        with httpx2.Client(
            timeout=probe.timeout_seconds, verify=probe.verify_tls, trust_env=False
        ) as client:
            response = client.get(probe.target)
    except httpx2.TimeoutException:
        return False, f"GET {probe.target}: no answer within {probe.timeout_seconds:g}s"
    except httpx2.HTTPError as exc:
        return False, f"GET {probe.target}: {type(exc).__name__}: {exc}"
    if response.status_code != probe.expected_status:
        return False, (
            f"GET {probe.target}: status {response.status_code}, expected {probe.expected_status}"
        )
    return True, f"GET {probe.target}: {response.status_code}"


def run_probe(
    probe: StartupProbe,
    *,
    sleep: Callable[[float], None],
    cancel: threading.Event | None = None,
) -> ProbeResult:
    """Try 1 + retries times, retry_interval_seconds apart; the last answer is the detail."""
    detail = ""
    for attempt in range(1, probe.retries + 2):
        ok, detail = probe_once(probe)
        if ok:
            return ProbeResult(probe.label, True, attempt, detail)
        if cancel is not None and cancel.is_set():
            break
        if attempt <= probe.retries:
            sleep(probe.retry_interval_seconds)
    return ProbeResult(probe.label, False, attempt, f"{detail} (after {attempt} attempt(s))")
