"""Benchmark: Hecate's staged shutdown and startup against what else an operator could run.

Three ways to do the same node stages on the twin, each timed per flow:

* critical path: the unit operations done directly on the nodes (podman exec, all nodes of a
  stage in parallel, no SSH, no Ansible), plus the same waits for the API and for Nodes Ready;
* plain ssh script: what an operator would otherwise write, a bash script per stage running
  `ssh node sudo -n systemctl stop|start UNIT` to every node of the stage at once (new
  connections, like a script run once per outage), with the same readiness waits;
* Hecate: a whole `run_shutdown` (cluster-only, no etcd snapshot) or `run_startup` through the
  runner port and the API, opened as the CLI opens it (`open_flow_context`: a fresh port, whose
  first node stage opens the ssh connections; --compare-cli-warmup adds a shutdown that opens
  them in the background as the flow starts, beside its API stages);
* Hecate (daemon), shutdown only: the same flow as the daemon runs it: its long-lived port
  opened the ssh connections during the debounce window (before the decision), so the timing
  starts after the connect playbook, as the daemon's flow does (a startup has nothing to warm:
  the nodes have just booted).

Controller CPU (this process and its children: ansible-playbook, ssh) is measured per flow.
Each Hecate run's playbooks are recorded (wall time, the time before their first task, per-task
durations from the port's task timings) to say where the time goes; with two or more sizes the
fixed part of a flow and its cost per node come from a straight-line fit over the sizes. The
load average is printed with each size (other work on the machine slows everything).

    .venv/bin/python -m bench.flows [--runs 3] [--sizes 3+12,3+40] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shlex
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hecate.adapters.ansible.events import EventCallback
from hecate.adapters.ansible.port import AnsiblePort, open_port
from hecate.adapters.ansible.protocol import Ansible, PlaybookRequest, PlaybookResult
from hecate.config.model import HecateConfig
from hecate.core.plans import ShutdownOptions, StartupOptions
from hecate.core.run_history import Outcome
from hecate.flows.open_context import open_flow_context
from hecate.flows.shutdown import node_batch_ahead, run_shutdown
from hecate.flows.startup import run_startup
from hecate.flows.warmup import ConnectionWarmer
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


@dataclass
class PlaybookRun:
    """One playbook of a Hecate flow, from the port's result and task timings."""

    playbook: str
    hosts: int
    wall_s: float
    before_first_task_s: float | None  # ansible-playbook start-up, inventory, connection
    # task name -> [slowest host s, mean over hosts s, host count]
    tasks: dict[str, list[float]] = field(default_factory=dict)


class RecordingAnsible:
    """The flow's Ansible port, recording each playbook it runs (the flow is unchanged)."""

    def __init__(self, inner: Ansible) -> None:
        self.inner = inner
        self.runs: list[PlaybookRun] = []

    def run(
        self,
        request: PlaybookRequest,
        *,
        on_event: EventCallback | None = None,
        cancel: Any = None,
    ) -> PlaybookResult:
        called_at, start = time.time(), time.monotonic()
        result = self.inner.run(request, on_event=on_event, cancel=cancel)
        self._record(result.playbook, [result], called_at, time.monotonic() - start)
        return result

    def run_batch(
        self,
        requests: Sequence[PlaybookRequest],
        *,
        on_event: EventCallback | None = None,
        cancel: Any = None,
    ) -> list[PlaybookResult]:
        called_at, start = time.time(), time.monotonic()
        results = self.inner.run_batch(requests, on_event=on_event, cancel=cancel)
        name = "+".join(r.playbook for r in results)
        self._record(f"batch {name}", results, called_at, time.monotonic() - start)
        return results

    def hold(self, requests: Sequence[PlaybookRequest]) -> None:
        self.inner.hold(requests)

    def drop_held(self) -> None:
        self.inner.drop_held()

    def _record(
        self, name: str, results: list[PlaybookResult], called_at: float, wall: float
    ) -> None:
        tasks = [t for result in results for t in result.tasks]
        starts = [t.start.timestamp() for t in tasks if t.start is not None]
        per_task: dict[str, list[float]] = {}
        for timing in tasks:
            if timing.duration_s is not None:
                per_task.setdefault(timing.task, []).append(timing.duration_s)
        self.runs.append(
            PlaybookRun(
                playbook=name,
                hosts=len({h for result in results for h in result.hosts}),
                wall_s=round(wall, 3),
                before_first_task_s=round(min(starts) - called_at, 3) if starts else None,
                tasks={
                    task: [round(max(d), 3), round(sum(d) / len(d), 3), len(d)]
                    for task, d in per_task.items()
                },
            )
        )


@dataclass
class HecateRun:
    wall_s: float
    cpu_s: float
    stages: list[tuple[str, float]]
    playbooks: list[PlaybookRun]


DEBOUNCE_S = 3.0  # the shortest debounce a daemon would run with before a shutdown


def hecate_run(
    twin: Twin, state: Path, kind: str, *, warm: bool = False, cli_warmup: bool = False
) -> HecateRun:
    """Wall seconds, controller CPU seconds, stages and playbooks of one Hecate flow.

    warm=False: as the CLI runs it (a new port; the first node stage opens the connections;
    cli_warmup=True: opened in the background as the flow starts instead, the comparison of
    --compare-cli-warmup). warm=True: as the daemon runs it, whose long-lived port
    opened the connections during the debounce window, before the decision, and started the
    node batch ahead (held): the connect playbook runs first and the clock (and the CPU
    count) starts after it and the window."""
    config = twin_config(twin, state, shutdown={"etcd_snapshot": False})
    with contextlib.ExitStack() as stack:
        warmer = None
        if warm:
            port = stack.enter_context(open_port(config))
            # as the daemon's (hecate/daemon/wiring.py): after connecting, the shutdown's node
            # batch is started ahead and held; the debounce window (seconds at least) lets it
            # reach its gate before the decision
            options = ShutdownOptions(mode="cluster-only", reason="bench")
            warmer = ConnectionWarmer(lambda: port, ahead=lambda: node_batch_ahead(config, options))
            warmer.warm(time.monotonic())
            warmer.join(60.0)
            time.sleep(DEBOUNCE_S)
        return _timed_flow(config, kind, warmer, cli_warmup)


def _timed_flow(
    config: HecateConfig, kind: str, warmer: ConnectionWarmer | None, cli_warmup: bool
) -> HecateRun:
    cpu0 = _cpu()
    start = time.monotonic()
    # --compare-cli-warmup's other arm: a CLI shutdown that warms up beside its API stages
    warm = warmer is None and kind == "shutdown" and cli_warmup
    with open_flow_context(config, read_ups=None, warmer=warmer, warm=warm) as ctx:
        recorder = RecordingAnsible(ctx.ansible)
        ctx.ansible = recorder
        if kind == "shutdown":
            report = run_shutdown(ctx, ShutdownOptions(mode="cluster-only", reason="bench"))
        else:
            report = run_startup(ctx, StartupOptions(reason="bench"))
        elapsed = time.monotonic() - start
        if isinstance(recorder.inner, AnsiblePort):
            # a run returns at ansible's stats, its process exits behind it: count its CPU
            # here, not in the next flow's
            recorder.inner.settle(30.0)
    cpu = _cpu() - cpu0
    if report.outcome is not Outcome.SUCCESS:
        # The node stages must have run everywhere for the timing to count; an API stage the
        # twin's stand-in answered 504 (its quorum model, right after a startup) only warns.
        node_stages = [s for s in report.stages if s.name.startswith(("stop_", "start_"))]
        if report.outcome is not Outcome.PARTIAL or any(
            s.status.value != "ok" for s in node_stages
        ):
            raise RuntimeError(f"{kind} {report.outcome.value}: {report.to_json()}")
        bad = [f"{s.name} {s.status.value}" for s in report.stages if s.status.value != "ok"]
        print(f"warning: {kind} partial ({', '.join(bad)}); node stages ok, timing kept")
    stages = [(s.name, round(s.duration_s, 3)) for s in report.stages]
    return HecateRun(round(elapsed, 3), round(cpu, 3), stages, recorder.runs)


def bench_size(
    servers: int, agents: int, runs: int, image: str, *, compare_cli_warmup: bool = False
) -> dict[str, Any]:
    keys = ("crit_down", "crit_up", "ssh_down", "ssh_up", "hecate_down", "hecate_up")
    warm_keys = ("warm_down", "warm_cpu_down")
    results: dict[str, Any] = {k: [] for k in (*keys, *warm_keys, "cpu_down", "cpu_up")}
    results["load_before"] = os.getloadavg()
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
            for kind, suffix in (("shutdown", "down"), ("startup", "up")):
                run = hecate_run(twin, state, kind)
                results[f"hecate_{suffix}"].append(run.wall_s)
                results[f"cpu_{suffix}"].append(run.cpu_s)
                results.setdefault(f"runs_{suffix}", []).append(asdict(run))
            # the daemon warms its connections on battery, before a shutdown only (at a
            # startup the nodes have just booted: nothing can be open yet)
            run = hecate_run(twin, state, "shutdown", warm=True)
            results["warm_down"].append(run.wall_s)
            results["warm_cpu_down"].append(run.cpu_s)
            results.setdefault("warm_runs_down", []).append(asdict(run))
            hecate_run(twin, state, "startup")  # back up for the next round
            if compare_cli_warmup:
                run = hecate_run(twin, state, "shutdown", cli_warmup=True)
                results.setdefault("beside_down", []).append(run.wall_s)
                results.setdefault("beside_cpu_down", []).append(run.cpu_s)
                hecate_run(twin, state, "startup")
    results["load_after"] = os.getloadavg()
    return results


def _fit(points: list[tuple[int, float]]) -> tuple[float, float]:
    """(fixed, per node) of the least-squares line through (nodes, value)."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.mean(xs), statistics.mean(ys)
    slope = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x in xs)
    return my - slope * mx, slope


def _where(size: str, flow: str, run: dict[str, Any]) -> None:
    """One Hecate run's time, by stage and by playbook (slowest tasks first)."""
    print(f"\n{size} {flow} (one run, {run['wall_s']:.2f} s, {run['cpu_s']:.2f} CPU-s):")
    print("  stages: " + ", ".join(f"{name} {sec:.2f} s" for name, sec in run["stages"]))
    for book in run["playbooks"]:
        tasks = sorted(book["tasks"].items(), key=lambda item: -item[1][0])[:4]
        text = "; ".join(f"{t} max {v[0]:.2f} mean {v[1]:.2f} s x{v[2]:.0f}" for t, v in tasks)
        print(
            f"  {book['playbook']} ({book['hosts']} hosts): {book['wall_s']:.2f} s, "
            f"{book['before_first_task_s']} s before the first task; {text}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="3+12,3+40")
    parser.add_argument("--json-out", type=Path, default=None, help="Raw results as JSON.")
    parser.add_argument(
        "--compare-cli-warmup",
        action="store_true",
        help="Also a CLI shutdown that warms up in the background beside its API stages.",
    )
    args = parser.parse_args()
    image = ensure_image()
    print(
        "| twin | nodes | flow | critical path | plain ssh script | Hecate | Hecate / ssh script "
        "| controller CPU | CPU-s per node |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    medians: dict[str, list[tuple[int, float]]] = {}
    raw: dict[str, Any] = {}
    for size in args.sizes.split(","):
        servers, agents = (int(x) for x in size.split("+"))
        nodes = servers + agents
        res = bench_size(
            servers, agents, args.runs, image, compare_cli_warmup=args.compare_cli_warmup
        )
        raw[size] = res
        if args.json_out is not None:
            args.json_out.write_text(json.dumps(raw, indent=1))
        for flow, crit, ssh, hec, cpu in (
            ("shutdown", "crit_down", "ssh_down", "hecate_down", "cpu_down"),
            ("startup", "crit_up", "ssh_up", "hecate_up", "cpu_up"),
            ("shutdown (daemon)", "crit_down", "ssh_down", "warm_down", "warm_cpu_down"),
            (
                "shutdown (CLI, warm-up beside)",
                "crit_down",
                "ssh_down",
                "beside_down",
                "beside_cpu_down",
            ),
        ):
            if hec not in res:
                continue
            c, p, h = (statistics.median(res[k]) for k in (crit, ssh, hec))
            u = statistics.median(res[cpu])
            pairs = ((f"ssh {flow}", p), (f"hecate {flow}", h), (f"cpu {flow}", u))
            for key, value in pairs if flow in ("shutdown", "startup") else pairs[1:]:
                medians.setdefault(key, []).append((nodes, value))
            print(
                f"| {size} | {nodes} | {flow} | {c:.2f} s | {p:.2f} s | {h:.2f} s | "
                f"{h / p:.2f}x | {u:.2f} CPU-s | {u / nodes:.3f} |",
                flush=True,
            )
        load = " ".join(f"{x:.1f}" for x in (*res["load_before"], *res["load_after"]))
        print(f"(load average before / after {size}: {load})", flush=True)
    for size, res in raw.items():
        for suffix, flow in (("down", "shutdown"), ("up", "startup")):
            _where(size, flow, res[f"runs_{suffix}"][-1])
            if suffix == "down":
                _where(size, f"{flow} (daemon)", res["warm_runs_down"][-1])
    if len(raw) >= 2:
        print("\nstraight-line fit over the sizes (fixed part + per node):")
        for key, points in medians.items():
            fixed, per_node = _fit(points)
            unit = "CPU-s" if "cpu" in key else "s"
            print(f"  {key}: {fixed:.2f} {unit} + {per_node:.3f} {unit}/node")


if __name__ == "__main__":
    main()
