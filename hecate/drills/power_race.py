"""The power-race drill (issue 25, item 6): mains returns after the nodes are off and before
the UPS cuts its output, and the UPS refuses the kill-power command because it is on mains
(NUT issues 3229 and 3481: many UPSes refuse `shutdown.return`/`load.off` on mains). Nothing
will cycle the nodes' power: Hecate must power them on itself (startup's power_on, through
power.nodes) and run the startup.

This drill REALLY powers the nodes off. The UPS is simulated, as in the other outage drills:
the kill-power command goes to the simulated UPS, never to the real one, and it refuses it the
way upsd does (`ERR CMD-NOT-SUPPORTED`) once mains is back.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from hecate.adapters.statedir.store import StateStore
from hecate.core.intent import IntentState
from hecate.core.run_history import Outcome
from hecate.drills.base import Check, DrillEnv, DrillFailedError, cluster_checks, wait_for
from hecate.drills.daemon_run import DaemonRun
from hecate.drills.simulated_ups import SimulatedUps
from hecate.errors import UpsError
from hecate.flows.context import StageResult
from hecate.flows.report import FlowReport

# The shutdown the daemon runs in this drill: the nodes powered off, the kill-power asked for.
RACE_SHUTDOWN = {"ups_mode": "poweroff", "ups_kill_power": True, "poweroff_method": "poweroff"}


class RacingUps(SimulatedUps):
    """A simulated UPS whose mains returns just as the kill-power command arrives, and that
    refuses the command on mains, as NUT's upsd answers a UPS that does not take it then."""

    def __init__(self) -> None:
        super().__init__()
        self.commands: list[str] = []
        self.lock = threading.Lock()

    def instant_command(self, command: str) -> None:
        with self.lock:
            self.commands.append(command)
        self.set("OL CHRG", 1800.0, 100.0)  # mains is back: the race
        raise UpsError(f"{command}: ERR CMD-NOT-SUPPORTED (the UPS refuses it while on mains)")


def _intent(env: DrillEnv) -> IntentState:
    return StateStore(env.config.state_dir).read_intent().state


@dataclass
class PowerRace:
    name: str = "power-race"
    summary: str = (
        "mains returns after the nodes are off and before the UPS cuts its output; the UPS "
        "refuses the kill-power command on mains"
    )
    timeout_s: float = 600.0
    commands: list[str] = field(default_factory=list)

    def preconditions(self, env: DrillEnv) -> list[str]:
        problems = [c.name for c in cluster_checks(env) if not c.ok]
        power = env.config.power
        for node in env.config.managed_nodes():
            if power.method_of(node) == "none":
                problems.append(
                    f"{node}: no way to power it on (power.nodes: method none); it would stay off"
                )
        return problems

    def plan(self, env: DrillEnv) -> list[str]:
        nodes = ", ".join(env.config.managed_nodes())
        return [
            "run the daemon on a simulated UPS, ups_mode poweroff and ups_kill_power on: "
            f"the nodes ARE powered off ({nodes})",
            "cut simulated mains, runtime below the threshold: the daemon shuts the cluster down",
            "mains returns as the kill-power command is sent; the simulated UPS refuses it on "
            "mains (the real UPS is never sent a command)",
            "the daemon's startup powers the nodes on itself (power_on) and starts the cluster",
            "verify: the kill-power refused, every node powered on by Hecate, both runs "
            "successful, the cluster healthy",
        ]

    def apply_break(self, env: DrillEnv) -> None:
        """The break happens inside recover(): the daemon must be watching when mains fails."""

    def recover(self, env: DrillEnv) -> list[FlowReport]:
        ups = RacingUps()
        with DaemonRun(env, ups, shutdown=RACE_SHUTDOWN, ups_command=ups.instant_command) as d:
            env.sleep(2)
            env.log("simulated mains cut: OB, runtime 60 s")
            ups.set("OB DISCHRG", 60.0, 40.0)
            wait_for(
                lambda: len(d.reports) >= 1 and _intent(env) is not IntentState.SHUTTING_DOWN,
                self.timeout_s,
                "the shutdown",
                env.sleep,
                monotonic=env.monotonic,
            )
            env.log("mains is back; the nodes stay off: Hecate must power them on")
            wait_for(
                lambda: _intent(env) is IntentState.NORMAL,
                self.timeout_s,
                "the startup",
                env.sleep,
                monotonic=env.monotonic,
            )
            if not d.wait_idle(self.timeout_s):
                raise DrillFailedError("the daemon's startup did not finish")
            self.commands = list(ups.commands)
            return list(d.reports)

    def verify(self, env: DrillEnv, reports: list[FlowReport]) -> list[Check]:
        kinds = [(r.kind, r.outcome) for r in reports]
        shutdown = next((r for r in reports if r.kind == "shutdown"), None)
        startup = next((r for r in reports if r.kind == "startup"), None)
        kill = _stage(shutdown, "ups_kill_power")
        power_on = _stage(startup, "power_on")
        managed = env.config.managed_nodes()
        powered = {n: s for n, s in (power_on.nodes if power_on else {}).items() if n in managed}
        return [
            Check(
                "shutdown then startup, both successful",
                kinds == [("shutdown", Outcome.SUCCESS), ("startup", Outcome.SUCCESS)],
                f"{[(k, o.value) for k, o in kinds]}",
            ),
            Check(
                "the UPS refused the kill-power command on mains",
                kill is not None and kill.status.value == "warning" and bool(self.commands),
                kill.detail if kill is not None else "no ups_kill_power stage",
            ),
            Check(
                "Hecate powered every node on itself",
                sorted(powered) == sorted(managed)
                and all(s == "powered_on" for s in powered.values()),
                f"{powered}",
            ),
            *cluster_checks(env),
        ]


def _stage(report: FlowReport | None, name: str) -> StageResult | None:
    if report is None:
        return None
    return next((s for s in report.stages if s.name == name), None)
