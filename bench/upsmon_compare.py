"""Side by side: NUT's own upsmon and Hecate's policy on a real upsd, over the same scenarios.

Two real upsd + dummy-ups servers (tests/testbed/nut.py) are fed the same readings at the same
moments. `/lib/nut/upsmon` runs for real as a primary on server B (its own mount namespace, so
its pid file in /run/nut cannot clash; SHUTDOWNCMD only writes a file). Hecate's NUT adapter polls
server A and feeds the pure policy (`hecate.core.policy.step.step`) on a monotonic clock. Two
servers, because a primary upsmon sets FSD on its upsd when it decides, and Hecate honours FSD: on a
shared server the first to decide would decide for both.

Both poll every second; dead time 6 s on both sides (DEADTIME / comm_loss_dead_seconds); Hecate's
threshold is 330 s (the default fallback budget x 1.1), debounce 3 critical polls in 60 s, LB
confirmed by a second LB poll, min_charge_on_battery 50%.

    .venv/bin/python -m bench.upsmon_compare [--only NAME] [--markdown FILE]

Prints one row per scenario: when each side decided to shut down (seconds from the scenario's
start) or "-" for never. Needs root (upsmon, unshare, mount), NUT's server and client packages.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hecate.adapters.nut.client import NutClient
from hecate.adapters.nut.port import poll
from hecate.config.addresses import UpsTarget
from hecate.core.policy.step import step
from hecate.core.policy.values import PolicyParams, initial_state
from tests.testbed.nut import NutServer

UPSMON = Path("/lib/nut/upsmon")
POLL_S = 1.0
DEADTIME_S = 6
PARAMS = PolicyParams(
    threshold_s=330.0,
    debounce_polls=3,
    comm_loss_dead_s=DEADTIME_S,
    power_stable_s=60.0,
    min_charge_pct=50.0,
    critical_window_s=60.0,
    outage_clear_s=30.0,
    honor_fsd=True,
    lb_confirm_polls=2,
    min_charge_on_battery=50.0,
    charge_unknown_wait_s=1800.0,
    max_gap_s=3 * POLL_S + 5.0,
)

# One step: (seconds to hold it, what to serve). A dict sets variables; "upsd-down" / "upsd-up"
# stop and start upsd.
Step = tuple[float, dict[str, str] | str]


def ob(runtime: float | str = 1500, charge: float | str = 90, flags: str = "") -> dict[str, str]:
    status = f"OB DISCHRG {flags}".strip()
    return {"ups.status": status, "battery.runtime": str(runtime), "battery.charge": str(charge)}


def ol(flags: str = "", runtime: float | str = 1800, charge: float | str = 100) -> dict[str, str]:
    status = f"OL {flags}".strip()
    return {"ups.status": status, "battery.runtime": str(runtime), "battery.charge": str(charge)}


@dataclass(frozen=True)
class Scenario:
    name: str
    steps: Sequence[Step]
    what: str


def _repeat(block: Sequence[Step], times: int) -> list[Step]:
    return [step for _ in range(times) for step in block]


SCENARIOS = [
    Scenario("blip", [(3, ob(1500)), (8, ol())], "3 s on battery, runtime fine"),
    Scenario(
        "transfer-dip",
        [(2, ob(200)), (10, ol())],
        "2 s on battery with a pessimistic runtime estimate at transfer",
    ),
    Scenario("low-runtime-no-lb", [(15, ob(200))], "on battery, runtime 200 s < 330 s, no LB"),
    Scenario("ob-lb", [(10, ob(120, 20, "LB"))], "on battery with LB"),
    Scenario(
        "lb-glitch",
        [(5, ob(1500)), (1, ob(1500, 90, "LB")), (10, ob(1500))],
        "one LB reading (about one driver poll) in a healthy outage",
    ),
    Scenario(
        "chattering-lb",
        _repeat([(2, ob(600, 25)), (1, ob(600, 25, "LB"))], 6),
        "LB flickers on for a poll every 3 s near the end of an aged battery",
    ),
    Scenario(
        "flapping-mains-draining",
        _repeat([(2, ob(200, 30)), (1, ol("", 200, 30))], 6),
        "mains back for a poll every 3 s while the runtime is 200 s",
    ),
    Scenario("fsd-on-mains", [(2, ol()), (8, ol("FSD"))], "FSD set while on line"),
    Scenario(
        "trim-alone",
        [(3, ob(1500)), (15, {"ups.status": "TRIM", "battery.runtime": "1800"})],
        "after a blip the UPS reports TRIM without OL (a real model does)",
    ),
    Scenario(
        "calibration",
        [(12, ob(60, 15, "CAL"))],
        "runtime calibration: on battery, runtime 60 s, no LB",
    ),
    Scenario(
        "comm-loss-on-battery",
        [(2, ob(1500)), (14, "upsd-down")],
        "upsd stops answering while the UPS is on battery",
    ),
    Scenario(
        "comm-loss-on-mains",
        [(2, ol()), (14, "upsd-down")],
        "upsd stops answering while the UPS is on line",
    ),
    Scenario(
        "no-runtime-low-charge",
        [(12, ob("", 40))],
        "no runtime reported, no LB, charge 40%",
    ),
    Scenario(
        "runtime-sentinel-low-charge",
        [(12, ob(65535, 30))],
        "runtime 65535 (no estimate) and charge 30%, no LB",
    ),
    Scenario("ol-lb", [(10, ol("LB"))], "LB while on line (real firmware does this)"),
]


# --------------------------------------------------------------------------------------------


class Upsmon:
    """A real upsmon primary on `server`, in its own mount namespace; SHUTDOWNCMD writes a file."""

    def __init__(self, server: NutServer) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="upsmon-"))
        self.flag = self.dir / "shutdown"
        conf = self.dir / "upsmon.conf"
        shutdown = f"/bin/sh -c 'date +%s.%N > {self.flag}'"
        conf.write_text(
            f"MONITOR {server.target()} 1 {server.user} {server.password} primary\n"
            "MINSUPPLIES 1\n"
            f'SHUTDOWNCMD "{shutdown}"\n'
            f"POLLFREQ {int(POLL_S)}\nPOLLFREQALERT {int(POLL_S)}\n"
            f"DEADTIME {DEADTIME_S}\nHOSTSYNC 1\nFINALDELAY 0\n"
            f"POWERDOWNFLAG {self.dir / 'killpower'}\n"
            "RUN_AS_USER root\n",
            encoding="utf-8",
        )
        conf.chmod(0o600)
        inner = f"mount -t tmpfs tmpfs /run/nut && exec {UPSMON} -F -p"
        self.log = (self.dir / "upsmon.log").open("wb")
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", inner],
            env={**os.environ, "NUT_CONFPATH": str(self.dir)},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def decided_at(self) -> float | None:
        """Wall time SHUTDOWNCMD ran, or None."""
        try:
            return float(self.flag.read_text().strip())
        except (OSError, ValueError):
            return None

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


class HecateWatcher:
    """Hecate's adapter polling server A every second, feeding the policy; notes the trigger."""

    def __init__(self, server: NutServer) -> None:
        self.client = NutClient(
            UpsTarget.parse(server.target()), server.user, server.password, timeout_s=2.0
        )
        self.stop = threading.Event()
        self.triggered_at: float | None = None  # wall time
        self.reasons: list[str] = []
        self.thread = threading.Thread(target=self._run, name="hecate-watch", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        state = initial_state()
        while not self.stop.is_set():
            started = time.monotonic()
            result = poll(self.client)
            state, events = step(state, result, time.monotonic(), PARAMS)
            for event in events:
                if event.event == "trigger_shutdown" and self.triggered_at is None:
                    self.triggered_at = time.time()
                    self.reasons.append(event.reason)
            self.stop.wait(max(0.0, POLL_S - (time.monotonic() - started)))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)


def _apply(servers: Sequence[NutServer], action: dict[str, str] | str) -> None:
    def one(server: NutServer) -> None:
        if action == "upsd-down":
            server.stop_upsd()
        elif action == "upsd-up":
            server.start_upsd()
        elif isinstance(action, dict):
            status = action.get("ups.status")
            extra = {k: v for k, v in action.items() if k != "ups.status"}
            server.set_reading(status=status, extra=extra, timeout_s=3.0)

    threads = [threading.Thread(target=one, args=(s,)) for s in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)


@dataclass(frozen=True)
class Result:
    scenario: Scenario
    upsmon_s: float | None
    hecate_s: float | None
    hecate_reason: str


def run_scenario(scenario: Scenario) -> Result:
    with NutServer() as a, NutServer() as b:
        servers: tuple[NutServer, ...] = (a, b)
        upsmon = Upsmon(b)
        watcher = HecateWatcher(a)
        try:
            time.sleep(4)  # both see the UPS on line first
            start = time.time()
            for hold, action in scenario.steps:
                began = time.time()
                # Once upsmon has decided, its upsd carries the FSD it set: feed only Hecate's.
                _apply(servers if upsmon.decided_at() is None else (a,), action)
                time.sleep(max(0.0, hold - (time.time() - began)))
            time.sleep(3)  # grace for a decision on the last step
        finally:
            watcher.close()
            upsmon.close()
        um = upsmon.decided_at()
        upsmon.cleanup()
        return Result(
            scenario,
            None if um is None else max(0.0, um - start),
            None if watcher.triggered_at is None else max(0.0, watcher.triggered_at - start),
            watcher.reasons[0] if watcher.reasons else "",
        )


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def table(results: Sequence[Result]) -> str:
    lines = [
        "| scenario | readings | upsmon shuts down at (s) | Hecate triggers at (s)"
        " | Hecate's reason |",
        "|---|---|---:|---:|---|",
    ]
    for r in results:
        lines.append(
            f"| `{r.scenario.name}` | {r.scenario.what} | {_cell(r.upsmon_s)} |"
            f" {_cell(r.hecate_s)} | {r.hecate_reason or '-'} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, out: Callable[[str], None] = print) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", help="run only this scenario (repeatable)")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    if os.geteuid() != 0 or not UPSMON.exists():
        out(f"needs root and {UPSMON} (nut-client)")
        return 2
    chosen = [s for s in SCENARIOS if not args.only or s.name in args.only]
    results = []
    for scenario in chosen:
        result = run_scenario(scenario)
        results.append(result)
        out(
            f"{scenario.name:<28} upsmon={_cell(result.upsmon_s):>5}"
            f" hecate={_cell(result.hecate_s):>5}  {result.hecate_reason}"
        )
    text = table(results)
    out("")
    out(text)
    if args.markdown:
        args.markdown.write_text(text + "\n", encoding="utf-8")
    out(f"\n(command: {shlex.join([sys.executable, '-m', 'bench.upsmon_compare'])})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
