"""Coordinator and peers: peers forward shutdown triggers to the coordinator over signed HTTP.

Why HTTP with a shared secret rather than SSH with a forced command: it needs no SSH keys or
accounts between Hecate hosts, the coordinator's daemon receives the trigger directly (no second
process racing for the lock), and it is easy to test against real sockets. The secret never
crosses the wire: each request carries a timestamp and an HMAC-SHA256 of
(timestamp, method, path, body), compared in constant time; requests more than
`MAX_SKEW_S` away from the server's clock are refused, and a signature is accepted only once
within that window (replays are refused and counted).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from hecate.addresses import Address, ListenAddress
from hecate.errors import ConfigError, HecateError

log = logging.getLogger(__name__)

MAX_SKEW_S = 300.0
MAX_BODY = 64 * 1024
MAX_SEEN = 10_000  # signatures remembered for replay protection (a flood is refused, not stored)
TS_HEADER = "X-Hecate-Timestamp"
SIG_HEADER = "X-Hecate-Signature"


class CoordinatorUnreachableError(HecateError):
    """The coordinator did not accept the request after every retry."""


def read_token(path: Path) -> bytes:
    try:
        token = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read coordination token file {path}: {exc.strerror}") from None
    if len(token) < 16:
        raise ConfigError(f"coordination token in {path} is shorter than 16 bytes")
    return token


def sign(token: bytes, timestamp: str, method: str, path: str, body: bytes) -> str:
    message = b"\n".join([timestamp.encode(), method.upper().encode(), path.encode(), body])
    return hmac.new(token, message, hashlib.sha256).hexdigest()


def verify(
    token: bytes,
    headers: dict[str, str],
    method: str,
    path: str,
    body: bytes,
    now: float,
) -> str | None:
    """None when the request is authentic and fresh, else the reason it is not."""
    timestamp = headers.get(TS_HEADER.lower(), "")
    signature = headers.get(SIG_HEADER.lower(), "")
    if not timestamp or not signature:
        return "unsigned"
    try:
        sent = float(timestamp)
    except ValueError:
        return "bad_timestamp"
    if abs(now - sent) > MAX_SKEW_S:
        return "stale"
    expected = sign(token, timestamp, method, path, body)
    if not hmac.compare_digest(expected, signature):
        return "bad_signature"
    return None


@dataclass(frozen=True)
class TriggerRequest:
    peer: str
    reason: str


def parse_trigger(body: bytes) -> TriggerRequest:
    data = json.loads(body.decode("utf-8"))
    if not isinstance(data, dict):
        raise ValueError("expected an object")
    peer, reason = data.get("peer"), data.get("reason")
    if not isinstance(peer, str) or not peer or len(peer) > 253:
        raise ValueError("peer must be a host name")
    if not isinstance(reason, str) or len(reason) > 1000:
        raise ValueError("reason must be a short string")
    return TriggerRequest(peer, reason)


# --------------------------------------------------------------------------------------------
# Server (coordinator)


@dataclass
class CoordinatorHandlers:
    on_trigger: Callable[[TriggerRequest], bool]  # True when this trigger started a shutdown
    on_startup_request: Callable[[str], str]  # returns a short status text
    intent: Callable[[], dict[str, Any]]
    on_rejected: Callable[[str], None]


class CoordinatorServer:
    def __init__(
        self, listen: ListenAddress | str, token: bytes, handlers: CoordinatorHandlers
    ) -> None:
        bound = ListenAddress.parse(listen)  # a no-op for the config's already parsed value
        host, port = bound.host, bound.port
        self.token = token
        self.handlers = handlers
        outer = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "hecate"
            timeout = 10  # a slow or silent client never holds a thread for long

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("coordination: " + format, *args)

            def _reply(self, code: int, payload: dict[str, Any]) -> None:
                body = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _authentic_body(self) -> bytes | None:
                try:
                    length = int(self.headers.get("Content-Length", "0"))
                except ValueError:
                    length = -1
                if not 0 <= length <= MAX_BODY:
                    outer.handlers.on_rejected("malformed")
                    self._reply(HTTPStatus.BAD_REQUEST, {"error": "bad length"})
                    return None
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                now = time.time()
                problem = verify(outer.token, headers, self.command, self.path, body, now)
                if problem is None and not outer.first_use(headers[SIG_HEADER.lower()], now):
                    problem = "replayed"
                if problem is not None:
                    outer.handlers.on_rejected(problem)
                    self._reply(HTTPStatus.UNAUTHORIZED, {"error": problem})
                    return None
                return body

            def do_GET(self) -> None:
                if self.path != "/v1/intent":
                    self._reply(HTTPStatus.NOT_FOUND, {"error": "not found"})
                    return
                if self._authentic_body() is None:
                    return
                self._reply(HTTPStatus.OK, outer.handlers.intent())

            def do_POST(self) -> None:
                if self.path not in ("/v1/trigger", "/v1/startup"):
                    self._reply(HTTPStatus.NOT_FOUND, {"error": "not found"})
                    return
                body = self._authentic_body()
                if body is None:
                    return
                try:
                    request = parse_trigger(body)
                except (ValueError, UnicodeDecodeError) as exc:
                    outer.handlers.on_rejected("malformed")
                    self._reply(HTTPStatus.BAD_REQUEST, {"error": f"malformed: {exc}"})
                    return
                if self.path == "/v1/trigger":
                    started = outer.handlers.on_trigger(request)
                    self._reply(HTTPStatus.ACCEPTED, {"accepted": True, "duplicate": not started})
                else:
                    status = outer.handlers.on_startup_request(request.peer)
                    self._reply(HTTPStatus.ACCEPTED, {"accepted": True, "status": status})

        # An empty host binds every interface (peers connect over the network);
        # coordination.listen narrows it.
        self._seen: dict[str, float] = {}
        self._seen_lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, int(port)), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def first_use(self, signature: str, now: float) -> bool:
        """False for a signature seen before within the freshness window (a replayed request)."""
        with self._seen_lock:
            for old, seen_at in list(self._seen.items()):
                if now - seen_at > 2 * MAX_SKEW_S:
                    del self._seen[old]
            if signature in self._seen or len(self._seen) >= MAX_SEEN:
                return False
            self._seen[signature] = now
            return True

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


# --------------------------------------------------------------------------------------------
# Client (peer)


class _HttpStatusError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(f"HTTP {code}")
        self.code = code


class CoordinatorClient:
    def __init__(
        self,
        address: Address | str,
        token: bytes,
        *,
        timeout_s: float = 3.0,
        attempts: int = 4,
        backoff_s: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        parsed = Address.parse(address)  # a no-op for the config's already parsed value
        self.host, self.port = parsed.host, parsed.port
        self.base = f"http://{address}"
        self.token = token
        self.timeout_s = timeout_s
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.sleep = sleep

    def _request(self, method: str, path: str, payload: dict[str, Any] | None) -> dict[str, Any]:
        body = json.dumps(payload).encode() if payload is not None else b""
        timestamp = f"{time.time():.3f}"
        headers = {
            TS_HEADER: timestamp,
            SIG_HEADER: sign(self.token, timestamp, method, path, body),
            "Content-Type": "application/json",
        }
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        try:
            conn.request(method, path, body=body or None, headers=headers)
            response = conn.getresponse()
            raw = response.read()
        finally:
            conn.close()
        if response.status >= 300:
            raise _HttpStatusError(response.status)
        data = json.loads(raw.decode() or "{}")
        return data if isinstance(data, dict) else {}

    def call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        """The request, retried with exponential backoff; CoordinatorUnreachableError at the end."""
        last = ""
        for attempt in range(self.attempts):
            try:
                return self._request(method, path, payload)
            except _HttpStatusError as exc:
                if exc.code in (400, 401, 404):
                    raise HecateError(f"coordinator refused {path}: HTTP {exc.code}") from None
                last = f"HTTP {exc.code}"
            except (OSError, http.client.HTTPException, json.JSONDecodeError) as exc:
                last = str(exc) or type(exc).__name__
            if attempt + 1 < self.attempts:
                self.sleep(self.backoff_s * (2**attempt))
        raise CoordinatorUnreachableError(
            f"coordinator {self.base} unreachable after {self.attempts} attempts ({last})"
        )

    def send_trigger(self, peer: str, reason: str) -> dict[str, Any]:
        return self.call("POST", "/v1/trigger", {"peer": peer, "reason": reason})

    def request_startup(self, peer: str) -> dict[str, Any]:
        return self.call("POST", "/v1/startup", {"peer": peer, "reason": "peer failover"})

    def intent(self) -> dict[str, Any]:
        return self.call("GET", "/v1/intent")
