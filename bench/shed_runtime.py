"""Benchmark (issue 28, item 4): the runtime load shedding buys, measured on the twin.

The test bed's UPS gets a runtime that depends on the load: a battery of `--capacity-wh` drains
at the load the cluster draws (LoadModel: each Ready node, plus each Running pod), and every
second the harness serves `battery.runtime` = energy left / load, `battery.charge` and
`ups.load` into dummy-ups. A real `hecate daemon` watches that UPS on a 1+4 twin, with
`power.shed` (two `hecate.dev/shed=true` Deployments, two agents) or without it. The outage
begins at t=0 and lasts until the daemon triggers its shutdown: the longest outage survived
without a full shutdown. Shutdown threshold 60 s (default_budget_seconds 30 x factor 2).

    .venv/bin/python -m bench.shed_runtime [--capacity-wh 12] [--shed-after 20]

Under the twin lock (flock /tmp/hecate-twin.lock): it boots two 1+4 twins, one after the other.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.integration.support import twin_config_data
from tests.testbed.image import ensure_image
from tests.testbed.nut import NutServer
from tests.testbed.twin import Twin

ROOT = Path(__file__).resolve().parents[1]
NOMINAL_W = 1000.0  # the UPS's rating: ups.load is the load's share of it
MARKED = ("whoami", "homepage")  # apps/* Deployments shed (owned by the `apps` Kustomization)
WHOAMI_REPLICAS = 6


@dataclass(frozen=True)
class LoadModel:
    """What the cluster draws: a powered (Ready) node idles at `node_w`, each Running pod adds
    `pod_w`. Illustrative figures for small x86 nodes, not measurements of a real cluster."""

    node_w: float = 35.0
    pod_w: float = 12.0

    def load_w(self, nodes: int, pods: int) -> float:
        return nodes * self.node_w + pods * self.pod_w


@dataclass
class Battery:
    """Energy left drains at the load; runtime is energy left / load (a linear battery)."""

    full_j: float
    energy_j: float = -1.0

    def __post_init__(self) -> None:
        if self.energy_j < 0:
            self.energy_j = self.full_j

    def drain(self, load_w: float, dt_s: float) -> None:
        self.energy_j = max(0.0, self.energy_j - load_w * dt_s)

    def runtime_s(self, load_w: float) -> float:
        return self.energy_j / load_w if load_w > 0 else float("inf")

    @property
    def charge_pct(self) -> float:
        return 100.0 * self.energy_j / self.full_j


@dataclass
class Sample:
    t: float
    nodes: int
    pods: int
    load_w: float
    runtime_s: float


@dataclass
class Outcome:
    shed: bool
    samples: list[Sample] = field(default_factory=list)
    shed_at: float | None = None
    trigger_at: float | None = None

    def before_after(self) -> tuple[Sample, Sample] | None:
        """The last sample before the shed and the first with the lower load after it."""
        if self.shed_at is None:
            return None
        before = [s for s in self.samples if s.t <= self.shed_at]
        after = [s for s in self.samples if s.t > self.shed_at]
        if not before or not after:
            return None
        low = min(s.load_w for s in after)
        return before[-1], next(s for s in after if s.load_w == low)


def _cluster(twin: Twin) -> tuple[int, int]:
    """Ready Nodes, Running pods on them (from the API)."""
    _, nodes = twin.api("GET", "/api/v1/nodes")
    ready = {
        n["metadata"]["name"]
        for n in nodes.get("items", [])
        if any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in n.get("status", {}).get("conditions", [])
        )
    }
    _, pods = twin.api("GET", "/api/v1/pods")
    running = [
        p
        for p in pods.get("items", [])
        if p.get("status", {}).get("phase") == "Running"
        and p.get("spec", {}).get("nodeName") in ready
        and not p["metadata"].get("deletionTimestamp")
    ]
    return len(ready), len(running)


def _prepare(twin: Twin) -> None:
    """Mark apps/whoami (scaled to 6, as its Kustomization applies) and apps/homepage."""
    for name in MARKED:
        patch: dict[str, Any] = {"metadata": {"labels": {"hecate.dev/shed": "true"}}}
        if name == "whoami":
            patch["metadata"]["annotations"] = {
                "twin.hecate.io/desired-replicas": str(WHOAMI_REPLICAS)
            }
            patch["spec"] = {"replicas": WHOAMI_REPLICAS}
        status, body = twin.api("PATCH", f"/apis/apps/v1/namespaces/apps/deployments/{name}", patch)
        if status != 200:
            raise RuntimeError(f"cannot mark apps/{name}: {status} {body}")
    deadline = time.monotonic() + 90
    while _cluster(twin)[1] < WHOAMI_REPLICAS + 4:  # whoami, homepage, gitea, coredns...
        if time.monotonic() > deadline:
            raise RuntimeError(f"pods did not start: {_cluster(twin)}")
        time.sleep(1)
    time.sleep(3)


def _write_config(twin: Twin, nut: NutServer, tmp: Path, *, shed: bool, shed_after: float) -> Path:
    agents = [n.name for n in twin.agents]
    extra: dict[str, Any] = {
        "ups": {"poll_interval_seconds": 1, "debounce_polls": 2},
        "shutdown": {
            "ups_mode": "cluster-only",
            "etcd_snapshot": False,
            "poweroff_method": "marker",
        },
        "default_budget_seconds": 30,
        "runtime_safety_factor": 2,
    }
    if shed:
        extra["power"] = {
            "shed": {
                "after_seconds": shed_after,
                "label_selector": "hecate.dev/shed=true",
                "agents": agents[-2:],
            }
        }
    config = twin_config_data(twin, tmp / "state", nut, **extra)
    path = tmp / "hecate.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


ACTION = re.compile(r"action=(\w+)")


def run(image: str, *, shed: bool, capacity_wh: float, shed_after: float) -> Outcome:
    model = LoadModel()
    outcome = Outcome(shed)
    with (
        tempfile.TemporaryDirectory(prefix="hecate-bench-") as tmp,
        NutServer() as nut,
        Twin(1, 4, workdir=Path(tmp) / "twin", image=image) as twin,
    ):
        _prepare(twin)
        path = _write_config(twin, nut, Path(tmp), shed=shed, shed_after=shed_after)
        battery = Battery(capacity_wh * 3600)
        nodes, pods = _cluster(twin)
        load = model.load_w(nodes, pods)
        nut.set_reading(status="OL", runtime=round(battery.runtime_s(load)), charge=100.0)
        proc = subprocess.Popen(
            [sys.executable, "-m", "hecate", "daemon", "--config", str(path), "--verbose"],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        actions: list[tuple[float, str]] = []
        t0 = [0.0]

        def follow() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                found = ACTION.search(line)
                if found:
                    actions.append((time.monotonic() - t0[0], found.group(1)))

        threading.Thread(target=follow, daemon=True).start()
        try:
            time.sleep(5)
            t0[0] = last = time.monotonic()
            while time.monotonic() - t0[0] < 1800:
                now = time.monotonic()
                battery.drain(load, now - last)
                last = now
                nodes, pods = _cluster(twin)
                load = model.load_w(nodes, pods)
                runtime = battery.runtime_s(load)
                outcome.samples.append(Sample(now - t0[0], nodes, pods, load, runtime))
                nut.set_reading(
                    status="OB DISCHRG",
                    runtime=round(runtime),
                    charge=round(battery.charge_pct, 1),
                    load=round(100 * load / NOMINAL_W, 1),
                )
                for at, name in actions:
                    if name == "shed" and outcome.shed_at is None:
                        outcome.shed_at = at
                    if name == "RunShutdown" and outcome.trigger_at is None:
                        outcome.trigger_at = at
                if outcome.trigger_at is not None:
                    break
                time.sleep(max(0.0, 1.0 - (time.monotonic() - now)))
        finally:
            proc.terminate()
            try:
                proc.wait(180)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
    return outcome


def report(without: Outcome, with_shed: Outcome, capacity_wh: float) -> list[str]:
    first = without.samples[0]
    lines = [
        f"battery {capacity_wh:g} Wh; load model {LoadModel().node_w:g} W per Ready node + "
        f"{LoadModel().pod_w:g} W per Running pod; shutdown below 60 s of runtime",
        f"at the outage's start: {first.nodes} nodes, {first.pods} pods, {first.load_w:.0f} W, "
        f"runtime {first.runtime_s:.0f}s",
        f"without shedding: shutdown triggered after {_s(without.trigger_at)} on battery",
    ]
    pair = with_shed.before_after()
    if pair is not None:
        before, after = pair
        lines.append(
            f"with shedding (after {with_shed.shed_at:.0f}s): load {before.load_w:.0f} W -> "
            f"{after.load_w:.0f} W ({before.nodes}->{after.nodes} nodes, {before.pods}->"
            f"{after.pods} pods), runtime {before.runtime_s:.0f}s -> {after.runtime_s:.0f}s "
            f"(+{after.runtime_s - before.runtime_s:.0f}s)"
        )
    lines.append(f"with shedding: shutdown triggered after {_s(with_shed.trigger_at)} on battery")
    if without.trigger_at is not None and with_shed.trigger_at is not None:
        gain = with_shed.trigger_at - without.trigger_at
        lines.append(
            f"longest outage survived without a full shutdown: {without.trigger_at:.0f}s -> "
            f"{with_shed.trigger_at:.0f}s (+{gain:.0f}s, "
            f"{100 * gain / without.trigger_at:.0f} %)"
        )
    return lines


def _s(value: float | None) -> str:
    return "never (timed out)" if value is None else f"{value:.0f}s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--capacity-wh", type=float, default=12.0)
    parser.add_argument("--shed-after", type=float, default=20.0)
    args = parser.parse_args()
    image = ensure_image()
    without = run(image, shed=False, capacity_wh=args.capacity_wh, shed_after=args.shed_after)
    with_shed = run(image, shed=True, capacity_wh=args.capacity_wh, shed_after=args.shed_after)
    for line in report(without, with_shed, args.capacity_wh):
        print(line, flush=True)


if __name__ == "__main__":
    main()
