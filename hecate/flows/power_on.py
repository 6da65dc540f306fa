"""Startup's first stage, `power_on` (issue 25): the nodes whose SSH does not answer are powered
on out of band (servers first, then agents) and each is waited for until its SSH answers,
bounded by startup.power_on_timeout_seconds, the power-on sent again with backoff (a magic
packet can be lost, a BMC can be busy). Per node, all at once: a node that cannot be powered
on is named with its reason and the others go on."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from hecate.core.plans import StageSpec, StageStatus
from hecate.core.power_steps import SSH_POLL_S, resend_delay
from hecate.flows.context import FlowContext, Stage, check_cancel

MAX_PARALLEL = 32  # nodes brought up at once (each a BMC call or a packet, then SSH polls)
PROGRESS_EVERY_S = 2.0


@dataclass(frozen=True)
class NodeUp:
    """How one node ended: `on` (SSH answered at once), `powered_on`, `failed` or `aborted`."""

    status: str
    reason: str


def answers_all(
    nodes: Sequence[str], answers: Callable[[str], tuple[bool, str]]
) -> dict[str, tuple[bool, str]]:
    """Each node's SSH answer, asked of all at once (each bounded by the check's timeout)."""
    if not nodes:
        return {}
    with ThreadPoolExecutor(min(MAX_PARALLEL, len(nodes)), "hecate-ssh") as pool:
        return dict(zip(nodes, pool.map(answers, nodes), strict=True))


def power_on_stage(ctx: FlowContext, stage: Stage, spec: StageSpec) -> None:
    power, answers = ctx.power, ctx.node_answers
    if power is None or answers is None:
        stage.status, stage.detail = StageStatus.SKIPPED, "no power port here"
        return
    seen = answers_all(spec.nodes, answers)
    down = [node for node in spec.nodes if not seen[node][0]]
    for node in spec.nodes:
        if seen[node][0]:
            stage.nodes[node] = "on"
    if not down:
        stage.note("every node's SSH answers: nothing to power on")
        return
    servers = set(ctx.config.nodes.servers)
    timeout = ctx.config.startup.power_on_timeout_seconds
    started = ctx.monotonic()
    deadline = started + timeout
    # Servers first: their first power-on is sent (and answered) before the agents' is.
    first_tries: dict[str, str] = {}
    with ThreadPoolExecutor(min(MAX_PARALLEL, len(down)), "hecate-power") as pool:
        for group in ([n for n in down if n in servers], [n for n in down if n not in servers]):
            for node, result in zip(group, pool.map(power.on, group), strict=True):
                first_tries[node] = "" if result.ok else result.reason
        futures = {
            node: pool.submit(_bring_up, ctx, node, first_tries[node], deadline, timeout)
            for node in down
        }
        _wait_all(ctx, stage.name, futures)
    check_cancel(ctx)
    failed: list[str] = []
    for node in down:
        outcome = futures[node].result()
        stage.nodes[node] = outcome.status
        if outcome.status != "powered_on":
            failed.append(node)
            stage.causes[node] = outcome.reason
            stage.note(f"{node}: {outcome.reason}")
    up = [n for n in down if n not in failed]
    if up:
        stage.note(f"powered on: {', '.join(up)} ({ctx.monotonic() - started:.0f}s)")
    if failed:
        stage.status = StageStatus.PARTIAL


def _wait_all(ctx: FlowContext, name: str, futures: dict[str, Future[NodeUp]]) -> None:
    """Until every node is up or given up on; says which are still awaited (status shows it)."""
    pending = set(futures.values())
    while pending:
        _, pending = wait(pending, timeout=PROGRESS_EVERY_S, return_when=FIRST_COMPLETED)
        waiting = [node for node, f in futures.items() if f in pending]
        if waiting:
            ctx.progress(name, "waiting", f"SSH of {', '.join(waiting)}")


def _bring_up(ctx: FlowContext, node: str, refused: str, deadline: float, timeout: float) -> NodeUp:
    """Poll the node's SSH until it answers or the deadline; resend the power-on with backoff.
    `refused`: why the first power-on was not accepted ("" when it was)."""
    assert ctx.power is not None and ctx.node_answers is not None  # noqa: S101 - checked above
    started = ctx.monotonic()
    attempt = 1
    resend_at = started + resend_delay(attempt)
    last_refusal = refused
    while True:
        if ctx.cancel.is_set():
            return NodeUp("aborted", "stopped on request")
        ok, seen = ctx.node_answers(node)
        now = ctx.monotonic()
        if ok:
            return NodeUp("powered_on", f"SSH answers after {now - started:.0f}s")
        if now >= deadline:
            return NodeUp("failed", _why(ctx, node, last_refusal, seen, timeout))
        if now >= resend_at:
            result = ctx.power.on(node)
            last_refusal = "" if result.ok else result.reason
            attempt += 1
            resend_at = now + resend_delay(attempt)
        ctx.sleep(max(0.0, min(SSH_POLL_S, deadline - now)))


def _why(ctx: FlowContext, node: str, refusal: str, seen: str, timeout: float) -> str:
    """The one line naming why a node did not come up: the power-on refused, or powered on (its
    BMC may even say on) while its SSH never answered."""
    if refusal:
        return f"cannot be powered on: {refusal} ({seen})"
    assert ctx.power is not None  # noqa: S101 - checked by the stage
    reading = ctx.power.status(node)
    state = f"; its BMC says {reading.state}" if reading.method in ("ipmi", "redfish") else ""
    return f"powered on, but SSH did not answer within {timeout:.0f}s{state} ({seen})"
