"""Benchmark: Hecate's staged shutdown and startup against what else an operator could run.

Three ways to do the same node stages on the twin, each timed per flow:

* critical path: the unit operations done directly on the nodes (podman exec, all nodes of a
  stage in parallel, no SSH, no Ansible), plus the same waits for the API and for Nodes Ready;
* plain ssh script: what an operator would otherwise write, a bash script per stage running
  `ssh node sudo -n systemctl stop|start UNIT` to every node of the stage at once (new
  connections, like a script run once per outage), with the same readiness waits;
* Hecate: a whole `run_shutdown` (cluster-only, no etcd snapshot) or `run_startup` through the
  runner port and the API, opened as the CLI opens it (`open_flow_context`: a fresh port whose
  ssh connections are opened in the background as the flow starts).

Controller CPU (this process and its children: ansible-playbook, ssh) is measured per flow.

    .venv/bin/python -m bench.flows [--runs 3] [--sizes 3+12,3+40]
"""

from __future__ import annotations

import argparse
import resource
import shlex
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hecate.flows.shutdown import ShutdownOptions, run_shutdown
from hecate.flows.startup import StartupOptions, run_startup
from hecate.flows.wiring import open_flow_context
from hecate.runs import Outcome
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


def _cpu() -> float:
    """CPU seconds of this process and its waited-for children so far."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _ssh_stage(twin: Twin, nodes: list[TwinNode], action: str) -> None:
    """One stage of the plain script: parallel `ssh node sudo -n systemctl ACTION unit`."""
    lines = ["set -u", "pids=()"]
    for node in nodes:
        argv = [*twin.ssh_argv(node), "sudo", "-n", "systemctl", action, node.unit]
        lines.append(f"{shlex.join(argv)} & pids+=($!)")
    lines.append('rc=0; for p in "${pids[@]}"; do wait "$p" || rc=1; done; exit $rc')
    subprocess.run(["bash", "-c", "\n".join(lines)], check=True, timeout=300)


def ssh_script_shutdown(twin: Twin) -> float:
    start = time.monotonic()
    _ssh_stage(twin, twin.agents, "stop")
    _ssh_stage(twin, twin.servers, "stop")
    return time.monotonic() - start


def ssh_script_startup(twin: Twin) -> float:
    start = time.monotonic()
    _ssh_stage(twin, twin.servers, "start")
    _wait(twin.api_ready)
    _ssh_stage(twin, twin.agents, "start")
    _wait(lambda: _nodes_ready(twin))
    return time.monotonic() - start


def hecate_run(twin: Twin, state: Path, kind: str) -> tuple[float, float]:
    """(wall seconds, controller CPU seconds) of one Hecate flow."""
    config = twin_config(twin, state, shutdown={"etcd_snapshot": False})
    cpu0 = _cpu()
    start = time.monotonic()
    with open_flow_context(config, read_ups=None) as ctx:
        if kind == "shutdown":
            report = run_shutdown(ctx, ShutdownOptions(mode="cluster-only", reason="bench"))
        else:
            report = run_startup(ctx, StartupOptions(reason="bench"))
        elapsed = time.monotonic() - start
    cpu = _cpu() - cpu0
    if report.outcome is not Outcome.SUCCESS:
        raise RuntimeError(f"{kind} {report.outcome.value}: {report.to_json()}")
    return elapsed, cpu


def bench_size(servers: int, agents: int, runs: int, image: str) -> dict[str, list[float]]:
    keys = ("crit_down", "crit_up", "ssh_down", "ssh_up", "hecate_down", "hecate_up")
    results: dict[str, list[float]] = {k: [] for k in (*keys, "cpu_down", "cpu_up")}
    with (
        tempfile.TemporaryDirectory(prefix="hecate-bench-") as tmp,
        Twin(servers, agents, workdir=Path(tmp) / "twin", image=image, start_timeout=900) as twin,
    ):
        state = Path(tmp) / "state"
        hecate_run(twin, state, "shutdown")  # warm-up: SSH host keys, caches
        hecate_run(twin, state, "startup")
        for _ in range(runs):
            results["crit_down"].append(critical_shutdown(twin))
            results["crit_up"].append(critical_startup(twin))
            results["ssh_down"].append(ssh_script_shutdown(twin))
            results["ssh_up"].append(ssh_script_startup(twin))
            wall, cpu = hecate_run(twin, state, "shutdown")
            results["hecate_down"].append(wall)
            results["cpu_down"].append(cpu)
            wall, cpu = hecate_run(twin, state, "startup")
            results["hecate_up"].append(wall)
            results["cpu_up"].append(cpu)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="3+12,3+40")
    args = parser.parse_args()
    image = ensure_image()
    print(
        "| twin | nodes | flow | critical path | plain ssh script | Hecate | Hecate / ssh script "
        "| controller CPU | CPU-s per node |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for size in args.sizes.split(","):
        servers, agents = (int(x) for x in size.split("+"))
        nodes = servers + agents
        res = bench_size(servers, agents, args.runs, image)
        for flow, crit, ssh, hec, cpu in (
            ("shutdown", "crit_down", "ssh_down", "hecate_down", "cpu_down"),
            ("startup", "crit_up", "ssh_up", "hecate_up", "cpu_up"),
        ):
            c, p, h = (statistics.median(res[k]) for k in (crit, ssh, hec))
            u = statistics.median(res[cpu])
            print(
                f"| {size} | {nodes} | {flow} | {c:.2f} s | {p:.2f} s | {h:.2f} s | "
                f"{h / p:.2f}x | {u:.2f} CPU-s | {u / nodes:.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
