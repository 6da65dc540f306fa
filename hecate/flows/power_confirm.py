"""The shutdown's `power_confirm` stage (issue 25): after the poweroff step, each node with a
BMC (power.nodes: ipmi, redfish) is confirmed off from its BMC. One still on after
shutdown.poweroff_timeout_seconds is powered off hard when shutdown.bmc_hard_off says so; one
SSH could not reach during the shutdown is powered off through its BMC (soft, then hard after
the timeout) instead of being left to die with the battery. Per node, all at once; each wait
bounded (hecate.core.power_steps.confirm_step decides)."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from hecate.core.plans import StageSpec, StageStatus
from hecate.core.power_steps import BMC_POLL_S, confirm_step
from hecate.flows.context import FlowContext, Stage, StageResult, check_cancel

MAX_PARALLEL = 32
HARD_OFF_WAIT_S = 30.0  # a hard off is a power cut: the BMC says off within seconds
REACHED_BY = ("poweroff_agents", "poweroff_servers")


@dataclass(frozen=True)
class NodeOff:
    status: str  # off | on | failed | aborted
    reason: str


def reached_nodes(results: Sequence[StageResult]) -> set[str]:
    """The nodes whose poweroff went through SSH (their poweroff stage's per-host status)."""
    return {
        node
        for result in results
        if result.name in REACHED_BY
        for node, status in result.nodes.items()
        if status == "ok"
    }


def power_confirm_stage(
    ctx: FlowContext, stage: Stage, spec: StageSpec, results: Sequence[StageResult]
) -> None:
    if ctx.power is None:
        stage.status, stage.detail = StageStatus.SKIPPED, "no power port here"
        return
    reached = reached_nodes(results)
    nodes = list(spec.nodes)
    with ThreadPoolExecutor(min(MAX_PARALLEL, max(1, len(nodes))), "hecate-bmc") as pool:
        outcomes = list(pool.map(lambda n: _confirm(ctx, n, n in reached), nodes))
    check_cancel(ctx)
    for node, outcome in zip(nodes, outcomes, strict=True):
        stage.nodes[node] = outcome.status
        if outcome.status != "off":
            stage.status = StageStatus.PARTIAL
            stage.causes[node] = outcome.reason
        stage.note(f"{node}: {outcome.reason}")


def _confirm(ctx: FlowContext, node: str, reached: bool) -> NodeOff:
    power = ctx.power
    assert power is not None  # noqa: S101 - checked by the stage
    shutdown = ctx.config.shutdown
    asked_soft = asked_hard = False
    since = ctx.monotonic()
    how = "off" if reached else "off through its BMC (SSH did not reach it)"
    last = ""
    while True:
        if ctx.cancel.is_set():
            return NodeOff("aborted", "stopped on request")
        reading = power.status(node)
        last = reading.reason
        timeout = HARD_OFF_WAIT_S if asked_hard else shutdown.poweroff_timeout_seconds
        step = confirm_step(
            state=reading.state,
            reached=reached,
            asked_soft=asked_soft,
            asked_hard=asked_hard,
            waited_s=ctx.monotonic() - since,
            timeout_s=timeout,
            hard_allowed=shutdown.bmc_hard_off,
        )
        if step == "done":
            hard = ", hard" if asked_hard else ""
            return NodeOff("off", f"{how}{hard} (BMC: {reading.reason})")
        if step in ("soft_off", "hard_off"):
            result = power.off(node, hard=step == "hard_off")
            asked_soft, asked_hard = True, asked_hard or step == "hard_off"
            since = ctx.monotonic()
            if not result.ok:
                return NodeOff("failed", f"the BMC refused the {step}: {result.reason}")
            continue
        if step == "give_up":
            if asked_hard:
                return NodeOff("on", f"still on after a hard off (BMC: {last})")
            return NodeOff(
                "on",
                f"still on after {shutdown.poweroff_timeout_seconds:.0f}s (BMC: {last}); "
                "shutdown.bmc_hard_off is false",
            )
        ctx.sleep(BMC_POLL_S)
