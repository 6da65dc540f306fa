"""Bounded HTTP ports: connection cap, whole-request deadline, header/body bounds, backlog,
quiet hang-ups, descriptor reservation; finite timestamps and persisted seen signatures.

Real waitress servers on 127.0.0.1, real sockets; no mocks.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import resource
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hecate.adapters.http_server import (
    RESERVED_FDS,
    BoundedServer,
    Limits,
    connection_cap,
    reserve_file_descriptors,
    split_listen,
)
from hecate.adapters.metrics.registry import Metrics
from hecate.adapters.peers.http import (
    SIG_HEADER,
    TS_HEADER,
    CoordinatorHandlers,
    CoordinatorServer,
    TriggerRequest,
    sign,
    verify,
)
from hecate.errors import ConfigError

TOKEN = b"0123456789abcdef-shared-secret"


def hello(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello " + str(len(body)).encode()]


@pytest.fixture
def serve() -> Iterator[Callable[[Limits], BoundedServer]]:
    started: list[BoundedServer] = []

    def make(limits: Limits) -> BoundedServer:
        server = BoundedServer("127.0.0.1:0", hello, name="test", limits=limits)
        server.start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.close()


def get(port: int, path: str = "/", body: bytes | None = None, **headers: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("POST" if body is not None else "GET", path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def closed_by_peer(sock: socket.socket, within_s: float) -> float | None:
    """Seconds until the server closed `sock` (EOF or reset), None if it stayed open."""
    start = time.monotonic()
    sock.settimeout(within_s)
    try:
        data = sock.recv(1024)
    except TimeoutError:
        return None
    except ConnectionResetError:
        return time.monotonic() - start
    assert data == b"" or data.startswith(b"HTTP/1.1 4"), data
    return time.monotonic() - start


def refused_within(port: int, within_s: float) -> float | None:
    """Seconds until a new connection to `port` was reset or closed, None if it stayed open."""
    start = time.monotonic()
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    except ConnectionResetError:  # reset before connect() even returned
        return time.monotonic() - start
    with sock:
        waited = closed_by_peer(sock, within_s)
    return None if waited is None else time.monotonic() - start


def test_connections_over_the_cap_are_reset_at_once_and_the_port_recovers(
    serve: Callable[[Limits], BoundedServer],
) -> None:
    server = serve(Limits(max_connections=4, request_deadline_s=30))
    held = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(4)]
    try:
        deadline = time.monotonic() + 5
        while server.open_connections < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.open_connections == 4
        # Reset within a fraction of a second: not queued in the backlog behind the four.
        waited = refused_within(server.port, within_s=2)
        assert waited is not None and waited < 1.0
        assert server.refused >= 1
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 5
    while server.open_connections and time.monotonic() < deadline:
        time.sleep(0.02)
    assert get(server.port) == 200


def test_a_slow_client_is_closed_at_the_whole_request_deadline(
    serve: Callable[[Limits], BoundedServer],
) -> None:
    """One header byte every 0.2 s keeps a per-read timeout happy forever; not the deadline."""
    server = serve(Limits(request_deadline_s=1.0))
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.settimeout(0.2)
    start = time.monotonic()
    closed_at = None
    try:
        for byte in b"GET / HTTP/1.1\r\nX-Slow: " + b"a" * 100:
            try:
                sock.send(bytes([byte]))
                if sock.recv(1024) == b"":
                    closed_at = time.monotonic() - start
                    break
            except TimeoutError:
                continue
            except OSError:
                closed_at = time.monotonic() - start
                break
    finally:
        sock.close()
    assert closed_at is not None, "the slow client was never closed"
    assert 0.9 <= closed_at <= 2.6  # deadline + one sweep
    assert server.expired >= 1


def test_headers_and_bodies_are_bounded(serve: Callable[[Limits], BoundedServer]) -> None:
    server = serve(Limits(max_header_bytes=1024, max_body_bytes=100))
    assert get(server.port, "/", b"x" * 100) == 200
    assert get(server.port, "/", b"x" * 101) == 413  # body over the bound
    assert get(server.port, "/", None, **{"X-Big": "y" * 2000}) == 431  # headers over the bound


def test_the_backlog_holds_a_burst_of_concurrent_requests(
    serve: Callable[[Limits], BoundedServer],
) -> None:
    """With http.server's backlog of 5, 16-66 of 200 concurrent requests went unanswered."""
    server = serve(Limits())
    with ThreadPoolExecutor(max_workers=200) as pool:
        statuses = list(pool.map(lambda _: get(server.port), range(200)))
    assert statuses == [200] * 200


def test_a_client_that_hangs_up_gives_no_traceback(
    serve: Callable[[Limits], BoundedServer], caplog: pytest.LogCaptureFixture
) -> None:
    def big(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"x" * (4 << 20)]

    server = BoundedServer("127.0.0.1:0", big, name="test", limits=Limits())
    server.start()
    caplog.set_level(logging.DEBUG)
    try:
        for _ in range(20):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.recv(10)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()  # a reset in the middle of a 4 MiB answer
        time.sleep(0.5)
        assert get(server.port) == 200
    finally:
        server.close()
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_metrics_are_served_bounded() -> None:
    metrics = Metrics()
    port = metrics.serve("127.0.0.1:0", Limits(max_connections=2, request_deadline_s=30))
    try:
        held = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(2)]
        time.sleep(0.2)
        assert refused_within(port, within_s=2) is not None
        for sock in held:
            sock.close()
        time.sleep(0.2)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
        conn.close()
        assert "hecate_build_info" in text
    finally:
        metrics.close()


def test_file_descriptors_are_reserved_and_the_ports_capped_well_below() -> None:
    soft = reserve_file_descriptors(4096)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft >= min(4096, hard)
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == soft


@given(st.integers(min_value=RESERVED_FDS + 64, max_value=1 << 20), st.integers(1, 1 << 16))
def test_connection_cap_leaves_the_reserve(fd_limit: int, wanted: int) -> None:
    cap = connection_cap(fd_limit, wanted)
    assert 16 <= cap <= max(16, wanted)
    # Both ports full still leave at least the reserve (and half the limit) for the rest.
    assert fd_limit - 2 * cap >= min(RESERVED_FDS, fd_limit - 32)
    assert 2 * cap <= max(32, fd_limit // 2)


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("127.0.0.1:9560", ("127.0.0.1", 9560)),
        (":9560", ("0.0.0.0", 9560)),  # noqa: S104 - every interface, named on purpose
        ("[::1]:9561", ("::1", 9561)),
    ],
)
def test_listen_addresses(listen: str, expected: tuple[str, int]) -> None:
    assert split_listen(listen) == expected


@pytest.mark.parametrize("listen", ["9560", "host:", "host:http", "h:70000"])
def test_bad_listen_addresses(listen: str) -> None:
    with pytest.raises(ConfigError):
        split_listen(listen)


# --- signed requests: finite timestamps, persisted replay protection ---------------------


@pytest.mark.parametrize(
    ("timestamp", "why"),
    [
        ("nan", "float() takes it and every comparison with it is false: fresh forever"),
        ("NaN", "same, other case"),
        ("inf", "infinitely far: must not pass as a number"),
        ("-inf", "same, negative"),
        ("1e3", "exponents: not the form clients send"),
        ("-1000.0", "a sign: not the form clients send"),
        (" 1000.0", "padding"),
        ("1000.0\n", "a trailing newline"),
        ("1_000.0", "underscores, which float() takes"),
        ("", "no timestamp at all (unsigned)"),
    ],
)
def test_timestamps_must_be_plain_finite_numbers(timestamp: str, why: str) -> None:
    body = b'{"peer": "p", "reason": "r"}'
    signature = sign(TOKEN, timestamp, "POST", "/v1/trigger", body)
    headers = {TS_HEADER.lower(): timestamp, SIG_HEADER.lower(): signature}
    assert verify(TOKEN, headers, "POST", "/v1/trigger", body, 1000.0) in (
        "bad_timestamp",
        "unsigned",
    ), why


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_no_float_spelling_passes_unless_finite_and_fresh(value: float) -> None:
    timestamp = repr(value)
    body = b""
    headers = {
        TS_HEADER.lower(): timestamp,
        SIG_HEADER.lower(): sign(TOKEN, timestamp, "GET", "/v1/intent", body),
    }
    problem = verify(TOKEN, headers, "GET", "/v1/intent", body, 1000.0)
    if problem is None:
        assert 700.0 <= float(timestamp) <= 1300.0


class Recorder:
    def __init__(self) -> None:
        self.triggers: list[TriggerRequest] = []
        self.rejected: list[str] = []

    def handlers(self) -> CoordinatorHandlers:
        def trigger(request: TriggerRequest) -> bool:
            self.triggers.append(request)
            return True

        return CoordinatorHandlers(
            on_trigger=trigger,
            on_startup_request=lambda peer: "started",
            intent=lambda: {"state": "normal"},
            on_rejected=self.rejected.append,
        )


def signed_post(port: int, ts: str, body: bytes) -> int:
    headers = {TS_HEADER: ts, SIG_HEADER: sign(TOKEN, ts, "POST", "/v1/trigger", body)}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("POST", "/v1/trigger", body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def start_coordinator(seen: Path, rec: Recorder) -> CoordinatorServer:
    server = CoordinatorServer("127.0.0.1:0", TOKEN, rec.handlers(), seen_file=seen)
    server.start()
    return server


def test_a_captured_request_is_still_refused_after_a_restart(tmp_path: Path) -> None:
    seen = tmp_path / "state" / "coordination-seen.json"
    body = b'{"peer": "p", "reason": "r"}'
    ts = f"{time.time():.3f}"
    rec = Recorder()
    first = start_coordinator(seen, rec)
    try:
        assert signed_post(first.port, ts, body) == 202
    finally:
        first.close()
    assert json.loads(seen.read_text())["signatures"]  # persisted
    again = start_coordinator(seen, rec)  # "after a restart"
    try:
        assert signed_post(again.port, ts, body) == 401
        assert rec.rejected == ["replayed"]
        fresh = f"{time.time() + 0.01:.3f}"
        assert signed_post(again.port, fresh, body) == 202  # a new request is fine
    finally:
        again.close()
    assert len(rec.triggers) == 2


def test_unreadable_seen_signatures_accept_only_requests_signed_after_the_start(
    tmp_path: Path,
) -> None:
    seen = tmp_path / "coordination-seen.json"
    seen.write_text("{not json")
    body = b'{"peer": "p", "reason": "r"}'
    captured = f"{time.time() - 5:.3f}"  # signed before this start, maybe seen before
    rec = Recorder()
    server = start_coordinator(seen, rec)
    try:
        assert signed_post(server.port, captured, body) == 401
        assert signed_post(server.port, f"{time.time():.3f}", body) == 202
    finally:
        server.close()
    assert rec.rejected == ["replayed"]
    assert list(tmp_path.glob("coordination-seen.json.corrupt-*"))  # kept for inspection


def test_seen_signatures_older_than_the_window_are_forgotten(tmp_path: Path) -> None:
    seen = tmp_path / "coordination-seen.json"
    now = time.time()
    seen.write_text(json.dumps({"signatures": {"old": now - 3600, "recent": now - 10}}))
    server = CoordinatorServer("127.0.0.1:0", TOKEN, Recorder().handlers(), seen_file=seen)
    try:
        assert server.first_use("old", now)  # forgotten: the timestamp check refuses it anyway
        assert not server.first_use("recent", now)
    finally:
        server.close()


def test_a_flood_of_idle_connections_does_not_block_a_signed_request(tmp_path: Path) -> None:
    """Idle connections up to the cap, a signed request still answered at once."""
    rec = Recorder()
    server = CoordinatorServer(
        "127.0.0.1:0",
        TOKEN,
        rec.handlers(),
        seen_file=tmp_path / "seen.json",
        limits=Limits(max_connections=64, request_deadline_s=2),
    )
    server.start()
    idle: list[socket.socket] = []
    try:
        for _ in range(200):  # far over the cap: the excess is reset, nothing queues
            with contextlib.suppress(OSError):
                idle.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))
        start = time.monotonic()
        statuses: list[int] = []

        def attempt() -> None:
            for _ in range(20):
                try:
                    statuses.append(
                        signed_post(server.port, f"{time.time():.3f}", b'{"peer":"p","reason":"r"}')
                    )
                    return
                except (OSError, http.client.HTTPException):
                    time.sleep(0.2)

        thread = threading.Thread(target=attempt)
        thread.start()
        thread.join(10)
        assert statuses == [202]
        assert time.monotonic() - start < 5
    finally:
        for sock in idle:
            sock.close()
        server.close()


def test_queueing_is_debug_not_a_warning_per_request(caplog: pytest.LogCaptureFixture) -> None:
    """waitress warns "Task queue depth" for every queued request: a flood would fill the log."""
    caplog.set_level(logging.DEBUG)
    logging.getLogger("waitress.queue").warning("Task queue depth is %d", 3)
    logging.getLogger("waitress.queue").warning("something else")
    levels = [(r.getMessage(), r.levelno) for r in caplog.records]
    assert ("Task queue depth is 3", logging.DEBUG) in levels
    assert ("something else", logging.WARNING) in levels
