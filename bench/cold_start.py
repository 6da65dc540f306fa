"""Benchmark (issue 25): a cold start whose nodes stay off until woken, against the critical path.

The twin's nodes have no "restore on AC loss" (``Twin(stays_off=...)``): only their BMC brings
them back (tests/testbed/bmc.py: a real IPMI BMC per node on 127.0.0.1, pyghmi's, switching
the node's container; `--method mixed` wakes the agents by Wake-on-LAN and Redfish instead).
Per round, after the nodes were powered off hard through their BMCs (``podman kill``) and their
Nodes went NotReady:

* boot (the critical path): every node powered on through its BMC as Hecate's `power_on` stage
  does (servers' commands first, then the agents'; Hecate's own power port, so the same
  ipmitool calls), then each node's SSH polled with the same check Hecate uses (TCP connect and
  the "SSH-" banner) every 0.2 s. A node's boot is from its power-on command to its SSH
  answering; the critical path is the slowest node's. The twin's k3s units are enabled at boot
  (as a k3s install's are), so the time until every Node is Ready with nothing else done is
  measured too: the cluster on its own;
* Hecate: the startup the daemon runs once mains is stable (`run_startup` through
  `open_flow_context`, the UPS read from a real upsd on mains at 100 %), timed from its start
  (mains stable) to the end of its `nodes_ready` stage (all Nodes Ready, uncordoned) and to its
  end (Flux), with each stage's start and duration, its playbooks and its controller CPU.

The load average is printed with each size (2 cores, other work on the machine slows all of it).

    .venv/bin/python -m bench.cold_start [--runs 3] [--sizes 1+2,3+12] [--method ipmi|mixed]
        [--json-out FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.flows import RecordingAnsible, _cpu
from hecate.adapters.nut.port import Ups, poll
from hecate.adapters.power.port import open_power, ssh_target
from hecate.adapters.power.ssh_answer import ssh_answers
from hecate.config.model import HecateConfig, parse_config
from hecate.core.plans import StartupOptions, power_on_order
from hecate.flows.open_context import open_flow_context
from hecate.flows.startup import run_startup
from tests.integration.support import twin_config_data
from tests.testbed.bmc import Hardware, hardware
from tests.testbed.image import ensure_image
from tests.testbed.nut import NutServer
from tests.testbed.twin import Twin, make_tls, wait_until

PASSWORD = "bmc-bench-secret"  # noqa: S105 - the twin's BMCs, on 127.0.0.1
BOOT_POLL_S = 0.2
NOT_READY_S = 4.0  # the stand-in's nodeGraceSeconds (3 s) and one: every Node NotReady
TIMEOUT_S = 900.0  # a 3+12 twin boots 15 systemd containers on 2 cores


@dataclass
class Boot:
    """One round of the critical path: every node powered on at once, nothing else done."""

    per_node_s: dict[str, float]  # power-on command sent -> SSH answers
    critical_s: float  # the slowest node's boot
    all_ssh_s: float  # first power-on sent -> the last node's SSH answers
    cluster_ready_s: float  # first power-on sent -> every Node Ready (k3s enabled at boot)


@dataclass
class ColdStart:
    """One round of Hecate's cold start."""

    ready_s: float  # start -> end of nodes_ready
    wall_s: float  # start -> the flow's end (Flux included)
    cpu_s: float
    outcome: str
    stages: list[tuple[str, float, float]]  # name, start from the flow's start, duration
    playbooks: list[dict[str, Any]] = field(default_factory=list)


def power_nodes(twin: Twin, hw: Hardware, work: Path, method: str) -> dict[str, Any]:
    """power.nodes for the twin: IPMI for every node, or (mixed) IPMI for the servers and the
    agents by Wake-on-LAN and Redfish in turn."""
    secret = work / "bmc-password"
    secret.write_text(PASSWORD + "\n")
    secret.chmod(0o600)
    nodes: dict[str, Any] = {}
    for index, node in enumerate(twin.nodes):
        kind = (
            "ipmi" if method == "ipmi" or node.role == "server" else ("wol", "redfish")[index % 2]
        )
        if kind == "ipmi":
            nodes[node.name] = {
                "method": "ipmi",
                "address": f"127.0.0.1:{hw.ipmi_ports[node.name]}",
                "user": "admin",
                "password_file": str(secret),
                "cipher_suite": 3,  # pyghmi's BMC: SHA-1
            }
        elif kind == "wol":
            mac = _mac(index)
            nodes[node.name] = {
                "method": "wol",
                "mac": mac,
                "broadcast": "127.0.0.1",
                "port": hw.wol_port,
            }
        else:
            nodes[node.name] = {
                "method": "redfish",
                "url": f"https://127.0.0.1:{hw.redfish_port}",
                "user": "admin",
                "password_file": str(secret),
                "system": node.name,
                "ca_file": str(work / "tls" / "ca.crt"),
            }
    return nodes


def _mac(index: int) -> str:
    return f"02:00:00:00:01:{index:02x}"


def all_off(twin: Twin, config: HecateConfig) -> None:
    """Every node powered off hard through its BMC (a power cut), then NotReady in the API."""
    running = [n.name for n in twin.nodes if twin.is_running(n)]
    with ThreadPoolExecutor(max(1, len(running))) as pool:
        offs = list(pool.map(lambda node: _off(twin, config, node), running))
    failed = [node for node, off in zip(running, offs, strict=True) if not off]
    if failed:
        raise RuntimeError(f"still on after a hard power-off: {', '.join(failed)}")
    time.sleep(NOT_READY_S)


def _off(twin: Twin, config: HecateConfig, node: str) -> bool:
    """Hard off through the node's BMC (IPMI or Redfish); a WoL node has none, so podman kill:
    what a power cut does to it."""
    if config.power.method_of(node) in ("ipmi", "redfish"):
        if not open_power(config).off(node, hard=True).ok:
            return False
    else:
        twin.poweroff(node)
    with contextlib.suppress(Exception):
        wait_until(lambda: not twin.is_running(node), 60.0, f"{node} still on")
    return not twin.is_running(node)


def measure_boot(twin: Twin, config: HecateConfig) -> Boot:
    """Power every node on as the power_on stage does and time each one's boot."""
    power = open_power(config)
    order = power_on_order(config)
    servers = [n for n in order if n in config.nodes.servers]
    agents = [n for n in order if n not in config.nodes.servers]
    sent: dict[str, float] = {}

    def send(node: str) -> None:
        sent[node] = time.monotonic()
        result = power.on(node)
        if not result.ok:
            raise RuntimeError(f"{node}: power-on refused: {result.reason}")

    def answered(node: str) -> float:
        target = ssh_target(config, node)
        deadline = time.monotonic() + TIMEOUT_S
        while not ssh_answers(target, timeout=2.0)[0]:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{node}: SSH silent after {TIMEOUT_S:.0f}s")
            time.sleep(BOOT_POLL_S)
        return time.monotonic()

    start = time.monotonic()
    polls: dict[str, Future[float]] = {}
    with ThreadPoolExecutor(2 * len(order)) as pool:
        for group in (servers, agents):  # each node polled from its own power-on on
            list(pool.map(send, group))
            polls.update({node: pool.submit(answered, node) for node in group})
        done = {node: future.result() for node, future in polls.items()}
    per_node = {n: round(done[n] - sent[n], 3) for n in order}

    def ready() -> bool:
        try:
            seen = twin.nodes_ready()
        except Exception:
            return False
        return len(seen) == len(twin.nodes) and all(seen.values())

    wait_until(ready, TIMEOUT_S, "the cluster's Nodes Ready on their own", interval=0.5)
    return Boot(
        per_node_s=per_node,
        critical_s=max(per_node.values()),
        all_ssh_s=round(max(done.values()) - start, 3),
        cluster_ready_s=round(time.monotonic() - start, 3),
    )


def cold_start(config: HecateConfig) -> ColdStart:
    """Hecate's startup as the daemon runs it when mains is stable, timed per stage."""
    client = Ups.from_config(config).client
    marks: dict[str, list[float]] = {}

    def progress(stage: str, status: str, _detail: str) -> None:
        if status == "running":
            marks.setdefault(stage, [time.monotonic()])
        elif status != "waiting" and stage in marks:  # the stage's end (the last one counts)
            marks[stage][1:] = [time.monotonic()]

    cpu0, start = _cpu(), time.monotonic()
    with open_flow_context(config, read_ups=lambda: poll(client), progress=progress) as ctx:
        recorder = RecordingAnsible(ctx.ansible)
        ctx.ansible = recorder
        report = run_startup(ctx, StartupOptions(reason="bench: mains stable"))
        wall = time.monotonic() - start
    cpu = _cpu() - cpu0
    ready = next((s for s in report.stages if s.name == "nodes_ready"), None)
    if ready is None or ready.status.value != "ok" or len(marks.get("nodes_ready", [])) < 2:
        raise RuntimeError(f"startup did not reach Nodes Ready: {report.to_json()}")
    if report.outcome.value != "success":
        bad = [f"{s.name} {s.status.value}" for s in report.stages if s.status.value != "ok"]
        print(f"warning: startup {report.outcome.value} ({', '.join(bad)}); Nodes Ready, kept")
    stages = [
        (
            s.name,
            round(marks[s.name][0] - start, 3) if s.name in marks else -1.0,
            round(s.duration_s, 3),
        )
        for s in report.stages
    ]
    return ColdStart(
        ready_s=round(marks["nodes_ready"][1] - start, 3),
        wall_s=round(wall, 3),
        cpu_s=round(cpu, 3),
        outcome=report.outcome.value,
        stages=stages,
        playbooks=[asdict(run) for run in recorder.runs],
    )


@contextlib.contextmanager
def cold_twin(
    servers: int, agents: int, image: str, method: str
) -> Iterator[tuple[Twin, HecateConfig]]:
    """A started twin whose nodes stay off, its hardware, a upsd on mains and the config."""
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hecate-cold-")))
        nut = stack.enter_context(NutServer())
        twin = Twin(servers, agents, workdir=tmp / "twin", image=image, start_timeout=TIMEOUT_S)
        stack.enter_context(twin)
        twin.stays_off.update(n.name for n in twin.nodes)  # no "restore on AC loss"
        make_tls(tmp / "tls")
        nodes: dict[str, dict[str, Any]] = {
            n.name: {"switch": {"container": n.container}} for n in twin.nodes
        }
        for index, node in enumerate(twin.nodes):
            nodes[node.name]["mac"] = _mac(index)
        hw = stack.enter_context(hardware(tmp / "hw", nodes, password=PASSWORD, tls=tmp / "tls"))
        data = twin_config_data(
            twin,
            tmp / "state",
            nut,
            power={"nodes": power_nodes(twin, hw, tmp, method)},
            startup={
                "power_stable_seconds": 0,
                "min_battery_charge": 50,
                "power_on_timeout_seconds": TIMEOUT_S,
                "etcd_quorum_timeout_seconds": TIMEOUT_S,
                "api_timeout_seconds": TIMEOUT_S,
                "nodes_ready_timeout_seconds": TIMEOUT_S,
                "flux_ready_timeout_seconds": 120,
            },
        )
        yield twin, parse_config(data)


def bench_size(servers: int, agents: int, runs: int, image: str, method: str) -> dict[str, Any]:
    res: dict[str, Any] = {"boots": [], "colds": [], "load": [os.getloadavg()]}
    with cold_twin(servers, agents, image, method) as (twin, config):
        all_off(twin, config)
        cold_start(config)  # warm-up: caches, the first SSH connections' known_hosts
        for _ in range(runs):
            all_off(twin, config)
            res["boots"].append(asdict(measure_boot(twin, config)))
            all_off(twin, config)
            res["colds"].append(asdict(cold_start(config)))
            res["load"].append(os.getloadavg())
    return res


def _med(values: list[float]) -> float:
    return statistics.median(values)


def report(size: str, res: dict[str, Any]) -> None:
    boots, colds = res["boots"], res["colds"]
    crit = _med([b["critical_s"] for b in boots])
    own = _med([b["cluster_ready_s"] for b in boots])
    ready = _med([c["ready_s"] for c in colds])
    wall = _med([c["wall_s"] for c in colds])
    cpu = _med([c["cpu_s"] for c in colds])
    # what the startup adds once the nodes have booted: from power_on's end to Nodes Ready
    after = _med(
        [c["ready_s"] - sum(next(x[1:] for x in c["stages"] if x[0] == "power_on")) for c in colds]
    )
    print(
        f"| {size} | {len(boots)} | {crit:.2f} s | {_med([b['all_ssh_s'] for b in boots]):.2f} s"
        f" | {own:.2f} s | {ready:.2f} s | {ready / crit:.2f}x | {ready / own:.2f}x"
        f" | {after:.2f} s | {wall:.2f} s | {cpu:.2f} CPU-s |",
        flush=True,
    )
    names = [name for name, _, _ in colds[0]["stages"]]
    per_stage = {
        n: _med([next(d for m, _, d in c["stages"] if m == n) for c in colds]) for n in names
    }
    print(f"  {size} stages (medians): " + ", ".join(f"{n} {s:.2f}" for n, s in per_stage.items()))
    slow = {n: _med([b["per_node_s"][n] for b in boots]) for n in boots[0]["per_node_s"]}
    print(
        f"  {size} boot per node (medians): " + ", ".join(f"{n} {s:.1f}" for n, s in slow.items())
    )
    for c in colds:
        print(
            f"  {size} run: ready {c['ready_s']:.2f} s, "
            + ", ".join(f"{n}@{at:.1f}+{d:.2f}" for n, at, d in c["stages"])
        )
    for book in colds[-1]["playbooks"]:
        tasks = sorted(book["tasks"].items(), key=lambda item: -item[1][0])[:3]
        text = "; ".join(f"{t} max {v[0]:.2f} mean {v[1]:.2f} x{v[2]:.0f}" for t, v in tasks)
        print(
            f"  {size} last run {book['playbook']} ({book['hosts']} hosts): "
            f"{book['wall_s']:.2f} s, {book['before_first_task_s']} s before the first task; {text}"
        )
    load = "; ".join(" ".join(f"{x:.1f}" for x in avg) for avg in res["load"])
    print(f"  {size} load average (1 5 15 min) before and after each round: {load}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="1+2,3+12")
    parser.add_argument("--method", choices=("ipmi", "mixed"), default="ipmi")
    parser.add_argument("--json-out", type=Path, default=None, help="Raw results as JSON.")
    args = parser.parse_args()
    image = ensure_image()
    raw: dict[str, Any] = {}
    print(
        "| twin | n | critical path (slowest boot) | all SSH | cluster on its own | Hecate to "
        "Nodes Ready | / critical path | / cluster on its own | after power_on | whole startup "
        "| controller CPU |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in args.sizes.split(","):
        servers, agents = (int(x) for x in size.split("+"))
        raw[size] = bench_size(servers, agents, args.runs, image, args.method)
        if args.json_out is not None:
            args.json_out.write_text(json.dumps(raw, indent=1))
        report(size, raw[size])


if __name__ == "__main__":
    main()
