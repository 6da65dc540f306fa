"""Drills for the startup gates: a node with a skewed clock, a storage workload scaled to 0, a
post-start probe failing. Each breaks one thing, runs the staged startup (the gate must hold it
back, or mark it partial, and name what is wrong), then runs it again once the break is undone
(it must pass). Nothing here changes a node's clock or the operator's config files: the skew is
injected into Hecate's own reading, the failing probe is one the drill adds for its run."""

from __future__ import annotations

import dataclasses
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hecate.adapters.ansible.events import EventCallback, TaskEvent
from hecate.adapters.ansible.protocol import Ansible, PlaybookRequest, PlaybookResult
from hecate.adapters.kube.types import WorkloadKind
from hecate.config.startup import StartupConfig, StartupProbe, StorageWorkload
from hecate.core.plans import StartupOptions
from hecate.core.run_history import Outcome
from hecate.core.startup_refusals import StartupOverrides
from hecate.drills.base import Check, DrillEnv, cluster_checks, wait_for
from hecate.errors import KubeError
from hecate.flows.context import FlowContext, StageResult
from hecate.flows.report import FlowReport
from hecate.flows.startup import run_startup
from hecate.flows.startup_gates import TASK_CLOCK, parse_epoch

# How long the held startup's gate waits, at most, before it gives up (the operator's own bound
# when shorter): long enough for one real reading, short enough for a drill.
HELD_GATE_TIMEOUT_S = 8.0


def _startup(
    env: DrillEnv, reason: str, adjust: Callable[[FlowContext], None] | None = None
) -> FlowReport:
    """One staged startup; `adjust` changes this run's context only (its config, its ports)."""
    with env.context_factory() as ctx:
        if adjust is not None:
            adjust(ctx)
        return run_startup(ctx, StartupOptions(overrides=StartupOverrides(), reason=reason))


def _with_startup(ctx: FlowContext, **changes: object) -> None:
    startup: StartupConfig = ctx.config.startup.model_copy(update=changes)
    ctx.config = ctx.config.model_copy(update={"startup": startup})


def _stage(report: FlowReport, name: str) -> StageResult | None:
    return next((s for s in report.stages if s.name == name), None)


def _passed(report: FlowReport, what: str) -> Check:
    return Check(
        what, report.outcome is Outcome.SUCCESS, f"{report.outcome.value} {report.message}"
    )


# --------------------------------------------------------------------------- clock skew


@dataclass
class SkewedClockReadings:
    """An Ansible port whose time_sync readings of one node's clock are off by `offset_s`."""

    inner: Ansible
    node: str
    offset_s: float

    def run(
        self,
        request: PlaybookRequest,
        *,
        on_event: EventCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> PlaybookResult:
        def skewed(event: TaskEvent) -> None:
            if on_event is None:
                return
            result = event.result
            if event.host == self.node and event.task == TASK_CLOCK and result is not None:
                value = parse_epoch(str(result.get("stdout", "")))
                if value is not None:
                    shifted = {**result, "stdout": f"{value + self.offset_s:.3f}"}
                    event = dataclasses.replace(event, result=shifted)
            on_event(event)

        return self.inner.run(request, on_event=skewed, cancel=cancel)

    def run_batch(
        self,
        requests: Sequence[PlaybookRequest],
        *,
        on_event: EventCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> list[PlaybookResult]:
        # time_sync never runs in a batch (its gate decides before k3s starts): unchanged
        return self.inner.run_batch(requests, on_event=on_event, cancel=cancel)

    def hold(self, requests: Sequence[PlaybookRequest]) -> None:
        # a held time_sync is still run through `run` above, its readings skewed there
        self.inner.hold(requests)

    def drop_held(self) -> None:
        self.inner.drop_held()


@dataclass
class ClockSkew:
    name: str = "clock-skew"
    summary: str = "one node's clock reads an hour off (in Hecate's reading; the node is untouched)"
    _node: str = ""
    _offset_s: float = 0.0

    def preconditions(self, env: DrillEnv) -> list[str]:
        return [c.name for c in cluster_checks(env) if not c.ok]

    def plan(self, env: DrillEnv) -> list[str]:
        node = env.config.nodes.all[-1]
        return [
            f"read {node}'s clock as {env.config.startup.max_clock_skew_seconds + 3600:g}s ahead",
            "run the staged startup: the time_sync gate must stop it before k3s, naming the node",
            "read the clock truly and run the startup again: it must pass",
        ]

    def apply_break(self, env: DrillEnv) -> None:
        self._node = env.config.nodes.all[-1]
        self._offset_s = env.config.startup.max_clock_skew_seconds + 3600.0

    def _skew(self, ctx: FlowContext) -> None:
        ctx.ansible = SkewedClockReadings(ctx.ansible, self._node, self._offset_s)
        bound = min(ctx.config.startup.time_sync_timeout_seconds, HELD_GATE_TIMEOUT_S)
        _with_startup(
            ctx, time_sync_check=True, time_sync_unsynced="wait", time_sync_timeout_seconds=bound
        )

    def recover(self, env: DrillEnv) -> list[FlowReport]:
        held = _startup(env, "drill clock-skew (skewed)", self._skew)
        return [held, _startup(env, "drill clock-skew")]

    def verify(self, env: DrillEnv, reports: list[FlowReport]) -> list[Check]:
        held, fixed = reports
        gate = _stage(held, "time_sync")
        names = [s.name for s in held.stages]
        return [
            Check(
                "the time_sync gate stopped the startup",
                held.outcome is Outcome.FAILED and gate is not None and gate.status == "failed",
                f"{held.outcome.value}: {held.message}",
            ),
            Check(
                f"{self._node} named as skewed",
                gate is not None and gate.nodes.get(self._node) == "skewed",
                gate.detail if gate is not None else "no time_sync stage",
            ),
            Check(  # power_on comes first and touches no k3s (it powers on what is off)
                "no stage after the gate ran (k3s untouched)",
                [n for n in names if n != "power_on"] == ["time_sync"],
                f"{names}",
            ),
            _passed(fixed, "startup passed with the clock read truly"),
            *cluster_checks(env),
        ]


# --------------------------------------------------------------------------- storage


def _scalable(item: StorageWorkload) -> WorkloadKind | None:
    if item.kind == "deployment":
        return "deployment"
    if item.kind == "statefulset":
        return "statefulset"
    return None  # a DaemonSet has no replicas to scale


@dataclass
class StorageScaledToZero:
    name: str = "storage-scaled-to-zero"
    summary: str = "scale a storage workload (startup.storage_workloads) to 0"
    _kind: WorkloadKind = "deployment"
    _namespace: str = ""
    _workload: str = ""
    _replicas: int = 0

    def _target(self, env: DrillEnv) -> StorageWorkload | None:
        return next((i for i in env.config.startup.storage_workloads if _scalable(i)), None)

    @property
    def _label(self) -> str:
        return f"{self._kind}/{self._namespace}/{self._workload}"

    def preconditions(self, env: DrillEnv) -> list[str]:
        item = self._target(env)
        if item is None:
            return ["startup.storage_workloads names no Deployment or StatefulSet to scale"]
        kind = _scalable(item) or "deployment"
        try:
            info = env.kube.workload(kind, item.namespace, item.name)
        except KubeError as exc:
            return [f"{item.kind}/{item.namespace}/{item.name}: {exc}"]
        problems = [c.name for c in cluster_checks(env) if not c.ok]
        if info.ready_replicas < 1:
            problems.append(f"{item.kind}/{item.namespace}/{item.name} is not Ready before")
        return problems

    def plan(self, env: DrillEnv) -> list[str]:
        item = self._target(env)
        label = f"{item.kind}/{item.namespace}/{item.name}" if item else "(none)"
        return [
            f"scale {label} to 0 and wait until no pod of it is Ready",
            "run the staged startup: the storage gate must stop it, naming the workload",
            "scale it back (the operator's fix) and run the startup again: it must pass",
        ]

    def apply_break(self, env: DrillEnv) -> None:
        item = self._target(env)
        if item is None:
            return
        self._kind = _scalable(item) or "deployment"
        self._namespace, self._workload = item.namespace, item.name
        self._replicas = max(env.kube.workload(self._kind, item.namespace, item.name).replicas, 1)
        env.kube.scale(self._kind, item.namespace, item.name, 0)
        wait_for(
            lambda: env.kube.workload(self._kind, item.namespace, item.name).ready_replicas == 0,
            120,
            f"{self._label} to stop",
            env.sleep,
            monotonic=env.monotonic,
        )

    def recover(self, env: DrillEnv) -> list[FlowReport]:
        def hold(ctx: FlowContext) -> None:
            bound = min(ctx.config.startup.storage_timeout_seconds, HELD_GATE_TIMEOUT_S)
            _with_startup(ctx, storage_timeout_seconds=bound)

        held = _startup(env, "drill storage-scaled-to-zero (scaled to 0)", hold)
        env.log(f"fix: scale {self._label} back to {self._replicas}")
        env.kube.scale(self._kind, self._namespace, self._workload, self._replicas)
        return [held, _startup(env, "drill storage-scaled-to-zero")]

    def verify(self, env: DrillEnv, reports: list[FlowReport]) -> list[Check]:
        held, fixed = reports
        gate = _stage(held, "storage")
        ready = env.kube.workload(self._kind, self._namespace, self._workload).ready_replicas
        return [
            Check(
                "the storage gate stopped the startup",
                held.outcome is Outcome.FAILED and gate is not None and gate.status == "failed",
                f"{held.outcome.value}: {held.message}",
            ),
            Check(
                f"{self._label} named as scaled to 0",
                gate is not None
                and gate.nodes.get(self._label) == "not_ready"
                and "0 pods wanted" in held.message,
                held.message,
            ),
            Check(
                "nothing after the gate ran",
                held.stages[-1].name == "storage",
                f"{[s.name for s in held.stages]}",
            ),
            _passed(fixed, "startup passed once it was scaled back"),
            Check(f"{self._label} ready", ready >= 1, f"{ready} ready"),
            *cluster_checks(env),
        ]


# --------------------------------------------------------------------------- probes


def closed_local_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class ProbeFailing:
    name: str = "probe-failing"
    summary: str = "a post-start probe fails (one the drill adds: a port nothing listens on)"
    _probe: str = ""

    def preconditions(self, env: DrillEnv) -> list[str]:
        return [c.name for c in cluster_checks(env) if not c.ok]

    def plan(self, env: DrillEnv) -> list[str]:
        return [
            "add a TCP probe to a local port nothing listens on, for one startup",
            "run the staged startup: it must end partial, naming the failing probe",
            "run the startup again without that probe: it must pass (the configured probes too)",
        ]

    def apply_break(self, env: DrillEnv) -> None:
        self._probe = "drill-closed-port"

    def recover(self, env: DrillEnv) -> list[FlowReport]:
        failing = StartupProbe(
            name=self._probe,
            target=f"127.0.0.1:{closed_local_port()}",
            timeout_seconds=1,
            retries=1,
            retry_interval_seconds=0.5,
        )

        def add(ctx: FlowContext) -> None:
            _with_startup(ctx, probes=[*ctx.config.startup.probes, failing])

        held = _startup(env, "drill probe-failing (failing probe)", add)
        return [held, _startup(env, "drill probe-failing")]

    def verify(self, env: DrillEnv, reports: list[FlowReport]) -> list[Check]:
        held, fixed = reports
        stage = _stage(held, "probes")
        return [
            Check(
                "the run is partial",
                held.outcome is Outcome.PARTIAL,
                f"{held.outcome.value}: {held.message}",
            ),
            Check(
                f"probe {self._probe} named as failing",
                stage is not None
                and stage.nodes.get(self._probe) == "failed"
                and self._probe in stage.detail,
                stage.detail if stage is not None else "no probes stage",
            ),
            _passed(fixed, "startup passed without the failing probe"),
            *cluster_checks(env),
        ]
