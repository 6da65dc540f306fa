"""The power feeds' drill (issue 28): one feed lost stops only the nodes it alone powers, the
rest of the cluster keeps running, and the feed's return brings those nodes back."""

from __future__ import annotations

from dataclasses import dataclass, field

from hecate.core.feeds import FeedLoss, feed_loss
from hecate.core.plans import ShutdownOptions, StartupOptions
from hecate.core.run_history import Outcome
from hecate.drills.base import Check, DrillEnv, DrillFailedError
from hecate.drills.base import cluster_checks as _cluster_checks
from hecate.errors import KubeError
from hecate.flows.ledger import load_ledger
from hecate.flows.report import FlowReport
from hecate.flows.shutdown import run_shutdown
from hecate.flows.startup import run_startup


def partial_feed(env: DrillEnv) -> tuple[str, FeedLoss] | None:
    """The first feed (config order) whose loss alone is a partial shutdown, or None."""
    for name in env.config.power.feeds:
        loss = feed_loss(env.config, [name])
        if loss.scope == "partial":
            return name, loss
    return None


@dataclass
class PartialFeedLoss:
    name: str = "partial-feed-loss"
    summary: str = "one feed lost: a partial shutdown (cluster-only) of the nodes it alone powers"
    shutdown: FlowReport | None = None
    kept_running: list[Check] = field(default_factory=list)

    def preconditions(self, env: DrillEnv) -> list[str]:
        if not env.config.power.feeds:
            return ["power.feeds is not set: every trigger is the whole cluster's"]
        if partial_feed(env) is None:
            return ["no feed's loss alone is a partial shutdown (power.partial_policy, quorum)"]
        return [f"before the drill: {c.name}: {c.detail}" for c in _cluster_checks(env) if not c.ok]

    def plan(self, env: DrillEnv) -> list[str]:
        found = partial_feed(env)
        feed, nodes = (found[0], ", ".join(found[1].stop)) if found else ("?", "?")
        return [
            f"feed {feed} lost: partial shutdown (cluster-only) of {nodes}",
            "verify the API answered and every other node stayed Ready meanwhile",
            f"feed {feed} back: start {nodes} again, Ready and uncordoned",
        ]

    def apply_break(self, env: DrillEnv) -> None:
        found = partial_feed(env)
        if found is None:
            raise DrillFailedError("no feed's loss alone is a partial shutdown")
        feed, loss = found
        options = ShutdownOptions(
            "cluster-only", f"drill {self.name}: feed {feed}", nodes=loss.nodes
        )
        with env.context_factory() as ctx:
            self.shutdown = run_shutdown(ctx, options)
        self.kept_running = _kept_running(env, loss)

    def recover(self, env: DrillEnv) -> list[FlowReport]:
        found = partial_feed(env)
        if found is None or self.shutdown is None:
            raise DrillFailedError("the partial shutdown did not run")
        options = StartupOptions(
            reason=f"drill {self.name}: feed {found[0]} back", nodes=found[1].nodes
        )
        with env.context_factory() as ctx:
            return [self.shutdown, run_startup(ctx, options)]

    def verify(self, env: DrillEnv, reports: list[FlowReport]) -> list[Check]:
        found = partial_feed(env)
        stopped: set[str] = set()
        for stage in self.shutdown.stages if self.shutdown is not None else []:
            if stage.name in ("stop_agents", "stop_servers"):
                stopped.update(stage.nodes)
        expected = set(found[1].stop) if found is not None else set()
        outcomes = [(r.kind, r.outcome) for r in reports]
        left = load_ledger(env.config.state_dir).cordoned
        return [
            Check(
                "partial shutdown, then the feed's startup, both clean",
                outcomes == [("shutdown", Outcome.SUCCESS), ("startup", Outcome.SUCCESS)],
                f"{[(k, o.value) for k, o in outcomes]}",
            ),
            Check("only the feed's nodes were stopped", stopped == expected, f"{sorted(stopped)}"),
            *self.kept_running,
            Check("nothing left cordoned by Hecate", not left, ", ".join(left)),
            *_cluster_checks(env),
        ]


def _kept_running(env: DrillEnv, loss: FeedLoss) -> list[Check]:
    """During the partial shutdown: the API answered and the nodes that kept power were Ready."""
    try:
        ready = {n.name for n in env.kube.nodes() if n.ready}
        api = env.kube.readyz()
    except KubeError as exc:
        return [Check("the API answered during the partial shutdown", False, str(exc))]
    not_ready = [n for n in loss.keep if n not in ready]
    return [
        Check("the API answered during the partial shutdown", api),
        Check("the nodes that kept power stayed Ready", not not_ready, ", ".join(not_ready)),
    ]
