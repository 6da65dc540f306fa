"""A small client of etcd's v3 JSON gateway (``POST /v3/...`` on the client URL), stdlib only.

The twin's k3s stand-in keeps its objects in a real etcd (Debian's etcd-server 3.4) and talks to it
through this: one HTTP/1.1 keep-alive connection per thread and endpoint, TLS with a client
certificate when the endpoint is ``https`` (k3s's layout: ``server-ca.crt``, ``client.crt``,
``client.key`` under ``/var/lib/rancher/k3s/server/tls/etcd``). Keys and values travel base64
encoded, as the gateway wants. Every failure (refused, timed out, no leader, an error answer) is
an :class:`EtcdUnavailable`, an ``OSError``: the callers treat it as "etcd has no quorum".
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

Obj = dict[str, Any]


class EtcdUnavailable(OSError):  # noqa: N818 - an OSError, named for what it means to callers
    """etcd did not answer (down, no quorum, timed out) or refused the request."""


def b64(data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode()


def unb64(text: str | None) -> bytes:
    return base64.b64decode(text or "")


@dataclass(frozen=True)
class EtcdTls:
    """Client TLS: the CA that signed the servers, and this client's certificate and key."""

    ca: Path
    cert: Path
    key: Path

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca))
        context.load_cert_chain(str(self.cert), str(self.key))
        return context


class EtcdClient:
    """Requests to the first endpoint that answers (in order: a server uses its own member)."""

    def __init__(self, endpoints: list[str], tls: EtcdTls | None, timeout: float = 2.0) -> None:
        if not endpoints:
            raise ValueError("an etcd client needs at least one endpoint")
        self.endpoints = list(endpoints)
        self.tls = tls
        self.timeout = timeout
        self._local = threading.local()
        self._context: ssl.SSLContext | None = None

    def _connection(self, endpoint: str, timeout: float) -> http.client.HTTPConnection:
        pool: dict[str, http.client.HTTPConnection] = self._local.__dict__.setdefault("pool", {})
        conn = pool.get(endpoint)
        if conn is None:
            url = urlsplit(endpoint)
            host, port = url.hostname or "127.0.0.1", url.port or 2379
            if url.scheme == "https":
                if self.tls is None:
                    raise EtcdUnavailable(f"{endpoint}: https without client certificates")
                if self._context is None:
                    self._context = self.tls.context()
                conn = http.client.HTTPSConnection(
                    host, port, timeout=timeout, context=self._context
                )
            else:
                conn = http.client.HTTPConnection(host, port, timeout=timeout)
            pool[endpoint] = conn
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn

    def close(self) -> None:
        """Close this thread's connections."""
        for endpoint in list(self._local.__dict__.get("pool", {})):
            self._drop(endpoint)

    def __enter__(self) -> EtcdClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _drop(self, endpoint: str) -> None:
        pool: dict[str, http.client.HTTPConnection] = self._local.__dict__.setdefault("pool", {})
        conn = pool.pop(endpoint, None)
        if conn is not None:
            conn.close()

    def call(self, path: str, body: Obj, *, timeout: float | None = None) -> Obj:
        """``POST /v3/<path>`` on the first endpoint that answers; the decoded JSON answer."""
        errors = []
        for endpoint in self.endpoints:
            try:
                return self._call(endpoint, path, body, timeout or self.timeout)
            except EtcdUnavailable as exc:
                errors.append(f"{endpoint}: {exc}")
        raise EtcdUnavailable("; ".join(errors))

    def _call(self, endpoint: str, path: str, body: Obj, timeout: float) -> Obj:
        data = json.dumps(body).encode()
        try:
            conn = self._connection(endpoint, timeout)
            conn.request("POST", f"/v3/{path}", data, {"Content-Type": "application/json"})
            response = conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
            self._drop(endpoint)
            raise EtcdUnavailable(f"{type(exc).__name__}: {exc}") from exc
        try:
            answer: Obj = json.loads(raw) if raw else {}
        except ValueError as exc:
            raise EtcdUnavailable(f"not JSON ({response.status}): {raw[:200]!r}") from exc
        if response.status != 200 or "error" in answer:
            raise EtcdUnavailable(f"{response.status}: {answer.get('error') or answer}")
        return answer

    # -- kv ------------------------------------------------------------------------------------

    def get(self, key: str, *, keys_only: bool = False, timeout: float | None = None) -> Obj | None:
        """The key's kv (``value`` decoded to bytes, ``mod_revision`` an int), or None."""
        body: Obj = {"key": b64(key)}
        if keys_only:
            body["keys_only"] = True
        answer = self.call("kv/range", body, timeout=timeout)
        kvs = answer.get("kvs") or []
        if not kvs:
            return None
        kv: Obj = kvs[0]
        return {"value": unb64(kv.get("value")), "mod_revision": int(kv.get("mod_revision", 0))}

    def txn(self, compare: list[Obj], success: list[Obj], failure: list[Obj] | None = None) -> Obj:
        body = {"compare": compare, "success": success, "failure": failure or []}
        return self.call("kv/txn", body)

    # -- cluster -------------------------------------------------------------------------------

    def members(self, *, timeout: float | None = None) -> list[Obj]:
        """The member list: ``{"ID", "name", "peerURLs", "clientURLs"}`` each (name "" until a
        member added by ``member add`` has started)."""
        answer = self.call("cluster/member/list", {}, timeout=timeout)
        return list(answer.get("members") or [])

    def member_add(self, peer_urls: list[str]) -> list[Obj]:
        """Add a member (etcdctl member add); the member list after it."""
        answer = self.call("cluster/member/add", {"peerURLs": peer_urls})
        return list(answer.get("members") or [])

    def status(self, *, timeout: float | None = None) -> Obj:
        """The first endpoint's ``maintenance/status`` (leader, raftTerm, dbSize...)."""
        return self.call("maintenance/status", {}, timeout=timeout)


def put_op(key: str, value: bytes) -> Obj:
    return {"request_put": {"key": b64(key), "value": b64(value)}}


def range_op(key: str) -> Obj:
    return {"request_range": {"key": b64(key)}}


def delete_op(key: str) -> Obj:
    return {"request_delete_range": {"key": b64(key)}}


def compare_value(key: str, result: str, value: bytes) -> Obj:
    return {"key": b64(key), "target": "VALUE", "result": result, "value": b64(value)}


def compare_missing(key: str) -> Obj:
    return {"key": b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0"}
