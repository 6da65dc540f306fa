"""The drills Hecate ships."""

from __future__ import annotations

from dataclasses import dataclass

from hecate.adapters.kube.types import FluxObject, WorkloadKind
from hecate.adapters.statedir.store import StateStore
from hecate.core.intent import IntentState
from hecate.core.plans import StartupOptions
from hecate.core.run_history import Outcome
from hecate.core.startup_refusals import StartupOverrides
from hecate.drills.base import Check, Drill, DrillEnv, DrillFailedError, wait_for
from hecate.drills.base import cluster_checks as _cluster_checks
from hecate.drills.daemon_run import DaemonRun
from hecate.drills.etcd_drills import EtcdMemberLost, EtcdQuorumLost
from hecate.drills.feed_drills import PartialFeedLoss
from hecate.drills.gate_drills import ClockSkew, ProbeFailing, StorageScaledToZero
from hecate.drills.power_race import PowerRace
from hecate.drills.shed_drill import ShedAndRestore
from hecate.drills.simulated_ups import SimulatedUps
from hecate.errors import ConfigError, KubeError
from hecate.flows.ledger import load_ledger, save_ledger
from hecate.flows.report import FlowReport
from hecate.flows.startup import run_startup, source_ready


def _gitea(env: DrillEnv) -> tuple[WorkloadKind, str, str]:
    startup = env.config.startup
    kind, _, name = startup.gitea_workload.partition("/")
    return ("statefulset" if kind == "statefulset" else "deployment"), startup.gitea_namespace, name


def _source_ready(env: DrillEnv) -> bool:
    return source_ready(env.kube, env.config)


def _startup(env: DrillEnv, reason: str) -> FlowReport:
    options = StartupOptions(overrides=StartupOverrides(), reason=reason)
    with env.context_factory() as ctx:
        return run_startup(ctx, options)


@dataclass
class FluxGiteaDeadlock:
    name: str = "flux-gitea-deadlock"
    summary: str = "scale Gitea to 0 so Flux cannot fetch its own source"

    def preconditions(self, env: DrillEnv) -> list[str]:
        kind, ns, name = _gitea(env)
        try:
            env.kube.workload(kind, ns, name)
        except KubeError as exc:
            return [f"Gitea workload {kind}/{ns}/{name}: {exc}"]
        if not _source_ready(env):
            return ["Flux's GitRepository is not Ready before the drill"]
        return []

    def plan(self, env: DrillEnv) -> list[str]:
        kind, ns, name = _gitea(env)
        return [
            f"scale {kind} {ns}/{name} to 0 and wait until Flux's GitRepository is not Ready",
            "run the staged startup; its fallback must bring Gitea up outside Flux",
            "verify Gitea ready, GitRepository Ready, the fallback reported",
        ]

    def apply_break(self, env: DrillEnv) -> None:
        kind, ns, name = _gitea(env)
        env.kube.scale(kind, ns, name, 0)
        wait_for(
            lambda: not _source_ready(env),
            120,
            "Flux's source to fail",
            env.sleep,
            monotonic=env.monotonic,
        )

    def recover(self, env: DrillEnv) -> list[FlowReport]:
        return [_startup(env, "drill flux-gitea-deadlock")]

    def verify(self, env: DrillEnv, reports: list[FlowReport]) -> list[Check]:
        kind, ns, name = _gitea(env)
        gitea_ready = env.kube.workload(kind, ns, name).ready_replicas >= 1
        return [
            Check(
                "startup succeeded",
                reports[-1].outcome is Outcome.SUCCESS,
                reports[-1].outcome.value,
            ),
            Check(
                "fallback used",
                "gitea_scale" in reports[-1].fallbacks,
                ", ".join(reports[-1].fallbacks),
            ),
            Check("Gitea ready", gitea_ready),
            Check("Flux source Ready", _source_ready(env)),
        ]


@dataclass
class FoundationRecovery:
    name: str = "foundation-recovery"
    summary: str = "stop the foundation workloads (startup.foundation_workloads)"

    def preconditions(self, env: DrillEnv) -> list[str]:
        items = env.config.startup.foundation_workloads
        if not items:
            return ["startup.foundation_workloads is empty: nothing to drill"]
        problems = []
        for item in items:
            try:
                env.kube.workload(item.kind, item.namespace, item.name)
            except KubeError as exc:
                problems.append(f"{item.kind}/{item.namespace}/{item.name}: {exc}")
        return problems

    def plan(self, env: DrillEnv) -> list[str]:
        order = [
            f"{i.kind}/{i.namespace}/{i.name}" for i in env.config.startup.foundation_workloads
        ]
        return [
            f"scale to 0: {', '.join(order)}",
            "run the staged startup; it must bring them back in this order",
            "verify each is ready again",
        ]

    def apply_break(self, env: DrillEnv) -> None:
        items = env.config.startup.foundation_workloads
        for item in items:
            env.kube.scale(item.kind, item.namespace, item.name, 0)

        def all_down() -> bool:
            return all(
                env.kube.workload(i.kind, i.namespace, i.name).ready_replicas == 0 for i in items
            )

        wait_for(
            all_down, 120, "the foundation workloads to stop", env.sleep, monotonic=env.monotonic
        )

    def recover(self, env: DrillEnv) -> list[FlowReport]:
        return [_startup(env, "drill foundation-recovery")]

    def verify(self, env: DrillEnv, reports: list[FlowReport]) -> list[Check]:
        items = env.config.startup.foundation_workloads
        order = [f"{i.kind}/{i.namespace}/{i.name}" for i in items]
        stage = next((s for s in reports[-1].stages if s.name == "foundation"), None)
        restored = list(stage.nodes) if stage is not None else []
        checks = [
            Check(
                "startup succeeded",
                reports[-1].outcome is Outcome.SUCCESS,
                reports[-1].outcome.value,
            ),
            Check("restored in the configured order", restored == order, f"{restored}"),
        ]
        for item, label in zip(items, order, strict=True):
            info = env.kube.workload(item.kind, item.namespace, item.name)
            checks.append(Check(f"{label} ready", info.ready_replicas >= 1))
        return checks


@dataclass
class ReconciliationResume:
    name: str = "reconciliation-resume"
    summary: str = "leave Kustomizations suspended as after an interrupted shutdown"
    _ours: str = ""
    _theirs: str = ""

    def _candidates(self, env: DrillEnv) -> list[FluxObject]:
        return [k for k in env.kube.flux_objects("Kustomization") if not k.suspended]

    def preconditions(self, env: DrillEnv) -> list[str]:
        try:
            found = self._candidates(env)
        except KubeError as exc:
            return [str(exc)]
        return [] if len(found) >= 2 else ["needs two Kustomizations that are not suspended"]

    def plan(self, env: DrillEnv) -> list[str]:
        return [
            "suspend two Kustomizations: one recorded as suspended by Hecate, one as by a person",
            "run the staged startup",
            "verify only Hecate's is resumed; the other is resumed afterwards by the drill",
        ]

    def apply_break(self, env: DrillEnv) -> None:
        ours, theirs = self._candidates(env)[:2]
        self._ours, self._theirs = ours.key, theirs.key
        for obj in (ours, theirs):
            env.kube.set_suspend(obj.kind, obj.namespace, obj.name, True)
        state_dir = env.config.state_dir
        ledger = load_ledger(state_dir)
        ledger.add_suspended(ours.key)
        save_ledger(state_dir, ledger)
        store = StateStore(state_dir)
        if store.read_intent().state is not IntentState.SHUTDOWN_COMPLETE:
            store.set_intent(
                IntentState.SHUTTING_DOWN, reason="drill reconciliation-resume", run_id=None
            )
            store.set_intent(
                IntentState.SHUTDOWN_COMPLETE, reason="drill reconciliation-resume", run_id=None
            )

    def recover(self, env: DrillEnv) -> list[FlowReport]:
        return [_startup(env, "drill reconciliation-resume")]

    def verify(self, env: DrillEnv, reports: list[FlowReport]) -> list[Check]:
        by_key = {k.key: k for k in env.kube.flux_objects("Kustomization")}
        ours, theirs = by_key.get(self._ours), by_key.get(self._theirs)
        checks = [
            Check(
                "startup succeeded",
                reports[-1].outcome is Outcome.SUCCESS,
                reports[-1].outcome.value,
            ),
            Check(f"{self._ours} resumed", ours is not None and not ours.suspended),
            Check(f"{self._theirs} left suspended", theirs is not None and theirs.suspended),
        ]
        if theirs is not None and theirs.suspended:  # put the cluster back as it was
            env.kube.set_suspend(theirs.kind, theirs.namespace, theirs.name, False)
        return checks


def _intent(env: DrillEnv) -> IntentState:
    return StateStore(env.config.state_dir).read_intent().state


def _wait_intent(env: DrillEnv, state: IntentState, timeout_s: float, what: str) -> None:
    wait_for(lambda: _intent(env) is state, timeout_s, what, env.sleep, monotonic=env.monotonic)


@dataclass
class PowerOutage:
    name: str = "power-outage"
    summary: str = "a simulated UPS goes on battery with low runtime, then mains returns"
    timeout_s: float = 600.0

    def preconditions(self, env: DrillEnv) -> list[str]:
        return [c.name for c in _cluster_checks(env) if not c.ok]

    def plan(self, env: DrillEnv) -> list[str]:
        return [
            "run the daemon on a simulated UPS (cluster-only shutdown: hosts stay up)",
            "cut simulated mains with runtime below the threshold: debounce, trigger, shutdown",
            "restore mains: power-return gate, staged startup",
            "verify both runs succeeded and the cluster is healthy",
        ]

    def apply_break(self, env: DrillEnv) -> None:
        """The break happens inside recover(): the daemon must be watching when mains fails."""

    def recover(self, env: DrillEnv) -> list[FlowReport]:
        ups = SimulatedUps()
        with DaemonRun(env, ups) as daemon:
            env.sleep(2)
            env.log("simulated mains cut: OB, runtime 60 s")
            ups.set("OB DISCHRG", 60.0, 40.0)
            _wait_intent(env, IntentState.SHUTDOWN_COMPLETE, self.timeout_s, "the shutdown")
            env.log("simulated mains back")
            ups.set("OL CHRG", 1800.0, 100.0)
            _wait_intent(env, IntentState.NORMAL, self.timeout_s, "the startup")
            if not daemon.wait_idle(self.timeout_s):
                raise DrillFailedError("the daemon's startup did not finish")
            return list(daemon.reports)

    def verify(self, env: DrillEnv, reports: list[FlowReport]) -> list[Check]:
        kinds = [(r.kind, r.outcome) for r in reports]
        return [
            Check(
                "shutdown then startup, both successful",
                kinds == [("shutdown", Outcome.SUCCESS), ("startup", Outcome.SUCCESS)],
                f"{[(k, o.value) for k, o in kinds]}",
            ),
            *_cluster_checks(env),
        ]


@dataclass
class SecondOutageDuringStartup:
    name: str = "second-outage-during-startup"
    summary: str = "power fails again while the startup after an outage runs"
    timeout_s: float = 600.0

    def preconditions(self, env: DrillEnv) -> list[str]:
        return [c.name for c in _cluster_checks(env) if not c.ok]

    def plan(self, env: DrillEnv) -> list[str]:
        return [
            "simulated outage: the daemon shuts the cluster down (cluster-only)",
            "mains returns: startup begins; mains fails again during it",
            "verify the startup stopped and the cluster was shut down cleanly",
            "mains returns for good: the cluster starts up again",
        ]

    def apply_break(self, env: DrillEnv) -> None:
        """The breaks happen inside recover(), timed against the daemon."""

    def recover(self, env: DrillEnv) -> list[FlowReport]:
        ups = SimulatedUps()
        with DaemonRun(env, ups) as daemon:
            env.sleep(2)
            ups.set("OB DISCHRG", 60.0, 40.0)
            _wait_intent(env, IntentState.SHUTDOWN_COMPLETE, self.timeout_s, "the first shutdown")
            ups.set("OL CHRG", 1800.0, 100.0)
            _wait_intent(env, IntentState.STARTUP_IN_PROGRESS, self.timeout_s, "startup to begin")
            env.log("simulated mains fails again during startup")
            ups.set("OB DISCHRG", 60.0, 40.0)
            wait_for(
                lambda: len(daemon.reports) >= 3,
                self.timeout_s,
                "the aborted startup and the second shutdown",
                env.sleep,
                monotonic=env.monotonic,
            )
            self.after_second = _cluster_down(env)
            env.log("simulated mains back for good")
            ups.set("OL CHRG", 1800.0, 100.0)
            wait_for(
                lambda: len(daemon.reports) >= 4,
                self.timeout_s,
                "the final startup",
                env.sleep,
                monotonic=env.monotonic,
            )
            return list(daemon.reports)

    after_second: bool = False

    def verify(self, env: DrillEnv, reports: list[FlowReport]) -> list[Check]:
        kinds = [(r.kind, r.outcome.value) for r in reports]
        expected = [
            ("shutdown", "success"),
            ("startup", "aborted"),
            ("shutdown", "success"),
            ("startup", "success"),
        ]
        return [
            Check(
                "startup stopped, shutdown took over, then a clean startup",
                kinds == expected,
                f"{kinds}",
            ),
            Check("cluster was down after the second shutdown", self.after_second),
            *_cluster_checks(env),
        ]


def _cluster_down(env: DrillEnv) -> bool:
    return not env.kube.readyz()


DRILL_TYPES: tuple[type[Drill], ...] = (
    FluxGiteaDeadlock,
    FoundationRecovery,
    ReconciliationResume,
    PowerOutage,
    SecondOutageDuringStartup,
    PowerRace,
    ClockSkew,
    StorageScaledToZero,
    ProbeFailing,
    PartialFeedLoss,
    ShedAndRestore,
    EtcdMemberLost,
    EtcdQuorumLost,
)
DRILLS: dict[str, type[Drill]] = {cls().name: cls for cls in DRILL_TYPES}


def get_drill(name: str) -> Drill:
    """A fresh instance of the named drill (drills keep state between break and verify)."""
    try:
        return DRILLS[name]()
    except KeyError:
        raise ConfigError(
            f"no drill {name!r}; `hecate drill list` shows them: {', '.join(DRILLS)}"
        ) from None
