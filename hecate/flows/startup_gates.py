"""Startup gates: time sync (before k3s starts), storage (before Flux resumes), probes (after
Flux is Ready) and the soak. Each is a stage of the startup; each wait is bounded; each says in
its stage detail what holds startup back.

The verdicts are pure functions of what was read (and of the controller's clock readings); the
stage functions around them do the reading.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from hecate.adapters.ansible.events import TaskEvent
from hecate.adapters.ansible.protocol import PlaybookRequest
from hecate.adapters.kube.types import FluxKind, Readiness, VolumeAttachmentInfo
from hecate.adapters.probes import ProbeResult, probe_once, run_probe
from hecate.config.model import HecateConfig
from hecate.config.startup import StartupProbe
from hecate.core.progress_names import node_line
from hecate.errors import HecateError, KubeError
from hecate.flows.context import FlowContext, Stage, check_cancel, wait_until

# Task names of roles/time_sync: the gate reads their results from the task events.
TASK_NTP = "Read the NTP synchronisation state"
TASK_CLOCK = "Read the node clock"
TIME_SYNC_RETRY_S = 5.0


class StartupGateError(HecateError):
    """A startup gate held the startup back past its bound: the startup stops there."""


# --------------------------------------------------------------------------- time sync

ClockVerdict = Literal["ok", "unsynchronized", "skewed", "no_reading", "unreachable"]


@dataclass(frozen=True)
class ClockReading:
    """One node's answer: NTP state and its clock, read between two controller times."""

    node: str
    synchronized: bool | None = None  # None: not read
    node_time: float | None = None
    window: tuple[float, float] | None = None  # controller clock before and after the read

    @property
    def skew_s(self) -> float | None:
        """How far the node's clock is outside the controller's window (0 inside it);
        positive: the node is ahead."""
        if self.node_time is None or self.window is None:
            return None
        low, high = self.window
        if self.node_time < low:
            return self.node_time - low
        if self.node_time > high:
            return self.node_time - high
        return 0.0


def clock_verdict(reading: ClockReading, max_skew_s: float) -> ClockVerdict:
    if reading.synchronized is None or reading.skew_s is None:
        return "no_reading"
    if not reading.synchronized:
        return "unsynchronized"
    if abs(reading.skew_s) > max_skew_s:
        return "skewed"
    return "ok"


def clock_explanation(reading: ClockReading, verdict: ClockVerdict, max_skew_s: float) -> str:
    if verdict == "unsynchronized":
        return (
            f"{reading.node}: clock not synchronised (timedatectl NTPSynchronized=no): check "
            "its NTP/chrony/timesyncd service and network"
        )
    if verdict == "skewed":
        skew = reading.skew_s or 0.0
        direction = "ahead of" if skew > 0 else "behind"
        return (
            f"{reading.node}: clock {abs(skew):.1f}s {direction} this host "
            f"(startup.max_clock_skew_seconds={max_skew_s:g})"
        )
    if verdict == "unreachable":
        return f"{reading.node}: unreachable over SSH"
    if verdict == "no_reading":
        return f"{reading.node}: its clock could not be read (see the time_sync playbook)"
    return f"{reading.node}: ok"


def parse_ntp(stdout: str) -> bool | None:
    """`timedatectl show -p NTPSynchronized --value` prints yes/no."""
    value = stdout.strip().lower()
    if value == "yes":
        return True
    if value == "no":
        return False
    return None


def parse_epoch(stdout: str) -> float | None:
    try:
        value = float(stdout.strip())
    except ValueError:
        return None
    return value if value > 0 else None


class _ClockCollector:
    """Builds ClockReadings from the time_sync playbook's live task events.

    The window is this host's real clock (time.time, not the flow's clock, which tests may
    fake): a physical comparison of two clocks."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.readings: dict[str, ClockReading] = {}

    def __call__(self, event: TaskEvent) -> None:
        now = time.time()
        node = event.host
        current = self.readings.get(node, ClockReading(node))
        if event.task == TASK_CLOCK and event.status == "started":
            self.started[node] = now
            return
        if event.status not in ("ok", "changed") or event.result is None:
            return
        # Both are raw steps (their answer in `stdout`); `msg` is what a debug task would say.
        stdout = str(event.result.get("stdout", event.result.get("msg", "")))
        if event.task == TASK_NTP:
            current = ClockReading(node, parse_ntp(stdout), current.node_time, current.window)
        elif event.task == TASK_CLOCK:
            window = (self.started.get(node, now), now)
            current = ClockReading(node, current.synchronized, parse_epoch(stdout), window)
        self.readings[node] = current


def clock_request(ctx: FlowContext, nodes: Sequence[str]) -> PlaybookRequest:
    """One read of `nodes`' clocks (the first is every node's: what the runner starts ahead)."""
    timeout = float(ctx.config.ssh_connect_timeout_seconds) + 60.0
    return PlaybookRequest(
        "time_sync", limit=list(nodes), extravars={"time_sync_timeout_s": 20}, timeout_s=timeout
    )


def _read_clocks(ctx: FlowContext, nodes: list[str]) -> dict[str, ClockVerdict | ClockReading]:
    collector = _ClockCollector()
    request = clock_request(ctx, nodes)

    def on_event(event: TaskEvent) -> None:
        collector(event)
        if event.status in ("ok", "failed", "unreachable"):
            ctx.progress(
                "time_sync",
                event.status,
                node_line("time_sync", event.host, event.task, event.status),
            )

    result = ctx.ansible.run(request, on_event=on_event, cancel=ctx.cancel)
    if result.canceled:
        check_cancel(ctx)
    out: dict[str, ClockVerdict | ClockReading] = {}
    for node in nodes:
        stats = result.hosts.get(node)
        if stats is not None and stats.unreachable:
            out[node] = "unreachable"
        else:
            out[node] = collector.readings.get(node, ClockReading(node))
    return out


def time_sync_gate(ctx: FlowContext, stage: Stage) -> None:
    """Wait until every node's clock is synchronised and close to ours, or the bound passes:
    then stop before k3s starts (`wait`), or report the nodes and go on (`start_anyway`)."""
    startup = ctx.config.startup
    nodes = ctx.config.nodes.all
    max_skew = startup.max_clock_skew_seconds
    deadline = ctx.monotonic() + startup.time_sync_timeout_seconds
    pending = list(nodes)
    explanations: dict[str, str] = {}
    attempts = 0
    while pending:
        attempts += 1
        for node, answer in _read_clocks(ctx, pending).items():
            if isinstance(answer, str):
                verdict: ClockVerdict = answer
                reading = ClockReading(node)
            else:
                reading, verdict = answer, clock_verdict(answer, max_skew)
            stage.nodes[node] = verdict
            explanations[node] = clock_explanation(reading, verdict, max_skew)
        pending = [n for n in pending if stage.nodes[n] != "ok"]
        if not pending or ctx.monotonic() >= deadline:
            break
        ctx.progress("time_sync", "waiting", "; ".join(explanations[n] for n in pending))
        wait_until(ctx, lambda: False, min(TIME_SYNC_RETRY_S, deadline - ctx.monotonic()))
    if not pending:
        stage.note(f"{len(nodes)} node clock(s) synchronised within {max_skew:g}s")
        return
    held = "; ".join(explanations[n] for n in pending)
    if startup.time_sync_unsynced == "start_anyway":
        stage.status = "warning"
        stage.note(f"starting anyway (startup.time_sync_unsynced=start_anyway): {held}")
        return
    stage.status = "failed"
    raise StartupGateError(
        f"time sync: after {startup.time_sync_timeout_seconds:.0f}s ({attempts} check(s)) "
        f"{held}; k3s was not started (set startup.time_sync_unsynced: start_anyway to go on)"
    )


# --------------------------------------------------------------------------- storage


def storage_pending(
    readiness: list[Readiness | str],
    attachments: list[VolumeAttachmentInfo] | None,
) -> list[str]:
    """What still holds the storage gate: workloads not Ready, VolumeAttachments stuck.
    A string in `readiness` is a workload that could not be read (why)."""
    reasons = []
    for item in readiness:
        if isinstance(item, str):
            reasons.append(item)
        elif item.wanted == 0:
            reasons.append(f"{item.label}: 0 pods wanted (scaled to 0?)")
        elif not item.is_ready:
            reasons.append(f"{item.label}: {item.ready}/{item.wanted} Ready")
    for va in attachments or []:
        if va.error:
            reasons.append(f"VolumeAttachment {va.name} on {va.node}: {va.error}")
        elif not va.attached:
            reasons.append(f"VolumeAttachment {va.name} on {va.node}: not attached yet")
    return reasons


def _storage_state(ctx: FlowContext) -> list[str]:
    startup = ctx.config.startup
    readiness: list[Readiness | str] = []
    for item in startup.storage_workloads:
        try:
            readiness.append(ctx.kube.readiness(item.kind, item.namespace, item.name))
        except KubeError as exc:
            readiness.append(f"{item.kind}/{item.namespace}/{item.name}: {exc}")
    attachments = None
    if startup.storage_check_volume_attachments:
        try:
            attachments = ctx.kube.volume_attachments()
        except KubeError as exc:
            readiness.append(f"VolumeAttachments: {exc}")
    return storage_pending(readiness, attachments)


def storage_gate(ctx: FlowContext, stage: Stage) -> None:
    startup = ctx.config.startup
    reasons: list[str] = []

    def ready() -> bool:
        reasons[:] = _storage_state(ctx)
        if reasons:
            ctx.progress("storage", "waiting", "; ".join(reasons))
        return not reasons

    if wait_until(ctx, ready, startup.storage_timeout_seconds, interval_s=1.0):
        for item in startup.storage_workloads:
            stage.nodes[f"{item.kind}/{item.namespace}/{item.name}"] = "ok"
        stage.note(f"{len(startup.storage_workloads)} storage workload(s) Ready")
        return
    for item in startup.storage_workloads:
        label = f"{item.kind}/{item.namespace}/{item.name}"
        stage.nodes[label] = "not_ready" if any(r.startswith(label) for r in reasons) else "ok"
    stage.status = "failed"
    raise StartupGateError(
        f"storage not Ready after {startup.storage_timeout_seconds:.0f}s: {'; '.join(reasons)}; "
        "Flux stays suspended so nothing starts without its volumes (fix it, then run "
        "`hecate startup --execute` again)"
    )


# --------------------------------------------------------------------------- probes


def probes_gate(ctx: FlowContext, stage: Stage) -> list[ProbeResult]:
    results = []
    for probe in ctx.config.startup.probes:
        check_cancel(ctx)
        result = run_probe(probe, sleep=ctx.sleep, cancel=ctx.cancel)
        results.append(result)
        stage.nodes[probe.label] = "ok" if result.ok else "failed"
        ctx.progress("probes", "ok" if result.ok else "failed", f"{probe.label}: {result.detail}")
    failing = [r for r in results if not r.ok]
    if failing:
        stage.status = "partial"
        stage.note("failing: " + "; ".join(f"{r.label}: {r.detail}" for r in failing))
    else:
        stage.note(f"{len(results)} probe(s) passed")
    return results


# --------------------------------------------------------------------------- soak

_SOAK_FLUX: tuple[FluxKind, ...] = ("Kustomization", "HelmRelease")


def health_problems(
    config: HecateConfig,
    ready_nodes: set[str] | str,
    flux_failing: list[str] | str,
    probe_failures: Mapping[str, str],
) -> list[str]:
    """What makes one soak check unhealthy (a string argument: it could not be read)."""
    problems = []
    if isinstance(ready_nodes, str):
        problems.append(f"nodes: {ready_nodes}")
    else:
        missing = [n for n in config.nodes.all if n not in ready_nodes]
        if missing:
            problems.append(f"not Ready: {', '.join(missing)}")
    if isinstance(flux_failing, str):
        problems.append(f"Flux: {flux_failing}")
    elif flux_failing:
        problems.append(f"Flux not Ready: {', '.join(flux_failing)}")
    problems += [f"probe {label}: {why}" for label, why in probe_failures.items()]
    return problems


def _health(ctx: FlowContext, probes: list[StartupProbe]) -> list[str]:
    ready: set[str] | str
    failing: list[str] | str
    try:
        ready = {n.name for n in ctx.kube.nodes() if n.ready}
    except KubeError as exc:
        ready = str(exc)
    try:
        failing = [
            obj.key
            for kind in _SOAK_FLUX
            for obj in ctx.kube.flux_objects(kind)
            if not obj.suspended and not obj.ready
        ]
    except KubeError as exc:
        failing = str(exc)
    failures = {}
    for probe in probes:
        ok, detail = probe_once(probe)
        if not ok:
            failures[probe.label] = detail
    return health_problems(ctx.config, ready, failing, failures)


def soak_gate(ctx: FlowContext, stage: Stage) -> None:
    """Stay until the cluster held healthy for soak_seconds; the first unhealthy check ends the
    soak and is reported (the run is partial)."""
    startup = ctx.config.startup
    started = ctx.monotonic()
    checks = 0
    while True:
        check_cancel(ctx)
        checks += 1
        problems = _health(ctx, startup.probes)
        elapsed = ctx.monotonic() - started
        if problems:
            stage.status = "partial"
            stage.note(
                f"unhealthy after {elapsed:.0f}s of {startup.soak_seconds:.0f}s (check {checks}): "
                + "; ".join(problems)
            )
            return
        if elapsed >= startup.soak_seconds:
            break
        ctx.progress("soak", "running", f"healthy for {elapsed:.0f}s")
        wait_until(
            ctx,
            lambda: False,
            min(startup.soak_interval_seconds, max(0.0, startup.soak_seconds - elapsed)),
        )
    stage.note(f"healthy for {startup.soak_seconds:.0f}s ({checks} checks)")
