"""The outage demo: a twin cluster, a real upsd, `hecate daemon`, and a power cut.

Run it with `scripts/demo`. It starts a 1 server + 2 agent twin and a NUT server, runs the daemon
on them, cuts mains (on battery, runtime falling), lets the debounce and the staged shutdown
play out, restores mains (the nodes boot again, as hosts with "power on after AC loss" do), shows
the staged startup, prints a timeline and cleans everything up.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from tests.integration.support import twin_config_data
from tests.testbed.image import ensure_image
from tests.testbed.nut import NutServer
from tests.testbed.twin import Twin

ROOT = Path(__file__).resolve().parents[2]
KEY_WORDS = ("event=", "action=", "stage=", "finished:", "trigger")


class Timeline:
    def __init__(self) -> None:
        self.start = time.monotonic()
        self.entries: list[tuple[float, str]] = []
        self.lock = threading.Lock()

    def add(self, text: str, *, show: bool = True) -> None:
        elapsed = time.monotonic() - self.start
        with self.lock:
            self.entries.append((elapsed, text))
        if show:
            print(f"[{elapsed:6.1f}s] {text}", flush=True)


def _follow(stream: object, timeline: Timeline) -> None:
    for raw in stream:  # type: ignore[attr-defined]
        line = str(raw).rstrip()
        if any(word in line for word in KEY_WORDS):
            message = line.split("logger=", 1)[-1]
            message = message.split(" ", 1)[-1] if " " in message else message
            timeline.add(f"  daemon: {message}")


def _wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"demo: timed out waiting for {what}")
        time.sleep(0.5)


def _intent(state: Path) -> str:
    try:
        return str(json.loads((state / "intent.json").read_text())["state"])
    except (OSError, ValueError, KeyError):
        return "normal"


def run_demo(workdir: Path) -> int:
    timeline = Timeline()
    timeline.add("building or reusing the node image")
    image = ensure_image()
    with NutServer(["pyrphoros"]) as nut, Twin(1, 2, workdir=workdir / "twin", image=image) as twin:
        timeline.add(
            f"twin up: {', '.join(n.name for n in twin.nodes)}; API {twin.api_url}; "
            f"upsd on {nut.host}:{nut.port}"
        )
        state = workdir / "state"
        config = twin_config_data(
            twin,
            state,
            nut,
            ups={"poll_interval_seconds": 1, "debounce_polls": 3},
            shutdown={"ups_mode": "poweroff", "stop_timeout_seconds": 60},
            startup={"power_stable_seconds": 5, "min_battery_charge": 50},
        )
        config_file = workdir / "hecate.yaml"
        config_file.write_text(yaml.safe_dump(config))
        daemon = subprocess.Popen(
            [sys.executable, "-m", "hecate", "daemon", "--config", str(config_file)],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        follower = threading.Thread(target=_follow, args=(daemon.stderr, timeline), daemon=True)
        follower.start()
        try:
            time.sleep(3)
            timeline.add("MAINS CUT: UPS on battery, runtime 1200 s (threshold 330 s)")
            nut.set_reading(status="OB DISCHRG", runtime=1200, charge=80)
            for runtime, charge in ((900, 70), (600, 60), (400, 52), (320, 50), (300, 48)):
                time.sleep(1.5)
                timeline.add(f"UPS runtime {runtime} s, charge {charge} %")
                nut.set_reading(runtime=runtime, charge=charge)
            _wait(lambda: _intent(state) == "shutdown_complete", 180, "the staged shutdown")
            _wait(lambda: not any(twin.is_running(n) for n in twin.nodes), 60, "poweroff")
            timeline.add("cluster down: every node powered off")
            time.sleep(2)
            timeline.add("MAINS BACK: UPS online, charging (charge 55 %)")
            nut.set_reading(status="OL CHRG", runtime=900, charge=55)
            for node in twin.nodes:
                twin.power_on(node, wait=False)
            timeline.add("nodes booting (power on after AC loss)")
            _wait(lambda: _intent(state) == "normal", 300, "the staged startup")
            ready = twin.nodes_ready()
            timeline.add(f"cluster up: Nodes Ready {sorted(n for n, ok in ready.items() if ok)}")
        finally:
            daemon.terminate()
            try:
                daemon.wait(60)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait(10)
            follower.join(5)
    print("\nTimeline")
    for elapsed, text in timeline.entries:
        print(f"  {elapsed:6.1f}s  {text.strip()}")
    runs = json.loads((state / "runs.json").read_text())["runs"]
    print("\nRuns")
    for run in runs:
        stages = ", ".join(f"{s['name']} {s['duration_s']:.1f}s" for s in run["stages"])
        print(f"  {run['kind']:<8} {run['outcome']:<8} {run['ended_at'] - run['started_at']:.1f}s")
        print(f"           {stages}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", action="store_true", help="keep the work dir for inspection")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="hecate-demo-"))
    try:
        return run_demo(workdir)
    finally:
        if not args.keep:
            subprocess.run(["rm", "-rf", str(workdir)], check=False)
        else:
            print(f"work dir kept: {workdir}")


if __name__ == "__main__":
    raise SystemExit(main())
