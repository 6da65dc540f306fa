"""A connection flood cannot blind the daemon (issue #13).

A real `hecate daemon` process on a real upsd and the twin; 2,000 slow connections on each of
its two HTTP ports (one header byte per connection about every second, reconnecting whenever
the daemon closes one: a slowloris). During the flood the UPS loses mains with a low battery.
Expected: the shutdown triggers within the normal decision latency (debounce x poll + 2 s), the
UPS stays readable, signed peer requests keep working and metrics keep answering. The figures
are printed (run with -s) and recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hecate.adapters.peers.http import CoordinatorClient
from hecate.adapters.statedir.store import StateStore
from hecate.core.run_history import Outcome
from tests.integration.support import twin_config_data, write_config
from tests.testbed.nut import NutServer, free_port
from tests.testbed.pytest_twin import TwinFactory

pytestmark = pytest.mark.integration

CONNECTIONS_PER_PORT = 2000
POLL_S, DEBOUNCE = 1, 3
LATENCY_BUDGET_S = DEBOUNCE * POLL_S + 2


@dataclass
class Slowloris:
    """`count` connections to `port`, each fed one header byte about every `interval_s`."""

    port: int
    count: int
    interval_s: float = 1.0
    socks: list[socket.socket | None] = field(default_factory=list)
    reconnects: int = 0
    refused: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def _open(self) -> socket.socket | None:
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=1)
            sock.setblocking(False)
            sock.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            return sock
        except OSError:
            self.refused += 1
            return None

    def open_count(self) -> int:
        return sum(1 for s in self.socks if s is not None)

    @staticmethod
    def _feed(sock: socket.socket) -> bool:
        """One more header byte; False once the daemon has closed the connection."""
        try:
            if sock.recv(4096, socket.MSG_DONTWAIT) == b"":
                return False
        except BlockingIOError:
            pass
        except OSError:
            return False
        try:
            sock.send(b"X")
        except BlockingIOError:
            pass
        except OSError:
            return False
        return True

    def run(self) -> None:
        self.socks = [self._open() for _ in range(self.count)]
        while not self.stop.is_set():
            started = time.monotonic()
            for i, sock in enumerate(self.socks):
                if self.stop.is_set():
                    break
                if sock is not None and self._feed(sock):
                    continue
                if sock is not None:
                    sock.close()
                self.socks[i] = self._open()
                self.reconnects += 1
            self.stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))
        for sock in self.socks:
            if sock is not None:
                sock.close()


@contextlib.contextmanager
def flood(ports: list[int], count: int) -> Iterator[list[Slowloris]]:
    attackers = [Slowloris(port, count) for port in ports]
    threads = [threading.Thread(target=a.run, daemon=True) for a in attackers]
    for thread in threads:
        thread.start()
    try:
        yield attackers
    finally:
        for attacker in attackers:
            attacker.stop.set()
        for thread in threads:
            thread.join(30)


class DaemonProcess:
    """`hecate daemon` as its own process; its log lines time-stamped as they arrive."""

    def __init__(self, config: Path) -> None:
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hecate", "daemon", "--config", str(config)],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append((time.monotonic(), line.rstrip()))

    def first(self, pattern: str, after: float = 0.0) -> float | None:
        for t, line in list(self.lines):
            if t >= after and re.search(pattern, line):
                return t
        return None

    def fds(self) -> int:
        return sum(1 for _ in Path(f"/proc/{self.proc.pid}/fd").iterdir())

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._reader.join(10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        return self.proc.returncode


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def wait_until(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_a_flood_of_slow_connections_does_not_delay_the_shutdown(
    make_twin: TwinFactory, nut_server: NutServer, tmp_path: Path
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 2 * CONNECTIONS_PER_PORT + 512
    if soft < needed:  # the attacker's own descriptors (this process)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, needed * 2), hard))
    cluster = make_twin(1, 1)
    state = tmp_path / "state"
    token = tmp_path / "token"
    token.write_text(secrets.token_hex(24))
    token.chmod(0o600)
    metrics_port, coord_port = free_port(), free_port()
    data = twin_config_data(
        cluster,
        state,
        nut_server,
        ups={"poll_interval_seconds": POLL_S, "debounce_polls": DEBOUNCE},
        shutdown={"ups_mode": "cluster-only", "etcd_snapshot": False, "stop_timeout_seconds": 30},
        metrics={"listen": f"127.0.0.1:{metrics_port}"},
        coordination={
            "role": "coordinator",
            "token_file": str(token),
            "listen": f"127.0.0.1:{coord_port}",
        },
    )
    config = write_config(tmp_path / "hecate.yaml", data)
    daemon = DaemonProcess(config)
    peer = CoordinatorClient(f"127.0.0.1:{coord_port}", token.read_bytes().strip(), attempts=1)
    try:
        wait_until(lambda: daemon.first(r"metrics on") is not None, 30, "the daemon's metrics")
        wait_until(lambda: daemon.first(r"coordination endpoint") is not None, 30, "coordination")
        fds_before = daemon.fds()
        with flood([metrics_port, coord_port], CONNECTIONS_PER_PORT) as attackers:
            wait_until(
                lambda: all(
                    a.socks and a.open_count() >= CONNECTIONS_PER_PORT * 0.9 for a in attackers
                ),
                60,
                "the flood to be up",
            )
            time.sleep(8)  # past the request deadline: the daemon has been closing and the
            # attacker reconnecting for a while
            peer_ok, peer_fail, scrape_ok, scrape_fail = 0, 0, 0, 0
            peer_times: list[float] = []
            scrape_times: list[float] = []
            fds_max = 0

            def probe() -> None:
                nonlocal peer_ok, peer_fail, scrape_ok, scrape_fail, fds_max
                start = time.monotonic()
                try:
                    peer.intent()
                    peer_ok += 1
                    peer_times.append(time.monotonic() - start)
                except Exception:
                    peer_fail += 1
                start = time.monotonic()
                try:
                    text = scrape(metrics_port)
                    # UPS series carry the NUT UPS name as their `ups` label
                    assert re.search(r'^hecate_ups_readable\{ups="[^"]+"\} 1\.0$', text, re.M)
                    scrape_ok += 1
                    scrape_times.append(time.monotonic() - start)
                except Exception:
                    scrape_fail += 1
                fds_max = max(fds_max, daemon.fds())

            for _ in range(5):
                probe()
                time.sleep(1)
            cut = time.monotonic()
            nut_server.set_reading(status="OB DISCHRG LB", runtime=60, charge=8)
            trigger = None
            deadline = cut + 60
            while trigger is None and time.monotonic() < deadline:
                probe()
                trigger = daemon.first(r"event=trigger_shutdown", after=cut)
                time.sleep(0.5)
            assert trigger is not None, "no trigger during the flood"
            latency = trigger - cut
            wait_until(
                lambda: [r.outcome for r in StateStore(state).load_runs()] != [],
                120,
                "the shutdown to finish",
            )
            for _ in range(3):
                probe()
            open_counts = [a.open_count() for a in attackers]
            reconnects = [a.reconnects for a in attackers]
        runs = [r.outcome for r in StateStore(state).load_runs() if r.kind == "shutdown"]
        comm_lost = daemon.first(r"comm_lost|Too many open files")
        print(
            f"\nFLOOD: {CONNECTIONS_PER_PORT} slow connections per port; attacker open at the end "
            f"{open_counts}, reconnects {reconnects}\n"
            f"FLOOD: trigger {latency:.2f} s after the cut (budget {LATENCY_BUDGET_S} s)\n"
            f"FLOOD: signed peer requests (1 attempt each) ok={peer_ok} failed={peer_fail} "
            f"max={max(peer_times):.3f}s\n"
            f"FLOOD: metrics scrapes ok={scrape_ok} failed={scrape_fail} "
            f"max={max(scrape_times):.3f}s\n"
            f"FLOOD: daemon fds before={fds_before} max during={fds_max}; shutdown runs {runs}"
        )
        assert latency <= LATENCY_BUDGET_S
        assert peer_fail == 0 and peer_ok >= 8
        assert scrape_fail == 0 and scrape_ok >= 8
        assert comm_lost is None, "the UPS became unreadable during the flood"
        assert runs == [Outcome.SUCCESS]
    finally:
        rc = daemon.stop()
        tail = "\n".join(line for _, line in daemon.lines[-30:])
        if rc not in (0, -signal.SIGTERM):
            print(tail)
    assert rc == 0, f"the daemon did not stop cleanly (rc {rc})"
    assert not [line for _, line in daemon.lines if "Traceback" in line]
