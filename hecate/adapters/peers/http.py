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
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

from hecate.adapters.http_server import BoundedServer, Limits
from hecate.adapters.secret_file import read_secret_file
from hecate.adapters.statedir.files import atomic_write_json, read_json
from hecate.config.addresses import Address, ListenAddress
from hecate.core.peers import NoPeers, PeerIntent, Peers, parse_peer_intent
from hecate.errors import ConfigError, HecateError, StateError

log = logging.getLogger(__name__)

MAX_SKEW_S = 300.0
MAX_BODY = 64 * 1024
MAX_SEEN = 10_000  # signatures remembered for replay protection (a flood is refused, not stored)
TS_HEADER = "X-Hecate-Timestamp"
SIG_HEADER = "X-Hecate-Signature"
TIMESTAMP_RE = re.compile(r"[0-9]{1,12}(\.[0-9]{1,9})?")
SEEN_FILE = "coordination-seen.json"


class CoordinatorUnreachableError(HecateError):
    """The coordinator did not accept the request after every retry."""


def read_token(path: Path) -> bytes:
    """The coordination token in `path` (surrounding blanks removed), read by the one
    secret-file rule (hecate/adapters/secret_file.py): a loose token file (readable by others,
    writable by its group, someone else's) is refused, as is a token shorter than 16 bytes."""
    return read_secret_file(path, "coordination token file", loose="refuse", min_bytes=16).strip()


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
    # Seconds since the epoch, plain digits: no nan, inf, exponent or sign (float() takes them).
    if not TIMESTAMP_RE.fullmatch(timestamp):
        return "bad_timestamp"
    sent = float(timestamp)
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


class SeenSignatures:
    """Signatures of accepted requests, kept for the freshness window and across restarts.

    Persisted (atomically) in the state dir, so a request captured before a restart is still
    refused after it. When the file cannot be read, only requests signed after this start are
    accepted: nothing captured earlier can be replayed.
    """

    def __init__(self, path: Path | None, now: float) -> None:
        self.path = path
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()
        self.not_before = -math.inf
        if path is None:
            return
        try:
            data = read_json(path)
        except StateError as exc:
            log.error("seen signatures unreadable (%s); accepting only new requests", exc)
            self.not_before = now
            return
        entries = data.get("signatures") if isinstance(data, dict) else None
        if data is not None and not isinstance(entries, dict):
            log.error("seen signatures in %s have no signatures map; accepting only new ones", path)
            self.not_before = now
            return
        for signature, seen_at in (entries or {}).items():
            fresh = isinstance(seen_at, int | float) and now - seen_at <= 2 * MAX_SKEW_S
            if fresh and math.isfinite(seen_at):
                self._seen[str(signature)] = float(seen_at)

    def first_use(self, signature: str, sent: float, now: float) -> bool:
        """False for a signature seen before within the freshness window (a replayed request),
        or signed before `not_before`; True records it."""
        with self._lock:
            if sent < self.not_before:
                return False
            for old, seen_at in list(self._seen.items()):
                if now - seen_at > 2 * MAX_SKEW_S:
                    del self._seen[old]
            if signature in self._seen or len(self._seen) >= MAX_SEEN:
                return False
            self._seen[signature] = now
            snapshot = dict(self._seen)
            if self.path is not None:
                try:
                    atomic_write_json(self.path, {"signatures": snapshot})
                except StateError as exc:
                    # The request is authentic: it is served; only its replay after a restart
                    # is no longer refused.
                    log.error("cannot persist seen signatures: %s", exc)
            return True


def _reply(
    start_response: Callable[..., Any], code: HTTPStatus, payload: dict[str, Any]
) -> list[bytes]:
    body = json.dumps(payload).encode()
    start_response(
        f"{code.value} {code.phrase}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]


class CoordinatorServer:
    """The signed endpoints (/v1/trigger, /v1/startup, /v1/intent) on a bounded server."""

    def __init__(
        self,
        listen: ListenAddress | str,
        token: bytes,
        handlers: CoordinatorHandlers,
        *,
        seen_file: Path | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.token = token
        self.handlers = handlers
        self.seen = SeenSignatures(seen_file, time.time())
        self._server = BoundedServer(
            listen, self.app, name="coordination", limits=limits or Limits(max_body_bytes=MAX_BODY)
        )

    def first_use(self, signature: str, now: float, sent: float | None = None) -> bool:
        return self.seen.first_use(signature, now if sent is None else sent, now)

    def _authentic_body(self, environ: dict[str, Any], method: str, path: str) -> bytes | str:
        """The body of an authentic, fresh, first-seen request, else the reason it is not."""
        try:
            length = int(environ.get("CONTENT_LENGTH") or "0")
        except ValueError:
            return "malformed"
        if not 0 <= length <= MAX_BODY:
            return "malformed"
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {
            TS_HEADER.lower(): environ.get("HTTP_X_HECATE_TIMESTAMP", ""),
            SIG_HEADER.lower(): environ.get("HTTP_X_HECATE_SIGNATURE", ""),
        }
        now = time.time()
        problem = verify(self.token, headers, method, path, body, now)
        if problem is not None:
            return problem
        if not self.seen.first_use(
            headers[SIG_HEADER.lower()], float(headers[TS_HEADER.lower()]), now
        ):
            return "replayed"
        return bytes(body)

    def app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET"))
        path = str(environ.get("REQUEST_URI") or environ.get("PATH_INFO", "/"))
        routes = {("GET", "/v1/intent"), ("POST", "/v1/trigger"), ("POST", "/v1/startup")}
        if (method, path) not in routes:
            return _reply(start_response, HTTPStatus.NOT_FOUND, {"error": "not found"})
        body = self._authentic_body(environ, method, path)
        if isinstance(body, str):
            self.handlers.on_rejected(body)
            code = HTTPStatus.BAD_REQUEST if body == "malformed" else HTTPStatus.UNAUTHORIZED
            return _reply(start_response, code, {"error": body})
        if path == "/v1/intent":
            return _reply(start_response, HTTPStatus.OK, self.handlers.intent())
        try:
            request = parse_trigger(body)
        except (ValueError, UnicodeDecodeError) as exc:
            self.handlers.on_rejected("malformed")
            return _reply(start_response, HTTPStatus.BAD_REQUEST, {"error": f"malformed: {exc}"})
        if path == "/v1/trigger":
            started = self.handlers.on_trigger(request)
            return _reply(
                start_response, HTTPStatus.ACCEPTED, {"accepted": True, "duplicate": not started}
            )
        status = self.handlers.on_startup_request(request.peer)
        return _reply(start_response, HTTPStatus.ACCEPTED, {"accepted": True, "status": status})

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def http(self) -> BoundedServer:
        return self._server

    def start(self) -> None:
        self._server.start()

    def close(self) -> None:
        self._server.close()


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
        # Imported here: http.client imports ssl and email, 2 MB the idle daemon does not need
        # unless it has peers to ask (docs/benchmarks.md, "The daemon's idle RSS").
        import http.client  # noqa: PLC0415

        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        try:
            conn.request(method, path, body=body or None, headers=headers)
            response = conn.getresponse()
            raw = response.read()
        except http.client.HTTPException as exc:
            raise OSError(f"bad HTTP answer: {exc}") from exc
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
            except (OSError, json.JSONDecodeError) as exc:
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


class HttpPeers:
    """The Peers port over the signed `/v1/intent` endpoint of every coordination.peer_hosts."""

    def __init__(self, addresses: Sequence[Address], token: bytes) -> None:
        self.clients = [
            (str(a), CoordinatorClient(a, token, attempts=2, backoff_s=0.5)) for a in addresses
        ]

    def intents(self) -> list[PeerIntent]:
        answers = []
        for address, client in self.clients:
            try:
                answers.append(parse_peer_intent(address, client.intent()))
            except CoordinatorUnreachableError:
                continue  # a down instance starts nothing
            except HecateError:  # it answered, with a refusal: its state is unknown (busy)
                answers.append(parse_peer_intent(address, {}))
        return answers


def peers_from_config(addresses: Sequence[Address], token_file: Path | None) -> Peers:
    """The peers to ask; none configured asks nobody. Peers without a token cannot be asked:
    a ConfigError, since silently skipping them would skip the guard."""
    if not addresses:
        return NoPeers()
    if token_file is None:
        raise ConfigError("coordination.token_file is needed to ask coordination.peer_hosts")
    return HttpPeers(addresses, read_token(token_file))
