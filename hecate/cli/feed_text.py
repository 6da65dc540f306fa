"""Power feeds on the command line (issue 28): `hecate shutdown --feed NAME`'s lines above the
plan (hecate/core/feeds.py), and `hecate status`'s nodes per feed. Pure."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hecate.core.feeds import FeedLoss, feed_loss, feed_of_instance, nodes_by_feed
from hecate.core.intent import Intent, IntentState
from hecate.errors import ConfigError

if TYPE_CHECKING:
    from hecate.config.view import ConfigLike


def check_feed_names(config: ConfigLike, names: Sequence[str]) -> None:
    """ConfigError (exit 2) for a name not in power.feeds, or no power.feeds at all."""
    known = list(config.power.feeds)
    if not known:
        raise ConfigError("--feed needs power.feeds in the config (none is set)")
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ConfigError(f"--feed: {', '.join(unknown)} not in power.feeds ({', '.join(known)})")


def trace_feed_loss(config: ConfigLike, feed: str | None) -> FeedLoss | None:
    """What a trigger in a replayed trace of `feed`'s UPS would shut down (default: the feed
    of this instance, its coordination.peer_name or host name); None without power.feeds."""
    if not config.power.feeds:
        if feed is not None:
            check_feed_names(config, [feed])
        return None
    if feed is None:
        own = config.coordination.peer_name or socket.gethostname()
        feed = feed_of_instance(config, own)
        if feed is None:
            return None  # this instance watches no feed: the whole cluster, as ever
    check_feed_names(config, [feed])
    return feed_loss(config, [feed])


def feed_lines(loss: FeedLoss) -> list[str]:
    """Which nodes lose power, whether only they are stopped, and if not, why not."""
    feeds = ", ".join(loss.critical)
    lines = [
        f"feed {feeds} lost: nodes whose every feed is critical: {', '.join(loss.stop) or 'none'}"
        f"; keeping power: {', '.join(loss.keep) or 'none'}"
    ]
    if loss.scope == "partial":
        lines.append(f"partial shutdown: stops {', '.join(loss.stop)} only")
        lines += [f"  unsafe, done anyway (partial_policy always): {r}" for r in loss.refusals]
    elif loss.scope == "none":
        lines.append(f"nothing to shut down: {loss.why}")
    else:
        for reason in loss.refusals if loss.policy == "quorum_safe" else ():
            lines.append(f"refused partial shutdown ({loss.policy}): {reason}")
        lines.append(f"whole-cluster shutdown instead ({loss.why})")
    return lines


def feeds_status(config: ConfigLike, intent: Intent | None) -> dict[str, Any] | None:
    """`status --json`'s `feeds` (None without power.feeds): each feed's instance and nodes,
    and the nodes a partial shutdown stopped (from the intent; empty when none is)."""
    if not config.power.feeds:
        return None
    partial = (
        intent is not None and intent.nodes is not None and intent.state is not IntentState.NORMAL
    )
    down = list(intent.nodes or ()) if partial and intent is not None else []
    return {
        "partial_policy": config.power.partial_policy,
        "partial_shutdown": down,
        "feeds": [
            {
                "name": name,
                "instance": config.power.feeds[name].instance,
                "nodes": nodes,
                "down": [n for n in nodes if n in down],
            }
            for name, nodes in nodes_by_feed(config).items()
        ],
    }


def feeds_status_lines(feeds: dict[str, Any] | None) -> list[str]:
    if feeds is None:
        return []
    lines = [f"feeds:   partial_policy {feeds['partial_policy']}"]
    for feed in feeds["feeds"]:
        down = f" (down: {', '.join(feed['down'])})" if feed["down"] else ""
        nodes = ", ".join(feed["nodes"]) or "no node"
        lines.append(f"  {feed['name']:<12} via {feed['instance']}: {nodes}{down}")
    if feeds["partial_shutdown"]:
        lines.append(f"  partial shutdown: {', '.join(feeds['partial_shutdown'])} stopped")
    return lines
