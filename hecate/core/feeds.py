"""Power feeds (issue 28): given the feeds whose UPS is critical, which nodes lose power, whether
shutting down only those is safe, and what the shutdown covers under `power.partial_policy`.

Pure: the config and the critical feeds in, a :class:`FeedLoss` out. The shutdown it decides is
`hecate.core.plans.shutdown_plan` with `ShutdownOptions.nodes` set to :attr:`FeedLoss.nodes`:
the dry run prints and the run walks that one plan.

Safety rules (checked on the nodes that keep power):
- etcd quorum: more than half of the servers keep power (k3s embedded etcd);
- agents: at least `power.min_agents` agents keep power (at most the agents there are, so a
  cluster without agents is judged by its servers alone).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from hecate.config.model import HecateConfig
    from hecate.config.view import ConfigLike


Scope = Literal["partial", "full", "none"]


@dataclass(frozen=True)
class FeedLoss:
    """What losing `critical` means. `stop`: the nodes whose every feed is critical (config
    order, servers first); `keep`: the others. `refusals`: why a partial shutdown would be
    unsafe (empty: it is safe). `scope`: partial (stop only `stop`), full (the whole cluster,
    `why` says why) or none (no node loses power; nothing to shut down)."""

    critical: tuple[str, ...]
    stop: tuple[str, ...]
    keep: tuple[str, ...]
    refusals: tuple[str, ...]
    policy: str
    scope: Scope
    why: str

    @property
    def nodes(self) -> tuple[str, ...] | None:
        """The nodes the shutdown covers: None for the whole cluster (ShutdownOptions.nodes)."""
        if self.scope == "partial":
            return self.stop
        return () if self.scope == "none" else None

    def to_json(self, every: Sequence[str]) -> dict[str, object]:
        """`stop`: the nodes that lose power; `nodes`: those the shutdown stops (`every`, the
        cluster's nodes, for a full one)."""
        nodes = self.nodes
        return {
            "feeds": list(self.critical),
            "scope": self.scope,
            "nodes": list(every if nodes is None else nodes),
            "policy": self.policy,
            "stop": list(self.stop),
            "keep": list(self.keep),
            "refused": list(self.refusals),
            "why": self.why,
        }


def nodes_by_feed(config: ConfigLike) -> dict[str, list[str]]:
    """Feed -> the nodes it powers (config order), for status and metrics."""
    power = config.power
    return {
        feed: [n for n in config.nodes.all if feed in power.node_feeds.get(n, ())]
        for feed in power.feeds
    }


def feed_of_instance(config: ConfigLike, instance: str) -> str | None:
    """The feed whose UPS `instance` watches (a trigger from it is that feed's), or None."""
    for name, feed in config.power.feeds.items():
        if feed.instance == instance:
            return name
    return None


def unsafe_reasons(config: ConfigLike, stop: Iterable[str]) -> list[str]:
    """Why stopping `stop` and keeping the rest running is unsafe (empty: it is safe)."""
    stopping = set(stop)
    servers, agents = config.nodes.servers, config.nodes.agents
    reasons = []
    kept_servers = [s for s in servers if s not in stopping]
    if servers and 2 * len(kept_servers) <= len(servers):
        need = len(servers) // 2 + 1
        reasons.append(
            f"etcd would lose quorum: {len(kept_servers)} of {len(servers)} servers keep power "
            f"({', '.join(kept_servers) or 'none'}), {need} needed"
        )
    kept_agents = [a for a in agents if a not in stopping]
    need_agents = min(config.power.min_agents, len(agents))
    if len(kept_agents) < need_agents:
        reasons.append(
            f"too few agents left: {len(kept_agents)} keep power "
            f"({', '.join(kept_agents) or 'none'}), power.min_agents is {need_agents}"
        )
    return reasons


def feed_loss(config: ConfigLike, critical: Iterable[str]) -> FeedLoss:  # noqa: PLR0911
    """What shutting down for the loss of `critical` feeds covers (see the module's rules).
    A feed not in power.feeds powers no node here."""
    power = config.power
    lost = tuple(dict.fromkeys(critical))
    every = config.nodes.all
    if not power.feeds:
        return FeedLoss(lost, tuple(every), (), (), power.partial_policy, "full", "no power.feeds")
    stop = tuple(n for n in every if set(power.node_feeds.get(n, ())) <= set(lost))
    keep = tuple(n for n in every if n not in stop)
    refusals = tuple(unsafe_reasons(config, stop))

    def result(scope: Scope, why: str) -> FeedLoss:
        return FeedLoss(lost, stop, keep, refusals, power.partial_policy, scope, why)

    if not stop:
        return result("none", "no node loses power: each has a feed that is not critical")
    if not keep:
        return result("full", "every node loses power")
    if power.partial_policy == "never":
        return result("full", "power.partial_policy is never")
    if refusals and power.partial_policy == "quorum_safe":
        return result("full", "power.partial_policy quorum_safe refuses the partial shutdown")
    if refusals:
        return result("partial", "power.partial_policy is always (unsafe: see refused)")
    return result("partial", "only the nodes whose every feed is critical")


@dataclass(frozen=True)
class FeedSettings:
    """What the daemon's supervisor needs to tell a partial shutdown from a full one: the
    config (power.feeds and the nodes) and this instance's own name (its own UPS's feed)."""

    config: HecateConfig
    own_name: str

    def lost(self, instance: str, already: frozenset[str]) -> tuple[frozenset[str], FeedLoss]:
        """The feeds lost once `instance`'s UPS is critical too, and what that covers. An
        instance that watches no feed counts for the whole cluster."""
        feed = feed_of_instance(self.config, instance)
        if feed is None:
            every = tuple(self.config.nodes.all)
            why = f"{instance} watches no feed in power.feeds"
            policy = self.config.power.partial_policy
            return already, FeedLoss(tuple(already), every, (), (), policy, "full", why)
        lost = already | {feed}
        ordered = [name for name in self.config.power.feeds if name in lost]
        return lost, feed_loss(self.config, ordered)

    def feed_of(self, instance: str) -> str | None:
        return feed_of_instance(self.config, instance)


@dataclass(frozen=True)
class FeedGauge:
    """One feed's numbers for the metrics: its nodes, whether its UPS is lost (triggered and
    not back), and how many of its nodes a partial shutdown stopped."""

    feed: str
    instance: str
    nodes: int
    lost: bool
    down: int


def feed_gauges(
    feeds: FeedSettings | None, lost: frozenset[str], scope: tuple[str, ...] | None
) -> list[FeedGauge]:
    """Per feed, from the daemon's supervisor state (empty without power.feeds)."""
    if feeds is None:
        return []
    config, down = feeds.config, set(scope or ())
    return [
        FeedGauge(
            name,
            config.power.feeds[name].instance,
            len(nodes),
            name in lost,
            len(down.intersection(nodes)),
        )
        for name, nodes in nodes_by_feed(config).items()
    ]
