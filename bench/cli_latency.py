"""Benchmark: the CLI's read commands against their 0.3 s target (issue 29 item 3).

Each command runs N times (default 5) in a fresh interpreter, as an operator runs it, and the
median wall time is printed with the median CPU time (user + system from wait4) and the load
average before and after: on a shared machine the wall time moves with the load, so measure
several times and say the load.

The commands, on the example config in a temp dir:
- `hecate status` against a real upsd (dummy-ups, tests/testbed/nut.py) on 127.0.0.1, so the
  one UPS round trip status makes is in the figure, and a state_dir holding a recorded run;
- `hecate config check` with every file the config names present (a valid config: exit 0);
- `hecate version` and `hecate --help`;
- `hecate replay blip --default-config` (a shipped 8-line trace);
- `status` and `config check` once more with no kept config (hecate.config.snapshot: the first
  run after the config or Hecate changed validates the config in full);
- `python -c pass`, the floor, and `upsc` (NUT's own client, when installed) for comparison.

The interpreter runs `hecate.cli.entry:main` (the console script's target) from this tree with
PYTHONPATH set, so a venv whose `hecate` script points at another checkout does not matter.
hecate/ is compiled first (`compileall`): this machine sets PYTHONDONTWRITEBYTECODE, and an
installed package has its .pyc. The validated configs are kept in the temp dir (XDG_CACHE_HOME),
made by the warm-up run of each command. Nothing leaves 127.0.0.1: without NUT the UPS is a
port on 127.0.0.1 nothing listens on, and the example's nodes (192.168.x) are replaced by such a
port too (the example's `localhost` and its notify targets are never contacted).

    .venv/bin/python -m bench.cli_latency [--runs 5] [--rounds 1]
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from hecate.adapters.statedir.store import StateStore
from hecate.core.run_history import Outcome, RunRecord
from tests.testbed.nut import NutServer, free_port

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "configs" / "hecate.example.yaml"
TARGET_S = 0.3
ENTRY = "import sys; from hecate.cli.entry import main; sys.argv[0] = 'hecate'; main()"


def _one(argv: list[str], env: dict[str, str], ok: tuple[int, ...]) -> tuple[float, float]:
    """(wall s, CPU s) of one run of `argv`, its output discarded."""
    start = time.monotonic()
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    proc.stderr.close()
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code
    if code not in ok:
        raise RuntimeError(f"{argv} exited {code}: {err.decode(errors='replace')[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


@contextmanager
def _setup(tmp: Path) -> Iterator[tuple[Path, NutServer | None]]:
    """The config (every file it names present), its state_dir with one recorded shutdown, and
    a real upsd serving its UPS when NUT is installed."""
    server = NutServer() if Path("/lib/nut/upsd").exists() else None
    try:
        data = yaml.safe_load(EXAMPLE.read_text())
        state = tmp / "state"
        state.mkdir(mode=0o700)
        data["state_dir"] = str(state)
        # the example's nodes are 192.168.x: never theirs, even if a command came to probe them
        data["ssh_node_hosts"] = dict.fromkeys(data["ssh_node_hosts"], f"127.0.0.1:{free_port()}")
        for key, name in (("kubeconfig", "kubeconfig.yaml"), ("ssh_identity_file", "id")):
            path = tmp / name
            path.write_text("apiVersion: v1\nkind: Config\n" if "kube" in name else "key\n")
            path.chmod(0o600)
            data[key] = str(path)
        password = tmp / "nut-password"
        password.write_text(server.password if server else "secret")
        password.chmod(0o600)
        data["ups"]["password_file"] = str(password)
        if server is not None:
            data["ups"]["target"] = server.target()
            data["ups"]["user"] = server.user
        else:  # "not readable": refused at once, on this host only
            data["ups"]["target"] = f"pyrphoros@127.0.0.1:{free_port()}"
        store = StateStore(state)
        for i in range(5):  # enough shutdowns for a learned budget
            start = time.time() - 86400 * (i + 1)
            run = RunRecord(f"bench-{i}", "shutdown", start, start + 90 + i, Outcome.SUCCESS)
            store.record_run(run, keep=200)
        config = tmp / "hecate.yaml"
        config.write_text(yaml.safe_dump(data))
        yield config, server
    finally:
        if server is not None:
            server.close()


Table = dict[str, tuple[list[str], tuple[int, ...]]]
NOT_KEPT = "(no kept config)"  # such a row runs where no validated config can be kept


def commands(config: Path, server: NutServer | None) -> Table:
    py = [sys.executable, "-c", ENTRY]
    cfg = ["--config", str(config)]
    found: Table = {
        "python -c pass (floor)": ([sys.executable, "-c", "pass"], (0,)),
    }
    upsc = shutil.which("upsc")
    if upsc is not None and server is not None:
        found["upsc (NUT's client)"] = ([upsc, server.target()], (0,))
    found.update(
        {
            "hecate --help": ([*py, "--help"], (0,)),
            "hecate version": ([*py, "version"], (0,)),
            # exit 4: no `hecate doctor` result recorded, so "not protected" (the report prints)
            "hecate status": ([*py, "status", *cfg], (0, 4)),
            "hecate config check": ([*py, "config", "check", *cfg], (0,)),
            "hecate replay blip": ([*py, "replay", "blip", "--default-config"], (0,)),
            f"hecate status {NOT_KEPT}": ([*py, "status", *cfg], (0, 4)),
            f"hecate config check {NOT_KEPT}": ([*py, "config", "check", *cfg], (0,)),
        }
    )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5, help="runs per command (median of these)")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the whole table")
    args = parser.parse_args()
    compileall.compile_dir(ROOT / "hecate", quiet=1)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    with tempfile.TemporaryDirectory(prefix="hecate-bench-") as tmp, _setup(Path(tmp)) as setup:
        env["XDG_CACHE_HOME"] = str(Path(tmp) / "cache")
        (Path(tmp) / "no-cache").write_text("")  # a file: no cache directory under it
        not_kept = {**env, "XDG_CACHE_HOME": str(Path(tmp) / "no-cache")}
        table = commands(*setup)
        envs = {name: not_kept if NOT_KEPT in name else env for name in table}
        for name, (argv, ok) in table.items():  # warm the page cache, keep the configs
            _one(argv, envs[name], ok)
        for _ in range(args.rounds):
            print(f"\nload average before: {_load()} ({os.cpu_count()} CPUs); {args.runs} runs")
            print("| command | median wall s | median CPU s | target |")
            print("|---|---:|---:|---|")
            for name, (argv, ok) in table.items():
                samples = [_one(argv, envs[name], ok) for _ in range(args.runs)]
                wall = statistics.median(s[0] for s in samples)
                cpu = statistics.median(s[1] for s in samples)
                target = f"<= {TARGET_S}" if name.startswith("hecate") else ""
                print(f"| `{name}` | {wall:.3f} | {cpu:.3f} | {target} |")
            print(f"load average after: {_load()}")


if __name__ == "__main__":
    main()
