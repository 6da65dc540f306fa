"""The etcd drills, for clusters with embedded etcd and three servers or more.

etcd-member-lost: one server's etcd data is taken away (moved aside, put back at the end):
quorum holds, the startup finishes and its etcd_quorum stage names the member to repair.
etcd-quorum-lost: after a shutdown (and its snapshot), two servers' etcd data is taken away: the
startup stops at etcd_quorum naming them; `hecate recover etcd --execute` brings the cluster back
from the pre-shutdown snapshot, with an object created before it.
Nothing is deleted: the data taken away is moved to etcd-old-drill-* on its server.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from hecate.core.etcd import DATA_DIR
from hecate.core.etcd_recover import RecoverRequest
from hecate.core.plans import ShutdownOptions, StartupOptions
from hecate.core.run_history import Outcome
from hecate.core.startup_refusals import StartupOverrides
from hecate.drills.base import Check, DrillEnv, DrillFailedError, cluster_checks
from hecate.errors import HecateError, KubeError
from hecate.flows.context import FlowContext, Stage, run_playbook
from hecate.flows.etcd import etcd_action, quorum_now
from hecate.flows.recover_etcd import recover_etcd
from hecate.flows.report import FlowReport
from hecate.flows.shutdown import run_shutdown
from hecate.flows.startup import run_startup


def _preconditions(env: DrillEnv) -> list[str]:
    servers = env.config.nodes.servers
    if env.config.cluster.datastore in ("sqlite", "external"):
        return [f"cluster.datastore is {env.config.cluster.datastore}: no embedded etcd"]
    if len(servers) < 3:
        return [f"{len(servers)} server(s): the etcd drills need 3 or more"]
    try:
        with env.context_factory() as ctx:
            datastore, verdict = quorum_now(ctx, "drill")
    except HecateError as exc:
        return [f"cannot read etcd on the servers: {exc}"]
    if datastore == "sqlite":
        return ["the servers run SQLite, not etcd"]
    if not verdict.quorum or verdict.troubled:
        troubled = ", ".join(f"{m.node} {m.state}" for m in verdict.troubled)
        return [f"etcd is not healthy before the drill: {troubled or 'no quorum'}"]
    return []


def _aside(stamp: str) -> str:
    return f"{DATA_DIR}-old-drill-{stamp}"


def _take_data(ctx: FlowContext, nodes: list[str], dest: str) -> None:
    """Stop k3s on `nodes` and move their etcd data to `dest` (kept)."""
    _k3s(ctx, nodes, "stop_servers")
    answers = etcd_action(ctx, nodes, "move_aside", [dest], stage_name="drill")
    bad = [n for n, a in answers.items() if not a.ok]
    if bad:
        raise DrillFailedError(f"could not move the etcd data aside on {', '.join(bad)}")


def _k3s(ctx: FlowContext, nodes: list[str], playbook: str) -> None:
    stage = Stage("drill")
    timeout = ctx.config.shutdown.stop_timeout_seconds
    run_playbook(ctx, stage, playbook, nodes, timeout_s=timeout + 60)
    bad = [n for n, s in stage.nodes.items() if s != "ok"]
    if bad:
        raise DrillFailedError(f"{playbook} failed on {', '.join(bad)}")


def _startup(env: DrillEnv, reason: str) -> FlowReport:
    with env.context_factory() as ctx:
        return run_startup(ctx, StartupOptions(overrides=StartupOverrides(), reason=reason))


def _stage_detail(report: FlowReport, name: str) -> tuple[str, str, dict[str, str]]:
    for stage in report.stages:
        if stage.name == name:
            return stage.status.value, stage.detail, stage.nodes
    return "absent", "", {}


@dataclass
class EtcdMemberLost:
    name: str = "etcd-member-lost"
    summary: str = "take one server's etcd data away (moved aside, put back after)"
    stamp: str = ""

    def victim(self, env: DrillEnv) -> str:
        return env.config.nodes.servers[-1]

    def preconditions(self, env: DrillEnv) -> list[str]:
        return _preconditions(env)

    def plan(self, env: DrillEnv) -> list[str]:
        return [
            f"stop k3s on {self.victim(env)}, move its etcd data to {_aside('STAMP')}",
            "run the staged startup: quorum holds; etcd_quorum must name "
            f"{self.victim(env)} as data_missing and the startup finish",
            "put the data back and restart k3s there; verify etcd healthy again",
        ]

    def apply_break(self, env: DrillEnv) -> None:
        self.stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        with env.context_factory() as ctx:
            _take_data(ctx, [self.victim(env)], _aside(self.stamp))

    def recover(self, env: DrillEnv) -> list[FlowReport]:
        return [_startup(env, f"drill {self.name}")]

    def verify(self, env: DrillEnv, reports: list[FlowReport]) -> list[Check]:
        report, victim = reports[-1], self.victim(env)
        status, detail, nodes = _stage_detail(report, "etcd_quorum")
        checks = [
            Check(
                "startup finished",
                report.outcome in (Outcome.SUCCESS, Outcome.PARTIAL),
                report.outcome.value,
            ),
            Check(
                f"etcd_quorum named {victim}",
                status == "partial" and nodes.get(victim) == "data_missing" and victim in detail,
                detail,
            ),
        ]
        checks.append(self._restore(env))
        return checks

    def _restore(self, env: DrillEnv) -> Check:
        victim = self.victim(env)
        try:
            with env.context_factory() as ctx:
                _k3s(ctx, [victim], "stop_servers")
                answers = etcd_action(ctx, [victim], "move_back", [_aside(self.stamp)])
                if not answers[victim].ok:
                    raise DrillFailedError(answers[victim].stdout or "move_back failed")
                _k3s(ctx, [victim], "start_servers")
                deadline = time.monotonic() + env.config.startup.etcd_quorum_timeout_seconds
                while True:
                    _, verdict = quorum_now(ctx, "drill")
                    if verdict.quorum and not verdict.troubled:
                        return Check("data put back, etcd healthy", True)
                    if time.monotonic() > deadline:
                        return Check("data put back, etcd healthy", False, verdict.next_step)
                    env.sleep(2.0)
        except HecateError as exc:
            return Check(
                "data put back, etcd healthy",
                False,
                f"{exc}; the data is kept in {_aside(self.stamp)} on {victim}",
            )


MARKER = "hecate-drill-etcd"


@dataclass
class EtcdQuorumLost:
    name: str = "etcd-quorum-lost"
    summary: str = "after a shutdown, take two servers' etcd data away (moved aside)"
    stamp: str = ""

    def victims(self, env: DrillEnv) -> list[str]:
        return list(env.config.nodes.servers[1:3])

    def preconditions(self, env: DrillEnv) -> list[str]:
        return _preconditions(env)

    def plan(self, env: DrillEnv) -> list[str]:
        victims = ", ".join(self.victims(env))
        return [
            f"create Namespace {MARKER}, then a cluster-only shutdown (its etcd snapshot)",
            f"move the etcd data of {victims} to {_aside('STAMP')}",
            f"run the staged startup: it must stop at etcd_quorum naming {victims}",
            "hecate recover etcd --execute from the snapshot, then the startup again",
            f"verify the API, every node Ready and Namespace {MARKER} there",
        ]

    def apply_break(self, env: DrillEnv) -> None:
        self.stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        try:
            env.kube.apply(_marker())
        except KubeError as exc:
            raise DrillFailedError(f"cannot create the marker Namespace: {exc}") from None
        with env.context_factory() as ctx:
            report = run_shutdown(
                ctx, ShutdownOptions(mode="cluster-only", reason=f"drill {self.name}")
            )
            if not report.facts.get("etcd_snapshot", {}).get("verified"):
                raise DrillFailedError("the shutdown's etcd snapshot was not verified")
            _take_data(ctx, self.victims(env), _aside(self.stamp))

    def recover(self, env: DrillEnv) -> list[FlowReport]:
        first = _startup(env, f"drill {self.name}")
        with env.context_factory() as ctx:
            recover_etcd(ctx, RecoverRequest("latest", None), execute=True)
        return [first, _startup(env, f"drill {self.name} after recovery")]

    def verify(self, env: DrillEnv, reports: list[FlowReport]) -> list[Check]:
        first, last = reports[0], reports[-1]
        named = all(f"{v} data_missing" in first.message for v in self.victims(env))
        try:
            env.kube.live_manifest(_marker())
            marker = True
        except KubeError:
            marker = False
        return [
            Check(
                "startup stopped at etcd_quorum",
                first.outcome is Outcome.FAILED and first.stages[-1].name == "etcd_quorum",
                first.message,
            ),
            Check("it named the members that lost their data", named, first.message),
            Check(
                "startup after recovery",
                last.outcome in (Outcome.SUCCESS, Outcome.PARTIAL),
                last.outcome.value,
            ),
            *cluster_checks(env),
            Check(f"Namespace {MARKER} (created before the snapshot) is there", marker),
        ]


def _marker() -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": MARKER}}
