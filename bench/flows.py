"""Benchmark: Hecate's staged shutdown and startup against the critical path, on the twin.

The critical path is what the nodes themselves need: the same unit operations done directly on
the nodes (podman exec, all nodes of a stage in parallel, no SSH, no Ansible), plus the same waits
for the API and for Nodes Ready. Hecate's overhead is its wall time minus that.

    .venv/bin/python -m bench.flows [--runs 3] [--sizes 1+2,3+5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hecate.ansible_port import AnsiblePort
from hecate.flows.context import FlowContext
from hecate.flows.shutdown import ShutdownOptions, run_shutdown
from hecate.flows.startup import StartupOptions, run_startup
from hecate.kube import Kube
from hecate.runs import Outcome
from hecate.state import StateStore
from tests.integration.support import twin_config
from tests.testbed.image import ensure_image
from tests.testbed.twin import Twin, TwinNode


def _parallel(twin: Twin, nodes: list[TwinNode], action: str) -> float:
    """Seconds for `systemctl ACTION unit` on all nodes at once; the slowest node counts."""

    def one(node: TwinNode) -> float:
        start = time.monotonic()
        twin.exec(node, "systemctl", action, node.unit)
        return time.monotonic() - start

    with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
        return max(pool.map(one, nodes), default=0.0)


def _wait(check: object, timeout: float = 120.0) -> float:
    start = time.monotonic()
    while not check():  # type: ignore[operator]
        if time.monotonic() - start > timeout:
            raise RuntimeError("timed out")
        time.sleep(0.1)
    return time.monotonic() - start


def _nodes_ready(twin: Twin) -> bool:
    try:
        return all(twin.nodes_ready().values())
    except Exception:
        return False


def critical_shutdown(twin: Twin) -> float:
    return _parallel(twin, twin.agents, "stop") + _parallel(twin, twin.servers, "stop")


def critical_startup(twin: Twin) -> float:
    total = _parallel(twin, twin.servers, "start")
    total += _wait(twin.api_ready)
    total += _parallel(twin, twin.agents, "start")
    total += _wait(lambda: _nodes_ready(twin))
    return total


def hecate_run(twin: Twin, state: Path, kind: str) -> float:
    config = twin_config(twin, state, shutdown={"etcd_snapshot": False})
    with AnsiblePort.from_config(config) as ansible, Kube(config.kubeconfig) as kube:
        ctx = FlowContext(config, ansible, kube, StateStore(state))
        start = time.monotonic()
        if kind == "shutdown":
            report = run_shutdown(ctx, ShutdownOptions(mode="cluster-only", reason="bench"))
        else:
            report = run_startup(ctx, StartupOptions(reason="bench"))
        elapsed = time.monotonic() - start
    if report.outcome is not Outcome.SUCCESS:
        raise RuntimeError(f"{kind} {report.outcome.value}: {report.to_json()}")
    return elapsed


def bench_size(servers: int, agents: int, runs: int, image: str) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {
        k: [] for k in ("crit_down", "crit_up", "hecate_down", "hecate_up")
    }
    with (
        tempfile.TemporaryDirectory(prefix="hecate-bench-") as tmp,
        Twin(servers, agents, workdir=Path(tmp) / "twin", image=image) as twin,
    ):
        state = Path(tmp) / "state"
        hecate_run(twin, state, "shutdown")  # warm-up: SSH host keys, ControlPersist, caches
        hecate_run(twin, state, "startup")
        for _ in range(runs):
            results["crit_down"].append(critical_shutdown(twin))
            results["crit_up"].append(critical_startup(twin))
            results["hecate_down"].append(hecate_run(twin, state, "shutdown"))
            results["hecate_up"].append(hecate_run(twin, state, "startup"))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="1+2,3+5")
    args = parser.parse_args()
    image = ensure_image()
    print("| twin | flow | critical path (median) | Hecate (median) | overhead | target |")
    print("|---|---|---|---|---|---|")
    for size in args.sizes.split(","):
        servers, agents = (int(x) for x in size.split("+"))
        res = bench_size(servers, agents, args.runs, image)
        for flow, crit, hec in (
            ("shutdown", "crit_down", "hecate_down"),
            ("startup", "crit_up", "hecate_up"),
        ):
            c, h = statistics.median(res[crit]), statistics.median(res[hec])
            limit = 1.25 * c + 3.0
            verdict = "met" if h <= limit else "missed"
            print(
                f"| {size} | {flow} | {c:.2f}s | {h:.2f}s | +{h - c:.2f}s "
                f"({(h / c - 1) * 100 if c else 0:.0f}%) | <= {limit:.2f}s: {verdict} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
