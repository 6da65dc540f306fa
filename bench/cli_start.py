"""Benchmark: how fast the CLI starts (`hecate --help`, `hecate status`).

Runs each command N times (default 10) in a fresh interpreter, as an operator would, and
reports the median wall time and the median CPU time (user + system, from wait4's rusage) with
the load average before and after (other work on this machine slows the wall time; CPU time is
the steadier figure). `status` runs against the example config with a temporary state_dir and
a NUT password file that does not exist, so no UPS is read (that reply is not start-up cost).
Target: both <= 0.3 s.

Bytecode: a checkout run with PYTHONDONTWRITEBYTECODE set compiles every module from source on
every start; an installed package has its .pyc. The benchmark compiles hecate/ first
(`compileall`, into the gitignored __pycache__) so it measures the installed case.

Instructions: on a shared machine CPU seconds move with the load (the same tree measured
0.29 and 0.49 CPU-s for `status` within the hour, at load 8 and 49). `--instructions` also
counts the instructions each command executes (valgrind's callgrind, one run each, about 20 s,
PYTHONHASHSEED=0): steady to a fraction of a percent, the figure to compare two trees by.

    .venv/bin/python -m bench.cli_start [--runs 10] [--instructions]
"""

from __future__ import annotations

import argparse
import compileall
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "configs" / "hecate.example.yaml"
TARGET_S = 0.3


def _one(argv: list[str]) -> tuple[float, float]:
    """(wall s, CPU s) of one run of `argv`, its output discarded."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 4):  # status exits 4 (not protected): no UPS is read
        raise RuntimeError(f"{argv} exited {proc.returncode}")
    return wall, usage.ru_utime + usage.ru_stime


def measure(argv: list[str], runs: int) -> tuple[float, float]:
    samples = [_one(argv) for _ in range(runs)]
    return statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)


def instructions(argv: list[str]) -> int | None:
    """Instructions one run of `argv` executes (callgrind's Ir), None without valgrind."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    done = subprocess.run(
        [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    return int(found.group(1)) if found else None


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--instructions", action="store_true", help="also count instructions")
    args = parser.parse_args()
    compileall.compile_dir(ROOT / "hecate", quiet=1)
    script = Path(sys.executable).with_name("hecate")  # the console script operators run
    hecate = [str(script)] if script.exists() else [sys.executable, "-m", "hecate"]
    with tempfile.TemporaryDirectory(prefix="hecate-bench-") as tmp:
        data = yaml.safe_load(EXAMPLE.read_text())
        data["state_dir"] = f"{tmp}/state"
        data["ups"]["password_file"] = f"{tmp}/absent"
        config = Path(tmp) / "hecate.yaml"
        config.write_text(yaml.safe_dump(data))
        commands = {
            "python -c pass (floor)": [sys.executable, "-c", "pass"],
            "hecate --help": [*hecate, "--help"],
            "hecate status": [*hecate, "status", "--config", str(config)],
        }
        print(f"load average before: {_load()} ({os.cpu_count()} CPUs); {args.runs} runs each")
        print("| command | median wall s | median CPU s | instructions | target s |")
        print("|---|---:|---:|---:|---:|")
        for name, argv in commands.items():
            wall, cpu = measure(argv, args.runs)
            count = instructions(argv) if args.instructions else None
            counted = f"{count / 1e6:.0f} M" if count is not None else ""
            target = "" if "floor" in name else f"<= {TARGET_S}"
            print(f"| `{name}` | {wall:.3f} | {cpu:.3f} | {counted} | {target} |")
        print(f"load average after: {_load()}")


if __name__ == "__main__":
    main()
