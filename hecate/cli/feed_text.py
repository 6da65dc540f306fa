"""`hecate shutdown --feed NAME`: what losing those feeds means (hecate/core/feeds.py), as text
lines printed above the plan. Pure."""

from __future__ import annotations

from collections.abc import Sequence

from hecate.config.model import HecateConfig
from hecate.core.feeds import FeedLoss
from hecate.errors import ConfigError


def check_feed_names(config: HecateConfig, names: Sequence[str]) -> None:
    """ConfigError (exit 2) for a name not in power.feeds, or no power.feeds at all."""
    known = list(config.power.feeds)
    if not known:
        raise ConfigError("--feed needs power.feeds in the config (none is set)")
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ConfigError(f"--feed: {', '.join(unknown)} not in power.feeds ({', '.join(known)})")


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
