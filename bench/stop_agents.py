"""Benchmark: stop k3s-agent on M agents through Hecate's runner port vs a plain parallel ssh loop.

Run from the repository root (needs podman and the test bed's node image)::

    .venv/bin/python -m bench.stop_agents            # M = 2 and 5, 5 runs each
    .venv/bin/python -m bench.stop_agents --agents 3 --runs 7

For each M a fresh twin (1 server + M agents) is started. Every run first makes sure every
agent's unit is active, then times one of:

* ``ssh loop``: ``ssh -i KEY -p PORT hecate@127.0.0.1 sudo -n systemctl stop k3s-agent`` for
  every agent at once (new connections each time, no ControlPersist);
* ``port (cold)``: a new :class:`AnsiblePort` (new ssh control dir: no reused connections)
  running ``stop_agents`` (``k3s_service.yml``, group agent), i.e. what one Hecate invocation pays;
* ``port (warm)``: one port reused across runs (ControlPersist connections from the previous
  run are still up), i.e. what a running daemon pays.

Prints a Markdown table of medians (and min/max) in seconds, plus the ratio to the ssh loop.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hecate.adapters.ansible.assets import Playbook
from hecate.adapters.ansible.port import AnsiblePort
from hecate.adapters.ansible.protocol import PlaybookRequest
from hecate.config.model import HecateConfig, parse_config
from tests.testbed.twin import Twin, TwinNode


def make_config(twin: Twin, state_dir: Path) -> HecateConfig:
    return parse_config(
        {
            "nodes": {
                "servers": [n.name for n in twin.servers],
                "agents": [n.name for n in twin.agents],
            },
            "state_dir": str(state_dir),
            "ssh_user": twin.ssh_user,
            "ssh_identity_file": str(twin.ssh_key),
            "ssh_node_hosts": twin.ssh_node_hosts(),
            "ssh_connect_timeout_seconds": 10,
            "ups": {"target": "pyrphoros@localhost"},
        }
    )


def start_agents(twin: Twin) -> None:
    def start(agent: TwinNode) -> None:
        # fast stop/start cycles would hit systemd's start rate limit
        twin.systemctl(agent, "reset-failed", agent.unit)
        twin.start_unit(agent)

    with ThreadPoolExecutor(max_workers=len(twin.agents) or 1) as pool:
        list(pool.map(start, twin.agents))
    for agent in twin.agents:
        if not twin.unit_active(agent):
            raise RuntimeError(f"{agent.name}: k3s-agent did not start")


def ssh_loop(twin: Twin) -> float:
    began = time.monotonic()
    procs = [
        subprocess.Popen(
            [*twin.ssh_argv(agent), "sudo -n systemctl stop k3s-agent"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for agent in twin.agents
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"ssh loop failed: {err.decode(errors='replace')}")
    return time.monotonic() - began


def port_run(port: AnsiblePort, twin: Twin) -> float:
    began = time.monotonic()
    result = port.run(
        PlaybookRequest(Playbook.STOP_AGENTS, limit=[a.name for a in twin.agents], timeout_s=120)
    )
    took = time.monotonic() - began
    if not result.ok or len(result.changed_hosts) != len(twin.agents):
        raise RuntimeError(f"port run failed: {result.summary()} (see {result.artifacts_dir})")
    return took


def check_stopped(twin: Twin) -> None:
    for agent in twin.agents:
        if twin.unit_active(agent):
            raise RuntimeError(f"{agent.name}: k3s-agent still active")


def bench(agents: int, runs: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"ssh loop": [], "port (cold)": [], "port (warm)": []}
    with (
        tempfile.TemporaryDirectory(prefix="hecate-bench-") as tmp,
        Twin(servers=1, agents=agents, workdir=Path(tmp) / "twin") as twin,
    ):
        config = make_config(twin, Path(tmp) / "state")
        # learn the host keys once (both sides use accept-new with their own known_hosts)
        with AnsiblePort.from_config(config) as warm:
            warm.run(PlaybookRequest(Playbook.PING))
            ssh_loop(twin)
            start_agents(twin)
            for _ in range(runs):
                for label, samples in times.items():
                    start_agents(twin)
                    if label == "ssh loop":
                        took = ssh_loop(twin)
                    elif label == "port (warm)":
                        took = port_run(warm, twin)
                    else:
                        with AnsiblePort.from_config(config) as cold:
                            took = port_run(cold, twin)
                    check_stopped(twin)
                    samples.append(took)
                    print(f"M={agents} {label}: {took:.2f}s", file=sys.stderr)
            start_agents(twin)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, nargs="*", default=[2, 5])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print("| M agents | method | median s | min s | max s | median / ssh loop |")
    print("|---:|---|---:|---:|---:|---:|")
    for count in args.agents:
        times = bench(count, args.runs)
        base = statistics.median(times["ssh loop"])
        for label, values in times.items():
            median = statistics.median(values)
            print(
                f"| {count} | {label} | {median:.2f} | {min(values):.2f} | {max(values):.2f} "
                f"| {median / base:.1f}x |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
