"""Signed peer requests: signatures, freshness, rejection, retries; a real server on 127.0.0.1."""

from __future__ import annotations

import http.client
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hecate.adapters.peers.http import (
    SIG_HEADER,
    TS_HEADER,
    CoordinatorClient,
    CoordinatorHandlers,
    CoordinatorServer,
    CoordinatorUnreachableError,
    TriggerRequest,
    read_token,
    sign,
    verify,
)
from hecate.config.checks import secret_file_errors
from hecate.config.model import parse_config
from hecate.errors import ConfigError, HecateError

TOKEN = b"0123456789abcdef-shared-secret"


def _headers(ts: str, sig: str) -> dict[str, str]:
    return {TS_HEADER.lower(): ts, SIG_HEADER.lower(): sig}


def test_verify_accepts_fresh_signed_requests_only() -> None:
    now = 1000.0
    body = b'{"peer": "p", "reason": "r"}'
    good = sign(TOKEN, "1000.0", "POST", "/v1/trigger", body)
    assert verify(TOKEN, _headers("1000.0", good), "POST", "/v1/trigger", body, now) is None
    assert verify(TOKEN, {}, "POST", "/v1/trigger", body, now) == "unsigned"
    assert verify(TOKEN, _headers("x", good), "POST", "/v1/trigger", body, now) == "bad_timestamp"
    stale = sign(TOKEN, "100.0", "POST", "/v1/trigger", body)
    assert verify(TOKEN, _headers("100.0", stale), "POST", "/v1/trigger", body, now) == "stale"
    for path, payload in (("/v1/startup", body), ("/v1/trigger", body + b" ")):
        assert verify(TOKEN, _headers("1000.0", good), "POST", path, payload, now) == (
            "bad_signature"
        )
    other = sign(b"another-secret-of-16+", "1000.0", "POST", "/v1/trigger", body)
    assert verify(TOKEN, _headers("1000.0", other), "POST", "/v1/trigger", body, now) == (
        "bad_signature"
    )


def test_token_file_rules(tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_text("abc\n")
    with pytest.raises(ConfigError, match="shorter"):
        read_token(short)
    with pytest.raises(ConfigError, match="cannot read"):
        read_token(tmp_path / "missing")
    ok = tmp_path / "ok"
    ok.write_bytes(TOKEN + b"\n")
    ok.chmod(0o600)  # a token others can read is refused (test_a_token_others_can_read_...)
    assert read_token(ok) == TOKEN


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o660, 0o620, 0o666])
def test_a_token_others_can_read_or_its_group_write_is_refused(tmp_path: Path, mode: int) -> None:
    """The one deliberate change of issue 24: the token signs every trigger, so a token file
    others can read (or its group write) is refused with the fix, as config check says too."""
    loose = tmp_path / "token"
    loose.write_bytes(TOKEN + b"\n")
    loose.chmod(mode)
    with pytest.raises(ConfigError, match=r"accessible by others or writable by its group") as err:
        read_token(loose)
    assert f"chmod 600 {loose}" in str(err.value)
    assert TOKEN.decode() not in str(err.value)
    config = parse_config(
        {"coordination": {"token_file": str(loose)}, "ups": {"target": "pyrphoros@localhost"}}
    )
    assert any("the daemon refuses it" in e for e in secret_file_errors(config))
    loose.chmod(0o640)  # the installer's root:hecate-daemon 0640 is read by the group
    assert read_token(loose) == TOKEN
    assert secret_file_errors(config) == []


@pytest.mark.timeout(20)
def test_a_token_that_is_not_a_regular_file_is_refused_without_blocking(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a regular file"):
        read_token(tmp_path)  # a directory
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)  # no writer: a blocking read would hang here
    with pytest.raises(ConfigError, match="not a regular file"):
        read_token(fifo)


class Recorder:
    def __init__(self) -> None:
        self.triggers: list[TriggerRequest] = []
        self.rejected: list[str] = []
        self.startups: list[str] = []

    def handlers(self) -> CoordinatorHandlers:
        return CoordinatorHandlers(
            on_trigger=self.on_trigger,
            on_startup_request=self.on_startup,
            intent=lambda: {"state": "normal"},
            on_rejected=self.rejected.append,
        )

    def on_trigger(self, request: TriggerRequest) -> bool:
        self.triggers.append(request)
        return len(self.triggers) == 1  # later ones are duplicates

    def on_startup(self, peer: str) -> str:
        self.startups.append(peer)
        return "started"


@pytest.fixture
def server() -> Iterator[tuple[CoordinatorServer, Recorder]]:
    recorder = Recorder()
    srv = CoordinatorServer("127.0.0.1:0", TOKEN, recorder.handlers())
    srv.start()
    try:
        yield srv, recorder
    finally:
        srv.close()


def test_trigger_round_trip_and_duplicates(server: tuple[CoordinatorServer, Recorder]) -> None:
    srv, rec = server
    client = CoordinatorClient(f"127.0.0.1:{srv.port}", TOKEN)
    assert client.send_trigger("peer-a", "runtime low") == {"accepted": True, "duplicate": False}
    assert client.send_trigger("peer-a", "runtime low")["duplicate"] is True
    assert rec.triggers[0] == TriggerRequest("peer-a", "runtime low")
    assert client.intent() == {"state": "normal"}
    assert client.request_startup("peer-a")["status"] == "started"


def test_bad_token_is_rejected_and_not_acted_on(server: tuple[CoordinatorServer, Recorder]) -> None:
    srv, rec = server
    client = CoordinatorClient(f"127.0.0.1:{srv.port}", b"wrong-token-0123456789")
    with pytest.raises(HecateError, match="HTTP 401"):
        client.send_trigger("intruder", "boom")
    assert rec.triggers == []
    assert rec.rejected == ["bad_signature"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "malformed"),
        (b'{"peer": 5, "reason": "x"}', "malformed"),
        (b"[]", "malformed"),
    ],
)
def test_malformed_signed_requests_are_rejected(
    server: tuple[CoordinatorServer, Recorder], body: bytes, reason: str
) -> None:
    srv, rec = server
    ts = f"{time.time():.3f}"
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    try:
        conn.request(
            "POST",
            "/v1/trigger",
            body=body,
            headers={TS_HEADER: ts, SIG_HEADER: sign(TOKEN, ts, "POST", "/v1/trigger", body)},
        )
        response = conn.getresponse()
        assert response.status == 400
        assert "malformed" in json.loads(response.read())["error"]
    finally:
        conn.close()
    assert rec.triggers == []
    assert rec.rejected == [reason]


def test_unsigned_request_is_rejected(server: tuple[CoordinatorServer, Recorder]) -> None:
    srv, rec = server
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    try:
        conn.request("POST", "/v1/trigger", body=b'{"peer": "p", "reason": "r"}')
        assert conn.getresponse().status == 401
    finally:
        conn.close()
    assert rec.rejected == ["unsigned"]


def test_unreachable_coordinator_retries_with_backoff_then_gives_up() -> None:
    sleeps: list[float] = []
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = CoordinatorClient(
        f"127.0.0.1:{port}", TOKEN, attempts=4, backoff_s=0.5, sleep=sleeps.append
    )
    with pytest.raises(CoordinatorUnreachableError, match="after 4 attempts"):
        client.send_trigger("p", "r")
    assert sleeps == [0.5, 1.0, 2.0]


def test_a_replayed_request_is_refused(server: tuple[CoordinatorServer, Recorder]) -> None:
    srv, rec = server
    body = b'{"peer": "p", "reason": "r"}'
    ts = f"{time.time():.3f}"
    headers = {TS_HEADER: ts, SIG_HEADER: sign(TOKEN, ts, "POST", "/v1/trigger", body)}
    statuses = []
    for _ in range(2):
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
        try:
            conn.request("POST", "/v1/trigger", body=body, headers=headers)
            statuses.append(conn.getresponse().status)
        finally:
            conn.close()
    assert statuses == [202, 401]
    assert len(rec.triggers) == 1
    assert rec.rejected == ["replayed"]
