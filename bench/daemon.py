"""Benchmark: the daemon's idle cost and its decision latency.

1. Idle: `hecate daemon` polling a real upsd every 2 s for 60 s; RSS and CPU from /proc.
   Targets: RSS <= 40 MB (issue 16; NUT's upsmon takes 8 MB), CPU <= 1 % of one core.
2. Decision latency: from the moment upsd serves a runtime below the threshold to the daemon's
   first playbook task (its log line), on a 1+1 twin. Target: <= debounce x poll + 2 s.

    .venv/bin/python -m bench.daemon [--idle-seconds 60]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from tests.integration.support import twin_config_data
from tests.testbed.image import ensure_image
from tests.testbed.nut import NutServer
from tests.testbed.twin import Twin

ROOT = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _daemon(
    config: Mapping[str, Any], workdir: Path, verbose: bool = False
) -> subprocess.Popen[str]:
    path = workdir / "hecate.yaml"
    path.write_text(yaml.safe_dump(config))
    argv = [sys.executable, "-m", "hecate", "daemon", "--config", str(path)]
    if verbose:
        argv.append("--verbose")
    return subprocess.Popen(
        argv, cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def idle(seconds: float) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="hecate-bench-") as tmp, NutServer() as nut:
        config = {
            "state_dir": f"{tmp}/state",
            "ups": {
                "target": nut.target(),
                "user": nut.user,
                "password_file": str(nut.password_file),
                "poll_interval_seconds": 2,
            },
            "metrics": {"listen": "127.0.0.1:0"},
            # A coordinator needs a server node; none is contacted while the UPS is on mains.
            "nodes": {"servers": ["bench-server"]},
        }
        proc = _daemon(config, Path(tmp))
        errors: list[str] = []
        drain = threading.Thread(
            target=lambda: errors.append(proc.stderr.read() if proc.stderr else ""), daemon=True
        )
        drain.start()
        try:
            time.sleep(5)  # start-up imports are not idle cost
            if proc.poll() is not None:
                drain.join(5)
                raise RuntimeError(f"hecate daemon exited {proc.returncode}: {''.join(errors)}")
            cpu0, t0 = _cpu_seconds(proc.pid), time.monotonic()
            peak = 0.0
            while time.monotonic() - t0 < seconds:
                peak = max(peak, _rss_mb(proc.pid))
                time.sleep(1)
            cpu = (_cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0) * 100
        finally:
            _stop(proc)
    return peak, cpu


STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def latency(image: str) -> tuple[float, float]:
    poll_s, debounce = 2.0, 3
    with (
        tempfile.TemporaryDirectory(prefix="hecate-bench-") as tmp,
        NutServer() as nut,
        Twin(1, 1, workdir=Path(tmp) / "twin", image=image) as twin,
    ):
        config = twin_config_data(
            twin,
            Path(tmp) / "state",
            nut,
            ups={"poll_interval_seconds": poll_s, "debounce_polls": debounce},
            shutdown={"ups_mode": "cluster-only", "etcd_snapshot": False},
        )
        proc = _daemon(config, Path(tmp), verbose=True)
        first_task: list[float] = []

        def follow() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                match = STAMP.match(line)
                if match and "task_status=" in line and not first_task:
                    stamp = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f")
                    first_task.append(stamp.timestamp())

        reader = threading.Thread(target=follow, daemon=True)
        reader.start()
        try:
            time.sleep(5)
            nut.set_reading(status="OB DISCHRG", runtime=60, charge=30)
            crossed = time.time()
            deadline = time.monotonic() + 120
            while not first_task and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            _stop(proc)
        if not first_task:
            raise RuntimeError("no playbook task seen")
        return first_task[0] - crossed, debounce * poll_s + 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--idle-seconds", type=float, default=60)
    args = parser.parse_args()
    rss, cpu = idle(args.idle_seconds)
    print(
        f"idle over {args.idle_seconds:.0f}s at a 2 s poll: peak RSS {rss:.1f} MB "
        f"(target <= 40), CPU {cpu:.2f}% of one core (target <= 1)"
    )
    seconds, limit = latency(ensure_image())
    print(
        f"decision latency: {seconds:.2f}s from runtime below threshold to the first "
        f"playbook task (target <= {limit:.0f}s)"
    )


if __name__ == "__main__":
    main()
