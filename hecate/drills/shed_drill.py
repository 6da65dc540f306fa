"""The load-shedding drill (issue 28): shed as the daemon does on battery (power.shed), check
that what was shed stays shed (its Flux owner suspended, so it is not scaled back), then restore
as the daemon does once mains is stable, and check everything is exactly as before."""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field
from typing import cast

from hecate.adapters.kube.types import FluxKind, WorkloadKind
from hecate.adapters.statedir.shed_file import SHED_FILE, load_shed
from hecate.core.shed import ShedBlocked, ShedRecord, shed_configured
from hecate.drills.base import Check, DrillEnv, DrillFailedError, wait_for
from hecate.drills.base import cluster_checks as _cluster_checks
from hecate.errors import HecateError, KubeError
from hecate.flows.report import FlowReport
from hecate.flows.shed import ShedResult, shed, summary
from hecate.flows.shed_restore import restore

# how long a shed workload must stay at 0 (several reconcile ticks of a Flux that was not
# suspended would have scaled it back), and the bound on an agent going NotReady
HOLD_S = 3.0
AGENT_DOWN_S = 60.0


@dataclass
class ShedAndRestore:
    name: str = "shed-and-restore"
    summary: str = "shed what power.shed names, as on battery; restore it, as on stable mains"
    before: dict[str, int] = field(default_factory=dict)  # workload label -> replicas
    flux_before: dict[str, bool] = field(default_factory=dict)  # key -> suspended
    shed_result: ShedResult | None = None
    during: list[Check] = field(default_factory=list)

    def preconditions(self, env: DrillEnv) -> list[str]:  # noqa: PLR0911 - one per problem
        shed_cfg = env.config.power.shed
        if not shed_configured(shed_cfg):
            return ["power.shed names nothing to shed (label_selector, agents)"]
        try:
            found = load_shed(env.config.state_dir, move=False)
        except HecateError as exc:
            return [f"the shed record cannot be read: {exc}"]
        if isinstance(found, ShedBlocked):
            return [f"the shed record cannot be read ({found.problem}): restore by hand first"]
        if found is not None:
            return [f"something is shed already ({env.config.state_dir / SHED_FILE})"]
        if shed_cfg.label_selector and not shed_cfg.agents:
            try:
                matched = env.kube.shed_candidates(shed_cfg.label_selector)
            except KubeError as exc:
                return [f"cannot list the workloads to shed: {exc}"]
            if not any(c.replicas > 0 for c in matched):
                return [f"no workload with replicas matches {shed_cfg.label_selector!r}"]
        return [f"before the drill: {c.name}: {c.detail}" for c in _cluster_checks(env) if not c.ok]

    def plan(self, env: DrillEnv) -> list[str]:
        shed_cfg = env.config.power.shed
        what = (
            [f"workloads matching {shed_cfg.label_selector!r}"] if shed_cfg.label_selector else []
        )
        what += [f"agents {', '.join(shed_cfg.agents)}"] if shed_cfg.agents else []
        return [
            f"shed {' and '.join(what)}: recorded in state_dir/{SHED_FILE} first",
            f"verify they stay shed for {HOLD_S:g}s (their Flux owners suspended)",
            "restore: agents back Ready and uncordoned, replicas as before, Flux resumed",
        ]

    def apply_break(self, env: DrillEnv) -> None:
        selector = env.config.power.shed.label_selector
        kube = env.kube
        if selector:
            self.before = {c.label: c.replicas for c in kube.shed_candidates(selector)}
        for kind in ("Kustomization", "HelmRelease"):
            self.flux_before.update({o.key: o.suspended for o in kube.flux_objects(kind)})
        with env.context_factory() as ctx:
            self.shed_result = shed(ctx, f"drill {self.name}")
        record = self.shed_result.record
        if record is None:
            raise DrillFailedError("the shed left no record")
        env.log(f"shed: {summary(record)}")
        try:
            self.during = self._while_shed(env, record)
        except HecateError as exc:  # the checks fail; the restore (recover) must still run
            self.during = [Check("checks while shed", False, str(exc))]

    def _while_shed(self, env: DrillEnv, record: ShedRecord) -> list[Check]:
        kube = env.kube
        for agent in record.agents:  # powered off: its Node goes NotReady
            with contextlib.suppress(DrillFailedError):  # the check below says so
                wait_for(
                    functools.partial(_down, env, agent),
                    AGENT_DOWN_S,
                    f"{agent} NotReady",
                    env.sleep,
                    monotonic=env.monotonic,
                )
        env.sleep(HOLD_S)
        kept: list[str] = []
        for w in record.workloads:
            try:
                now = kube.workload(cast(WorkloadKind, w.kind), w.namespace, w.name).replicas
            except KubeError as exc:
                kept.append(f"{w.label}: {exc}")
                continue
            if now != 0:
                kept.append(f"{w.label} at {now}")
        suspended = [k for k in record.flux_suspended if not self._suspended(env, k)]
        ready = {n.name for n in kube.nodes() if n.ready}
        up = [a for a in record.agents if a in ready]
        return [
            Check("the record named what was shed", bool(record.workloads or record.agents)),
            Check(f"shed workloads stayed at 0 for {HOLD_S:g}s", not kept, ", ".join(kept)),
            Check("their Flux owners were suspended", not suspended, ", ".join(suspended)),
            Check("the shed agents went down", not up, ", ".join(up)),
        ]

    @staticmethod
    def _suspended(env: DrillEnv, key: str) -> bool:
        kind, namespace, name = key.split("/", 2)
        try:
            return env.kube.flux_object(cast(FluxKind, kind), namespace, name).suspended
        except KubeError:
            return False

    def recover(self, env: DrillEnv) -> list[FlowReport]:
        found = load_shed(env.config.state_dir)
        if not isinstance(found, ShedRecord):
            raise DrillFailedError(f"no readable shed record to restore ({found!r})")
        with env.context_factory() as ctx:
            result = restore(ctx, found)
        if result.failed:
            env.log(f"restore: {result.line()}")
        return []

    def verify(self, env: DrillEnv, reports: list[FlowReport]) -> list[Check]:
        kube = env.kube
        wrong: list[str] = []
        for label, replicas in self.before.items():
            kind, namespace, name = label.split("/", 2)
            try:
                now = kube.workload(cast(WorkloadKind, kind), namespace, name).replicas
            except KubeError as exc:
                wrong.append(f"{label}: {exc}")
                continue
            if now != replicas:
                wrong.append(f"{label} at {now}, was {replicas}")
        flux = [key for key, was in self.flux_before.items() if self._suspended(env, key) != was]
        left = (env.config.state_dir / SHED_FILE).exists()
        try:
            cordoned = [n.name for n in kube.nodes() if n.unschedulable]
        except KubeError as exc:
            cordoned = [str(exc)]
        return [
            *self.during,
            Check("replicas as before the shed", not wrong, ", ".join(wrong)),
            Check("Flux suspended exactly as before", not flux, ", ".join(flux)),
            Check("nothing left recorded as shed", not left),
            Check("no node left cordoned", not cordoned, ", ".join(cordoned)),
            *_cluster_checks(env),
        ]


def _down(env: DrillEnv, node: str) -> bool:
    try:
        return not any(n.ready for n in env.kube.nodes() if n.name == node)
    except KubeError:
        return False
