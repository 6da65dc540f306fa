"""Redfish against odd BMCs (a real HTTP server on 127.0.0.1 answering oddly): whatever it
answers, the driver returns a value with one bounded line, never raises, and never sends the
credentials anywhere but the configured BMC."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from hecate.adapters.power.redfish import RedfishDriver
from hecate.config.model import parse_config
from hecate.config.power import RedfishPower
from hecate.core.doctor.power import bmc_finding

SECRET = "s3cret-Pa55"  # noqa: S105 - a test password


class OddBmc(ThreadingHTTPServer):
    daemon_threads = True
    answer: tuple[int, dict[str, str], bytes] = (200, {}, b"{}")
    seen: list[tuple[str, str, str | None]]


class Handler(BaseHTTPRequestHandler):
    server: OddBmc

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        self.server.seen.append((self.command, self.path, self.headers.get("Authorization")))
        if self.path.startswith("/elsewhere"):
            status, headers, body = 200, dict[str, str](), b'{"PowerState": "On"}'
        else:
            status, headers, body = self.server.answer
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()


@pytest.fixture
def bmc() -> Iterator[OddBmc]:
    server = OddBmc(("127.0.0.1", 0), Handler)
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def _driver(server: OddBmc, tmp_path: Path) -> RedfishDriver:
    secret = tmp_path / "bmc-pass"
    secret.write_text(SECRET + "\n")
    secret.chmod(0o600)
    config = RedfishPower.model_validate(
        {
            "method": "redfish",
            "url": f"http://127.0.0.1:{server.server_address[1]}",
            "user": "admin",
            "password_file": str(secret),
        }
    )
    return RedfishDriver("titan-2", config, timeout=5)


def test_deeply_nested_json_is_an_unknown_state_not_a_crash(bmc: OddBmc, tmp_path: Path) -> None:
    bmc.answer = (200, {}, b"[" * 100_000)
    driver = _driver(bmc, tmp_path)
    reading = driver.status()
    assert reading.state == "unknown"
    assert "JSON" in reading.reason
    result = driver.act("on")
    assert not result.ok and "JSON" in result.reason


def test_an_odd_power_state_is_shown_on_one_bounded_line(bmc: OddBmc, tmp_path: Path) -> None:
    bmc.answer = (200, {}, json.dumps({"PowerState": "x\n" * 5000}).encode())
    reading = _driver(bmc, tmp_path).status()
    assert reading.state == "unknown"
    assert "\n" not in reading.reason
    assert len(reading.reason) <= 300


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_refused_and_the_credentials_stay_with_the_bmc(
    bmc: OddBmc, tmp_path: Path, status: int
) -> None:
    bmc.answer = (status, {"Location": "/elsewhere"}, b"")
    driver = _driver(bmc, tmp_path)
    reading = driver.status()
    assert reading.state == "unknown"
    assert f"HTTP {status}" in reading.reason and "redirect" in reading.reason
    # a POST answered with a redirect did not reset anything: not "accepted"
    result = driver.act("on")
    assert not result.ok and f"HTTP {status}" in result.reason
    assert [path for _, path, _ in bmc.seen if path.startswith("/elsewhere")] == []


@pytest.fixture
def raw_bmc() -> Iterator[tuple[int, list[Any]]]:
    """A TCP server answering each connection with the callable in `jobs[0]` (given the
    connected socket): HTTP as broken as a BMC can make it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.1)  # accept() wakes up to see the stop
    jobs: list[Any] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            threading.Thread(target=jobs[0], args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], jobs
    stop.set()
    server.close()
    thread.join(5)


def _raw_driver(port: int, tmp_path: Path, timeout: float) -> RedfishDriver:
    secret = tmp_path / "bmc-pass"
    secret.write_text(SECRET + "\n")
    secret.chmod(0o600)
    config = RedfishPower.model_validate(
        {
            "method": "redfish",
            "url": f"http://127.0.0.1:{port}",
            "user": "admin",
            "password_file": str(secret),
        }
    )
    return RedfishDriver("titan-2", config, timeout=timeout)


@pytest.mark.parametrize(
    "answer",
    [
        b"garbage\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70_000 + b"\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n" + b"X: a\r\n" * 200 + b"\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"",
    ],
    ids=["garbage", "long-header", "many-headers", "bad-chunk", "nothing"],
)
def test_broken_http_is_an_unknown_state_not_a_crash(
    raw_bmc: tuple[int, list[Any]], tmp_path: Path, answer: bytes
) -> None:
    port, jobs = raw_bmc

    def reply(conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            conn.sendall(answer)

    jobs.append(reply)
    driver = _raw_driver(port, tmp_path, timeout=3)
    reading = driver.status()
    assert reading.state == "unknown"
    assert "\n" not in reading.reason and SECRET not in reading.reason
    assert not driver.act("hard_off").ok


def test_a_bmc_that_trickles_its_answer_is_bounded_as_a_whole(
    raw_bmc: tuple[int, list[Any]], tmp_path: Path
) -> None:
    """One byte a little faster than the socket timeout: each read succeeds, the whole never
    ends; the driver's timeout bounds the whole call."""
    port, jobs = raw_bmc
    done = threading.Event()

    def trickle(conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 200:
                if done.is_set():
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return
                time.sleep(0.2)

    jobs.append(trickle)
    started = time.monotonic()
    reading = _raw_driver(port, tmp_path, timeout=1).status()
    took = time.monotonic() - started
    done.set()
    assert reading.state == "unknown"
    assert "did not answer within 1s" in reading.reason
    assert took < 3


@pytest.mark.parametrize("said", ["PoweringOn", "PoweringOff", "Paused"])
def test_a_state_in_between_is_unknown_but_the_bmc_answered(
    bmc: OddBmc, tmp_path: Path, said: str
) -> None:
    # A BMC caught between on and off is no credential problem: doctor passes it, and
    # `hecate power status` does not report it as a failed read (the review's should-fix).
    bmc.answer = (200, {}, json.dumps({"PowerState": said}).encode())
    reading = _driver(bmc, tmp_path).status()
    assert (reading.state, reading.in_between) == ("unknown", True)
    config = parse_config(
        {
            "ups": {"target": "u@localhost"},
            "nodes": {"servers": ["titan-2"]},
            "power": {"nodes": {"titan-2": _driver(bmc, tmp_path).config.model_dump()}},
        }
    )
    assert bmc_finding(config, reading).status == "ok"
    bmc.answer = (200, {}, b'{"Id": "1"}')  # no PowerState: nothing known, no pass
    assert _driver(bmc, tmp_path).status().in_between is False
