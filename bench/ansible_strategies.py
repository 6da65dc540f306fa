"""Benchmark (issue #16 item 3): Mitogen's strategy and a persistent runner against today's port.

Run from the repository root (needs podman and the test bed's node image; Mitogen only if
installed in the venv: ``.venv/bin/pip install mitogen``)::

    .venv/bin/python -m bench.ansible_strategies                  # M = 5 and 12, 3 runs each
    .venv/bin/python -m bench.ansible_strategies --agents 5 --runs 5 --skip behaviour

For each M a fresh twin (1 server + M agents) is started and four things are measured:

``strategies``
    ``stop_agents`` then ``start_agents`` through one :class:`AnsiblePort` per strategy (reused
    across runs, as the daemon does): Ansible's ``linear`` (today) against Mitogen's
    ``mitogen_linear``, set only through the port's ``extra_env`` (``ANSIBLE_STRATEGY`` and
    ``ANSIBLE_STRATEGY_PLUGINS``). The strategies alternate inside each run (same load). Wall
    time and controller CPU (this process + its waited-for children, ``getrusage``).
``pertask``
    A playbook of K tasks per agent (K = 1 and 6; ``raw``, or ``command`` with
    ``--pertask-actions command``) under each strategy: the fixed part of a run and the CPU per
    extra host-task.
``behaviour``
    Under each strategy: ``--check`` (nothing may change), a ``raw`` task past its ``timeout:``
    (must fail that host, in about the timeout), and one agent unreachable (a closed port: it
    must be reported unreachable while the other agents are still stopped).
``persistent``
    A prototype of a persistent runner: a "zygote" process that has already imported Ansible's
    playbook CLI forks a child per run, against a fresh ``ansible-playbook`` per run and
    against :meth:`AnsiblePort.run` itself; the first two get the exact argv and environment
    ansible-runner builds for the port's run (its ``awx_display`` callback still writes the job
    events), judged by rc and the ``playbook_on_stats`` event, and the twin's units.

Prints Markdown tables (medians, min-max) and the machine's load average.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.stop_agents import check_stopped, make_config, start_agents
from hecate.adapters.ansible.assets import Playbook
from hecate.adapters.ansible.inventory import dump_inventory
from hecate.adapters.ansible.port import AnsiblePort
from hecate.adapters.ansible.protocol import PlaybookRequest, PlaybookResult
from hecate.adapters.ansible.rundir import new_run_dir, runner_settings, write_private_data_dir
from hecate.config.model import parse_config
from tests.testbed.twin import Twin

RUN_TIMEOUT_S = 180.0
STRATEGIES = ("linear", "mitogen_linear")


def _cpu() -> float:
    """CPU seconds of this process and its waited-for children so far."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def mitogen_env() -> dict[str, str] | None:
    """The port's ``extra_env`` that selects Mitogen's linear strategy, or None if absent."""
    spec = importlib.util.find_spec("ansible_mitogen")
    if spec is None or spec.origin is None:
        return None
    plugins = Path(spec.origin).resolve().parent / "plugins" / "strategy"
    return {"ANSIBLE_STRATEGY": "mitogen_linear", "ANSIBLE_STRATEGY_PLUGINS": str(plugins)}


def strategy_env(strategy: str) -> dict[str, str]:
    if strategy == "linear":
        return {}
    env = mitogen_env()
    if env is None:
        raise SystemExit("mitogen is not installed in this venv (.venv/bin/pip install mitogen)")
    return env


@dataclass(frozen=True)
class Sample:
    wall_s: float
    cpu_s: float
    result: PlaybookResult


def timed_run(port: AnsiblePort, request: PlaybookRequest) -> Sample:
    cpu0, began = _cpu(), time.monotonic()
    result = port.run(request)
    return Sample(time.monotonic() - began, _cpu() - cpu0, result)


def expect(cond: bool, what: str, result: PlaybookResult) -> None:
    if not cond:
        raise RuntimeError(f"{what}: {result.summary()} (see {result.artifacts_dir})")


# --------------------------------------------------------------------------- strategies


def bench_strategies(
    twin: Twin, ports: Mapping[str, AnsiblePort], runs: int
) -> dict[tuple[str, str], list[Sample]]:
    agents = [a.name for a in twin.agents]
    samples: dict[tuple[str, str], list[Sample]] = {}
    for i in range(runs):
        for strategy, port in ports.items():
            start_agents(twin)
            stop = timed_run(port, PlaybookRequest(Playbook.STOP_AGENTS, agents, timeout_s=120))
            expect(
                stop.result.ok and stop.result.changed_hosts == sorted(agents), "stop", stop.result
            )
            check_stopped(twin)
            start = timed_run(port, PlaybookRequest(Playbook.START_AGENTS, agents, timeout_s=120))
            expect(
                start.result.ok and start.result.changed_hosts == sorted(agents),
                "start",
                start.result,
            )
            for agent in twin.agents:
                if not twin.unit_active(agent):
                    raise RuntimeError(f"{strategy}: {agent.name} not active after start_agents")
            samples.setdefault((strategy, "stop_agents"), []).append(stop)
            samples.setdefault((strategy, "start_agents"), []).append(start)
            print(
                f"M={len(agents)} run {i + 1} {strategy}: stop {stop.wall_s:.2f}s "
                f"{stop.cpu_s:.2f}cpu, start {start.wall_s:.2f}s {start.cpu_s:.2f}cpu",
                file=sys.stderr,
            )
    return samples


# --------------------------------------------------------------------------- behaviour

TIMEOUT_PLAYBOOK = """\
- name: A raw task past its timeout
  hosts: agent
  gather_facts: false
  tasks:
    - name: Sleep longer than the timeout
      ansible.builtin.raw: sleep 30
      timeout: 3
"""


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def behaviour(twin: Twin, state: Path, strategy: str, workdir: Path) -> list[tuple[str, str]]:
    """Check mode, a task timeout and an unreachable host under one strategy."""
    agents = sorted(a.name for a in twin.agents)
    env = strategy_env(strategy)
    config = make_config(twin, state)
    rows: list[tuple[str, str]] = []
    with AnsiblePort.from_config(config, extra_env=env) as port:
        start_agents(twin)
        s = timed_run(port, PlaybookRequest(Playbook.STOP_AGENTS, agents, check=True))
        still = all(twin.unit_active(a) for a in twin.agents)
        rows.append(
            (
                "check mode (stop_agents --check)",
                f"status {s.result.status}, would change {len(s.result.changed_hosts)}/"
                f"{len(agents)}, units still active: {still}",
            )
        )
        book = workdir / f"timeout-{strategy}.yml"
        book.write_text(TIMEOUT_PLAYBOOK)
        s = timed_run(port, PlaybookRequest(str(book), agents[:2], timeout_s=60))
        rows.append(
            (
                "raw task, `timeout: 3`, sleeps 30 s",
                f"status {s.result.status}, failed {len(s.result.failed_hosts)}/2, "
                f"unreachable {len(s.result.unreachable_hosts)}, {s.wall_s:.1f} s",
            )
        )
    dead = agents[0]
    hosts = twin.ssh_node_hosts()
    hosts[dead] = f"127.0.0.1:{_closed_port()}"
    broken = parse_config(
        {
            "nodes": {
                "servers": [n.name for n in twin.servers],
                "agents": [n.name for n in twin.agents],
            },
            "state_dir": str(state),
            "ssh_user": twin.ssh_user,
            "ssh_identity_file": str(twin.ssh_key),
            "ssh_node_hosts": hosts,
            "ssh_connect_timeout_seconds": 10,
            "ups": {"target": "pyrphoros@localhost"},
        }
    )
    with AnsiblePort.from_config(broken, extra_env=env) as port:
        start_agents(twin)
        s = timed_run(port, PlaybookRequest(Playbook.STOP_AGENTS, agents, timeout_s=120))
        others = [a for a in twin.agents if a.name != dead]
        stopped = sum(not twin.unit_active(a) for a in others)
        rows.append(
            (
                f"{dead} unreachable (closed port), stop_agents",
                f"status {s.result.status} rc {s.result.rc}, unreachable "
                f"{s.result.unreachable_hosts}, others stopped {stopped}/{len(others)}, "
                f"{s.wall_s:.1f} s",
            )
        )
    start_agents(twin)
    return rows


# --------------------------------------------------------------------------- per task

TASKS_PLAYBOOK = """\
- name: {count} tasks per agent
  hosts: agent
  gather_facts: false
  tasks:
{tasks}"""


def tasks_playbook(workdir: Path, count: int, action: str) -> Path:
    one = f'    - name: Task {{i}}\n      ansible.builtin.{action}: "true"\n'
    one += "      changed_when: false\n"
    path = workdir / f"tasks-{action}-{count}.yml"
    path.write_text(
        TASKS_PLAYBOOK.format(count=count, tasks="".join(one.format(i=i) for i in range(count)))
    )
    return path


def bench_per_task(
    twin: Twin, ports: Mapping[str, AnsiblePort], runs: int, workdir: Path, action: str
) -> dict[tuple[str, int], list[Sample]]:
    """K tasks (``raw`` or ``command``) per agent (K = 1 and PER_TASK_MANY): the fixed and the
    per host-task cost."""
    agents = [a.name for a in twin.agents]
    out: dict[tuple[str, int], list[Sample]] = {}
    for _ in range(runs):
        for count in (1, PER_TASK_MANY):
            book = tasks_playbook(workdir, count, action)
            for strategy, port in ports.items():
                s = timed_run(port, PlaybookRequest(str(book), agents, timeout_s=120))
                expect(
                    s.result.ok and len(s.result.succeeded_hosts) == len(agents), "tasks", s.result
                )
                out.setdefault((strategy, count), []).append(s)
    return out


PER_TASK_MANY = 6


# --------------------------------------------------------------------------- persistent runner

ZYGOTE = r"""
import json, os, sys, time, resource
t0 = time.monotonic(); c0 = time.process_time()
import ansible.cli.playbook  # config is read here: the zygote's env is the port's
from ansible.plugins.loader import init_plugin_loader
init_plugin_loader()
import ansible.executor.playbook_executor, ansible.plugins.strategy.linear  # noqa
import ansible.plugins.connection.ssh, ansible.plugins.action.raw  # noqa
ready = {"import_s": time.monotonic() - t0, "import_cpu_s": time.process_time() - c0}
print(json.dumps(ready), flush=True)
for line in sys.stdin:
    req = json.loads(line)
    began = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            os.environ.clear(); os.environ.update(req["env"]); os.chdir(req["cwd"])
            fd = os.open(req["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(fd, 1); os.dup2(fd, 2)
            sys.argv = req["argv"]
            rc = ansible.cli.playbook.PlaybookCLI.cli_executor(req["argv"])
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 1
        except BaseException:
            rc = 250
        sys.stdout.flush(); sys.stderr.flush()
        os._exit(rc or 0)
    _, status, ru = os.wait4(pid, 0)
    print(json.dumps({"rc": os.waitstatus_to_exitcode(status),
                      "wall_s": time.monotonic() - began,
                      "cpu_s": ru.ru_utime + ru.ru_stime}), flush=True)
"""


@dataclass(frozen=True)
class Prepared:
    argv: list[str]
    env: dict[str, str]
    cwd: str
    artifacts: Path


def prepare_run(port: AnsiblePort, request: PlaybookRequest) -> Prepared:
    """What :meth:`AnsiblePort.run` hands ansible-runner, as the argv and env it would spawn."""
    import ansible_runner  # noqa: PLC0415

    path = port.playbook_path(request.playbook)
    run_dir = new_run_dir(port.artifacts_root, str(request.playbook), datetime.now(UTC))
    write_private_data_dir(
        run_dir,
        inventory_text=dump_inventory(port.inventory),
        envvars=port.envvars(run_dir),
        settings=runner_settings(RUN_TIMEOUT_S),
        extravars=port.extravars(request),
        state_dir=port.state_dir,
    )
    runner = ansible_runner.interface.init_runner(
        private_data_dir=str(run_dir),
        project_dir=str(path.parent),
        playbook=str(path),
        ident="run",
        limit=",".join(request.limit or []) or None,
        quiet=True,
    )
    cfg = runner.config
    Path(cfg.artifact_dir).mkdir(parents=True, exist_ok=True)
    env = {k: str(v) for k, v in cfg.env.items()}
    return Prepared(list(cfg.command), env, str(cfg.cwd), Path(cfg.artifact_dir))


def stats_of(artifacts: Path) -> dict[str, Any]:
    """The playbook_on_stats event the runner's callback wrote to job_events/."""
    for event in sorted((artifacts / "job_events").glob("*.json")):
        data = json.loads(event.read_text())
        if data.get("event") == "playbook_on_stats":
            return dict(data.get("event_data", {}))
    return {}


class Zygote:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", ZYGOTE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=dict(env),
        )
        self.ready: dict[str, float] = self._read()

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("zygote died")
        return dict(json.loads(line))

    def run(self, prep: Prepared) -> dict[str, Any]:
        assert self.proc.stdin is not None
        req = {
            "argv": prep.argv,
            "env": prep.env,
            "cwd": prep.cwd,
            "stdout": str(prep.artifacts / "stdout"),
        }
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


def fresh_run(prep: Prepared) -> dict[str, Any]:
    began = time.monotonic()
    with (prep.artifacts / "stdout").open("wb") as out:
        proc = subprocess.Popen(prep.argv, env=prep.env, cwd=prep.cwd, stdout=out, stderr=out)
        _, status, ru = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    return {
        "rc": proc.returncode,
        "wall_s": time.monotonic() - began,
        "cpu_s": ru.ru_utime + ru.ru_stime,
    }


PERSISTENT_HOWS = ("port.run (ansible-runner)", "fresh ansible-playbook", "forked from zygote")


def bench_persistent(
    twin: Twin, port: AnsiblePort, runs: int
) -> tuple[dict[tuple[str, str], list[dict[str, Any]]], dict[str, float]]:
    agents = [a.name for a in twin.agents]
    requests = {
        "stop_agents": PlaybookRequest(Playbook.STOP_AGENTS, agents),
        "start_agents": PlaybookRequest(Playbook.START_AGENTS, agents),
    }
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    zygote = Zygote(prepare_run(port, requests["stop_agents"]).env)
    try:
        for i in range(runs):
            for how in PERSISTENT_HOWS:
                start_agents(twin)
                for name, request in requests.items():
                    if how == PERSISTENT_HOWS[0]:
                        sample = timed_run(port, request)
                        rc, changed = sample.result.rc, sample.result.changed_hosts
                        got: dict[str, Any] = {"rc": rc, "wall_s": sample.wall_s}
                        got["cpu_s"] = sample.cpu_s
                    else:
                        prep = prepare_run(port, request)
                        got = fresh_run(prep) if how == PERSISTENT_HOWS[1] else zygote.run(prep)
                        rc = got["rc"]
                        changed = sorted(stats_of(prep.artifacts).get("changed", {}))
                    if rc != 0 or changed != sorted(agents):
                        raise RuntimeError(f"{how} {name}: rc {rc} changed {changed}")
                    if name == "stop_agents":
                        check_stopped(twin)
                    out.setdefault((how, name), []).append(got)
                    print(
                        f"M={len(agents)} run {i + 1} {how} {name}: {got['wall_s']:.2f}s "
                        f"{got['cpu_s']:.2f}cpu",
                        file=sys.stderr,
                    )
    finally:
        zygote.close()
    return out, zygote.ready


# --------------------------------------------------------------------------- report


def med(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


@contextlib.contextmanager
def twin_for(agents: int) -> Iterator[tuple[Twin, Path]]:
    with (
        tempfile.TemporaryDirectory(prefix="hecate-bench-") as tmp,
        Twin(servers=1, agents=agents, workdir=Path(tmp) / "twin") as twin,
    ):
        yield twin, Path(tmp)


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


Report = Callable[[str], None]


def table(
    report: Report, head: str, rows: Sequence[tuple[str, ...]], samples: Sequence[Sequence[Any]]
) -> None:
    """A Markdown table: ``head`` columns then wall and CPU medians of each row's samples."""
    cols = head.split("|")
    report("\n| " + " | ".join(cols) + " | wall s median (min-max) | CPU-s median (min-max) |")
    report("|" + "---|" * len(cols) + "---:|---:|")
    for row, done in zip(rows, samples, strict=True):
        wall = [d.wall_s if isinstance(d, Sample) else d["wall_s"] for d in done]
        cpu = [d.cpu_s if isinstance(d, Sample) else d["cpu_s"] for d in done]
        report("| " + " | ".join(row) + f" | {med(wall)} | {med(cpu)} |")


def report_per_task(
    report: Report,
    agents: int,
    per: dict[tuple[str, int], list[Sample]],
    strategies: list[str],
    action: str,
) -> None:
    rows = [(str(agents), s, str(k)) for s, k in per]
    table(report, f"M|strategy|{action} tasks per agent", rows, list(per.values()))
    for strategy in strategies:
        one = statistics.median(s.cpu_s for s in per[(strategy, 1)])
        many = statistics.median(s.cpu_s for s in per[(strategy, PER_TASK_MANY)])
        per_task = (many - one) / ((PER_TASK_MANY - 1) * agents)
        report(f"\n{strategy}: {per_task * 1000:.0f} ms CPU per extra host-task ({action})")


def run_size(
    agents: int, runs: int, skip: set[str], report: Report, actions: Sequence[str]
) -> None:
    with twin_for(agents) as (twin, tmp):
        state = tmp / "state"
        config = make_config(twin, state)
        strategies = [s for s in STRATEGIES if s == "linear" or mitogen_env() is not None]
        ports = {s: AnsiblePort.from_config(config, extra_env=strategy_env(s)) for s in strategies}
        try:
            for port in ports.values():  # host keys and ssh masters, before any timing
                port.run(PlaybookRequest(Playbook.PING))
            report(f"\n1+{agents} twin, load average before: {load()}")
            if "strategies" not in skip:
                got = bench_strategies(twin, ports, runs)
                rows = [(str(agents), s, b) for s, b in got]
                table(report, "M|strategy|playbook", rows, list(got.values()))
            if "pertask" not in skip:
                for action in actions:
                    per = bench_per_task(twin, ports, runs, tmp, action)
                    report_per_task(report, agents, per, strategies, action)
            if "behaviour" not in skip:
                report("\n| M | strategy | case | outcome |")
                report("|---:|---|---|---|")
                for strategy in strategies:
                    for case, outcome in behaviour(twin, state, strategy, tmp):
                        report(f"| {agents} | {strategy} | {case} | {outcome} |")
            if "persistent" not in skip:
                done, ready = bench_persistent(twin, ports["linear"], runs)
                report(
                    f"\nzygote start (once): {ready['import_s']:.2f} s, "
                    f"{ready['import_cpu_s']:.2f} CPU-s"
                )
                rows = [(str(agents), h, b) for h, b in done]
                table(report, "M|how|playbook", rows, list(done.values()))
            report(f"\nload average after: {load()}")
        finally:
            for port in ports.values():
                port.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, nargs="*", default=[5, 12])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=["strategies", "pertask", "behaviour", "persistent"],
    )
    parser.add_argument("--pertask-actions", nargs="*", default=["raw"], choices=["raw", "command"])
    args = parser.parse_args()
    if mitogen_env() is None:
        print("mitogen not installed: measuring linear only", file=sys.stderr)
    print(
        f"ansible-core {_ansible_version()}, mitogen {_mitogen_version()}, {os.cpu_count()} cores"
    )
    for count in args.agents:
        run_size(
            count,
            args.runs,
            set(args.skip),
            lambda line: print(line, flush=True),
            args.pertask_actions,
        )
    return 0


def _ansible_version() -> str:
    from importlib.metadata import version  # noqa: PLC0415

    return version("ansible-core")


def _mitogen_version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return version("mitogen")
    except PackageNotFoundError:
        return "not installed"


if __name__ == "__main__":
    raise SystemExit(main())
