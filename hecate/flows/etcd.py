"""Embedded etcd on the servers, read and acted on through the `etcd` playbook (one raw step
per server, roles/etcd/files/hecate-etcd.sh): the startup's start_servers (its reads before and
after the start) and etcd_quorum stages, and the reads `hecate recover etcd` needs (the
shutdown's snapshot: hecate/flows/etcd_snapshot.py). The decisions are hecate/core/etcd.py's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from hecate.adapters.ansible.events import TaskEvent
from hecate.adapters.ansible.inventory import node_problems
from hecate.adapters.ansible.protocol import PlaybookRequest, PlaybookResult
from hecate.core.etcd import (
    EtcdReading,
    QuorumVerdict,
    decide_datastore,
    parse_probe,
    quorum_verdict,
    render_verdict,
)
from hecate.core.etcd_recover import template_in
from hecate.core.plans import StageSpec, StageStatus
from hecate.core.progress_names import node_line
from hecate.errors import HecateError
from hecate.flows.context import (
    BatchEntry,
    FlowContext,
    PlaybookStep,
    Stage,
    apply_batch_result,
    check_cancel,
    run_playbook,
)
from hecate.flows.runner import ForeseenStep

TASK_ETCD = "Run the etcd action"
PROBE_S = 30.0  # a probe's own bound on each server (its run adds the connect timeout)
QUORUM_RETRY_S = 3.0
# once there is quorum, how long more the stage waits for the other members to be healthy
SETTLE_S = 30.0


class EtcdQuorumError(HecateError):
    """etcd did not reach quorum within startup.etcd_quorum_timeout_seconds."""


@dataclass(frozen=True)
class NodeAnswer:
    reachable: bool
    ok: bool
    stdout: str

    def values(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for line in self.stdout.splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip() not in out:
                out[key.strip()] = value.strip()
        return out


def _etcd_request(
    ctx: FlowContext, nodes: Sequence[str], action: str, args: Sequence[str], timeout_s: float
) -> PlaybookRequest:
    return PlaybookRequest(
        "etcd",
        limit=list(nodes),
        extravars={
            "etcd_action": action,
            "etcd_args": list(args),
            "etcd_timeout_s": int(timeout_s),
        },
        timeout_s=timeout_s + float(ctx.config.ssh_connect_timeout_seconds) + 30.0,
    )


class _Listener:
    """One etcd action's answers, from its run's events (alone or in a batch); each node's
    progress line under `stage_name`."""

    def __init__(self, ctx: FlowContext, stage_name: str) -> None:
        self.ctx = ctx
        self.stage_name = stage_name
        self.stdout: dict[str, str] = {}
        self.ok: dict[str, bool] = {}

    def __call__(self, event: TaskEvent) -> None:
        if event.task == TASK_ETCD and event.result is not None:
            self.stdout[event.host] = str(event.result.get("stdout", ""))
            self.ok[event.host] = event.status in ("ok", "changed")
        if event.status in ("ok", "changed", "failed", "unreachable"):
            self.ctx.progress(
                self.stage_name,
                event.status,
                node_line(self.stage_name, event.host, event.task, event.status),
            )

    def answers(self, result: PlaybookResult, usable: Sequence[str]) -> dict[str, NodeAnswer]:
        answers: dict[str, NodeAnswer] = {}
        for node in usable:
            stats = result.hosts.get(node)
            reachable = not (stats is not None and stats.unreachable) and (
                node in self.stdout or stats is not None
            )
            answers[node] = NodeAnswer(
                reachable, self.ok.get(node, False), self.stdout.get(node, "")
            )
        return answers


def _left_out(ctx: FlowContext, nodes: Sequence[str]) -> tuple[list[str], dict[str, NodeAnswer]]:
    """The nodes an etcd action can run on, and an answer for each the inventory leaves out
    (not reachable, saying why)."""
    problems = node_problems(ctx.config)
    usable = [n for n in nodes if n not in problems]
    left_out = {n: NodeAnswer(False, False, f"error={problems[n]}") for n in nodes if n in problems}
    return usable, left_out


def etcd_action(
    ctx: FlowContext,
    nodes: Sequence[str],
    action: str,
    args: Sequence[str] = (),
    *,
    stage_name: str = "etcd",
    timeout_s: float = 60.0,
) -> dict[str, NodeAnswer]:
    """Run one etcd action on `nodes`; each node's answer (unreachable ones included; a node
    the inventory leaves out is not reachable, and says why)."""
    if any(template_in(str(a)) for a in args):  # Ansible would evaluate it on this host
        raise HecateError(f"etcd {action}: an argument holds a Jinja template mark; refused")
    usable, left_out = _left_out(ctx, nodes)
    if not usable:
        return left_out
    listener = _Listener(ctx, stage_name)
    request = _etcd_request(ctx, usable, action, args, timeout_s)
    result = ctx.ansible.run(request, on_event=listener, cancel=ctx.cancel)
    if result.canceled:
        check_cancel(ctx)
    return {**left_out, **listener.answers(result, usable)}


def _readings(answers: Mapping[str, NodeAnswer]) -> dict[str, EtcdReading]:
    return {
        node: parse_probe(node, a.stdout)
        if a.reachable and a.stdout
        else EtcdReading(node, reachable=False, error=a.values().get("error", "no answer over SSH"))
        for node, a in answers.items()
    }


def read_etcd(ctx: FlowContext, servers: Sequence[str], stage_name: str) -> dict[str, EtcdReading]:
    return _readings(etcd_action(ctx, servers, "probe", stage_name=stage_name, timeout_s=PROBE_S))


def quorum_now(ctx: FlowContext, stage_name: str = "etcd") -> tuple[str, QuorumVerdict]:
    """(the datastore, the quorum verdict) as the servers report them now."""
    servers = list(ctx.config.nodes.servers)
    readings = read_etcd(ctx, servers, stage_name)
    datastore = decide_datastore(ctx.config.cluster.datastore, readings.values())
    return datastore, quorum_verdict(servers, readings)


@dataclass
class EtcdCarry:
    """What the startup's start_servers hands on to etcd_quorum: the servers whose etcd data
    was gone before k3s started, and etcd_quorum's first reading of every server when
    start_servers' ansible-playbook took it (the plan's `reads_ahead`; None: not taken)."""

    lost: set[str] = field(default_factory=set)
    first_read: dict[str, EtcdReading] | None = None

    def take_first_read(self) -> dict[str, EtcdReading] | None:
        """The carried reading, once: every later read is a run of its own."""
        first, self.first_read = self.first_read, None
        return first


def start_servers_step(ctx: FlowContext, carry: EtcdCarry, step: PlaybookStep) -> ForeseenStep:
    """start_servers for embedded etcd, as one ansible-playbook: each server's etcd data
    directory read while k3s is still stopped (k3s may rejoin a server whose data is gone as a
    new, empty member: after the start it would look healthy), the start itself, and when the
    plan says so (`spec.reads_ahead`) etcd_quorum's first read of every server after it. No
    decision separates them (the start never depends on the read): Python judges the reads
    once the run is over, each as if it had been a run of its own."""

    def run(stage: Stage, spec: StageSpec) -> None:
        ahead = spec.reads_ahead == "etcd_quorum"
        before, after = _start_with_reads(ctx, stage, list(spec.nodes), step, read_after=ahead)
        readings = _readings(before)
        carry.lost.update(n for n, r in readings.items() if r.data in ("missing", "empty"))
        if carry.lost and any(r.data == "present" for r in readings.values()):
            stage.note(f"etcd data missing before the start: {', '.join(sorted(carry.lost))}")
        elif carry.lost:
            carry.lost.clear()  # no server has etcd data: SQLite, or nothing to compare with
        carry.first_read = _readings(after) if after is not None else None

    def requests(spec: StageSpec) -> list[PlaybookRequest]:
        return start_requests(ctx, spec.nodes, step, read_after=spec.reads_ahead == "etcd_quorum")

    return ForeseenStep(run, requests)


def start_requests(
    ctx: FlowContext, nodes: Sequence[str], step: PlaybookStep, *, read_after: bool
) -> list[PlaybookRequest]:
    """start_servers' one run: the data read of the usable `nodes`, their start and
    (`read_after`) every readable server's probe (none: no usable node, nothing runs)."""
    usable, _ = _left_out(ctx, list(nodes))
    if not usable:
        return []
    read_usable, _ = _left_out(ctx, list(ctx.config.nodes.servers))
    requests = [
        _etcd_request(ctx, usable, "probe", (), PROBE_S),
        PlaybookRequest(
            step.playbook, limit=usable, extravars=dict(step.extravars), timeout_s=step.timeout_s
        ),
    ]
    if read_after and read_usable:
        requests.append(_etcd_request(ctx, read_usable, "probe", (), PROBE_S))
    return requests


def _start_with_reads(
    ctx: FlowContext, stage: Stage, nodes: list[str], step: PlaybookStep, *, read_after: bool
) -> tuple[dict[str, NodeAnswer], dict[str, NodeAnswer] | None]:
    """The data read of `nodes`, their start and (`read_after`) every server's probe, in one
    ansible-playbook (`Ansible.run_batch`: each judged on its own events and hosts, a node's
    failure in one never keeping it from the next). The start's outcome goes into `stage`, as
    run_playbook would put it; returns the two reads' answers (None: not taken, or cut short)."""
    usable, left_out = _left_out(ctx, nodes)
    servers = list(ctx.config.nodes.servers)
    read_usable, read_left_out = _left_out(ctx, servers)
    if not usable:  # nothing to start: the stage fails as run_playbook says it, nothing runs
        run_playbook(ctx, stage, step.playbook, nodes, timeout_s=step.timeout_s, **step.extravars)
        return left_out, None
    listeners = [_Listener(ctx, stage.name), _Listener(ctx, stage.name)]
    requests = start_requests(ctx, nodes, step, read_after=read_after)

    def on_event(event: TaskEvent) -> None:
        if event.stage == 0:
            listeners[0](event)
        elif event.stage == 1:
            stage.cause(event)
            if event.status in ("ok", "changed", "failed", "unreachable"):
                line = node_line(stage.name, event.host, event.task, event.status)
                ctx.progress(stage.name, event.status, line)
        elif event.stage == 2:
            listeners[1](event)

    results = ctx.ansible.run_batch(requests, on_event=on_event, cancel=ctx.cancel)
    if results[0].canceled:
        check_cancel(ctx)
    before = {**left_out, **listeners[0].answers(results[0], usable)}
    apply_batch_result(ctx, BatchEntry(stage, nodes, step), results[1])  # raises if cancelled
    if not read_after:
        return before, None
    if len(results) < 3:  # no server the inventory lets Hecate read
        return before, read_left_out
    if results[2].canceled:
        return before, None  # the runner stops before etcd_quorum
    return before, {**read_left_out, **listeners[1].answers(results[2], read_usable)}


def etcd_quorum_gate(ctx: FlowContext, stage: Stage, carry: EtcdCarry | None = None) -> None:
    """Wait for etcd quorum; with it, give the other members a moment, then name the ones to
    repair (the stage partial); without it by the bound, stop the startup with the report.
    The first reading may be the one start_servers' run took (`carry`): no decision was made
    between that start and this read."""
    timeout = ctx.config.startup.etcd_quorum_timeout_seconds
    deadline = ctx.monotonic() + timeout
    settle_until: float | None = None
    lost = carry.lost if carry is not None else set()
    while True:
        check_cancel(ctx)
        servers = list(ctx.config.nodes.servers)
        carried = carry.take_first_read() if carry is not None else None
        readings = carried if carried is not None else read_etcd(ctx, servers, stage.name)
        datastore = decide_datastore(ctx.config.cluster.datastore, readings.values())
        verdict = quorum_verdict(servers, readings, lost)
        if datastore == "sqlite":
            stage.status = StageStatus.SKIPPED
            stage.note("datastore sqlite (no etcd data directory on the servers)")
            stage.facts["datastore"] = datastore
            return
        if not any(r.reachable for r in readings.values()) and _api_answers(ctx):
            # etcd cannot be read over SSH, but the API answers: it does only with quorum
            stage.status = StageStatus.WARNING
            stage.note("no server readable over SSH; the API answers, so etcd has quorum")
            return
        refused = [r for r in readings.values() if r.reachable and "sudo refused" in r.error]
        if refused and len(refused) == sum(1 for r in readings.values() if r.reachable):
            # no server lets Hecate read etcd: say so and let wait_api judge, rather than
            # stopping a cold start for a missing sudoers rule
            stage.status = StageStatus.WARNING
            stage.note(refused[0].error)
            return
        stage.facts["etcd_quorum"] = verdict.to_json()
        stage.facts["datastore"] = datastore
        for member in verdict.members:
            stage.nodes[member.node] = "ok" if member.state == "healthy" else member.state
        now = ctx.monotonic()
        if verdict.quorum:
            waiting = [
                m
                for m in verdict.troubled
                if m.state in ("unit_not_running", "behind", "unhealthy")
            ]
            settle_until = settle_until or min(deadline, now + SETTLE_S)
            if not verdict.troubled or not waiting or now >= settle_until:
                break
        elif now >= deadline:
            stage.status = StageStatus.FAILED
            stage.detail = "\n".join(render_verdict(verdict))
            raise EtcdQuorumError(
                f"no etcd quorum within {timeout:.0f}s: "
                + "; ".join(f"{m.node} {m.state}" for m in verdict.troubled)
                + f". next: {verdict.next_step}"
            )
        ctx.progress(stage.name, "waiting", render_verdict(verdict)[0])
        ctx.sleep(min(QUORUM_RETRY_S, max(0.0, deadline - ctx.monotonic())))
    if verdict.troubled:
        stage.status = StageStatus.PARTIAL
    stage.note(
        "; ".join(
            render_verdict(verdict)[0:1]
            + ([f"next: {verdict.next_step}"] if verdict.next_step else [])
        )
    )


def _api_answers(ctx: FlowContext) -> bool:
    try:
        return ctx.kube.available and ctx.kube.readyz()
    except HecateError:
        return False
