"""Benchmark: the idle daemon's RSS, and how it grows over many polls (issue 23 item 12).

`hecate daemon` polls a real upsd (dummy-ups) as fast as the config allows, so 10,000 polls take
minutes, not hours. RSS is read from /proc after a warm-up (the first polls build caches that
live as long as the process) and again once 10,000 more polls were counted by the daemon's own
`hecate_ups_polls_total`. Both phases: on mains, then on battery (an outage that never
becomes critical: a full battery, runtime far over any threshold).

Targets: idle RSS <= 38 MB; growth < 1 MB over 10,000 polls after the warm-up.

    .venv/bin/python -m bench.daemon_memory [--polls 10000] [--interval 0.01] [--json]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from tests.testbed.nut import NutServer

ROOT = Path(__file__).resolve().parents[1]
POLLS = re.compile(r'^hecate_ups_polls_total\{ups="[^"]*"\} (\S+)$', re.MULTILINE)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def polls(metrics_url: str) -> int:
    with urllib.request.urlopen(metrics_url, timeout=5) as answer:  # noqa: S310 (127.0.0.1)
        text = answer.read().decode()
    return sum(int(float(value)) for value in POLLS.findall(text))


def wait_polls(metrics_url: str, target: int, proc: subprocess.Popen[str], limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while True:
        try:
            if polls(metrics_url) >= target:
                return
        except OSError:  # not serving yet: a start under load can outlast the first sleep
            if proc.poll() is not None or time.monotonic() > deadline:
                raise
        if proc.poll() is not None:
            raise RuntimeError(f"hecate daemon exited {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"fewer than {target} polls within {limit_s:.0f} s")
        time.sleep(0.5)


def measure(n_polls: int, interval: float, warmup: int) -> dict[str, Any]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    result: dict[str, Any] = {"polls": n_polls, "interval_s": interval}
    with tempfile.TemporaryDirectory(prefix="hecate-mem-") as tmp, NutServer() as nut:
        config = {
            "state_dir": f"{tmp}/state",
            "ups": {
                "target": nut.target(),
                "user": nut.user,
                "password_file": str(nut.password_file),
                "poll_interval_seconds": interval,
                "timeout_seconds": 2,
            },
            "metrics": {"listen": f"127.0.0.1:{port}"},
            # Nothing is contacted: the outage below never becomes critical, and the
            # warm-up's SSH connections go to 127.0.0.1 only.
            "nodes": {"servers": ["bench-server"]},
            "ssh_node_hosts": {"bench-server": "127.0.0.1"},
            # Notifications on (issue 27): Apprise runs in a child, never in the daemon; the
            # target refuses (port 9), so messages are spooled and retried meanwhile.
            "notify": {"targets": [{"name": "bench", "url": "json://127.0.0.1:9/bench"}]},
        }
        path = Path(tmp) / "hecate.yaml"
        path.write_text(yaml.safe_dump(config))
        proc = subprocess.Popen(
            [sys.executable, "-m", "hecate", "daemon", "--config", str(path)],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        tail: list[str] = []
        drain = threading.Thread(target=lambda: _drain(proc, tail), daemon=True)
        drain.start()
        try:
            time.sleep(3)
            limit = max(120.0, n_polls * interval * 20)
            wait_polls(url, warmup, proc, limit)
            result["idle_rss_mb"] = rss_mb(proc.pid)
            start = polls(url)
            wait_polls(url, start + n_polls, proc, limit)
            result["mains_growth_mb"] = rss_mb(proc.pid) - result["idle_rss_mb"]
            nut.set_reading(status="OB DISCHRG", runtime=3000, charge=100)
            start = polls(url)
            wait_polls(url, start + warmup, proc, limit)
            battery0 = rss_mb(proc.pid)
            result["battery_rss_mb"] = battery0
            wait_polls(url, start + warmup + n_polls, proc, limit)
            result["battery_growth_mb"] = rss_mb(proc.pid) - battery0
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            drain.join(10)
            if proc.stderr is not None:
                proc.stderr.close()
        result["log_tail"] = tail[-5:]
    return result


def _drain(proc: subprocess.Popen[str], tail: list[str]) -> None:
    assert proc.stderr is not None
    for line in proc.stderr:
        tail.append(line.rstrip())
        del tail[:-50]


def _free_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--polls", type=int, default=10_000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--interval", type=float, default=0.01)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = measure(args.polls, args.interval, args.warmup)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"idle RSS {result['idle_rss_mb']:.2f} MB (target <= 38); over {args.polls} polls "
        f"on mains +{result['mains_growth_mb']:.2f} MB, on battery "
        f"+{result['battery_growth_mb']:.2f} MB from {result['battery_rss_mb']:.2f} MB "
        "(target < 1 MB each)"
    )


if __name__ == "__main__":
    main()
