"""Power feeds (issue 28): which UPS feed powers which node, which Hecate instance watches each
feed's UPS, when a partial shutdown is allowed, and what may be shed on battery.

Without `power.feeds` nothing here changes what Hecate does. The checks that need the node
lists (`nodes.servers`/`agents`) are in :func:`feed_problems`, called by the top-level model.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from hecate.config.strict import Node
from hecate.config.strict import StrictModel as _Strict

_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?")
# A Kubernetes equality-based selector term: key=value, key==value, key!=value, key, !key.
_LABEL_KEY = r"([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
_LABEL_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_SELECTOR_TERM = re.compile(rf"!?{_LABEL_KEY}|{_LABEL_KEY}\s*(=|==|!=)\s*{_LABEL_VALUE}")

PartialPolicy = Literal["never", "quorum_safe", "always"]


def parse_feed_name(text: str) -> str:
    """A feed's name: letters, digits, '.', '_' and '-' (up to 63), as it appears in metrics."""
    if not _NAME.fullmatch(text):
        raise ValueError(f"{text!r}: a feed name is letters, digits, '.', '_' and '-' (<= 63)")
    return text


def parse_instance_name(text: str) -> str:
    """An instance's name: its coordination.peer_name (or host name), as peers send it."""
    value = text.strip()
    if len(value) > 253 or not re.fullmatch(r"[A-Za-z0-9._-]+", value):
        raise ValueError(f"{text!r}: an instance name is letters, digits, '.', '_' and '-'")
    return value


def parse_label_selector(text: str) -> str:
    """An equality-based label selector (`hecate.dev/shed=true`, `tier!=core,shed`)."""
    terms = [term.strip() for term in text.split(",")]
    bad = [term for term in terms if not _SELECTOR_TERM.fullmatch(term)]
    if bad:
        raise ValueError(f"{bad[0]!r} is not a label selector term (key=value, key!=value, key)")
    return ",".join(terms)


FeedName = Annotated[str, AfterValidator(parse_feed_name)]
InstanceName = Annotated[str, AfterValidator(parse_instance_name)]
LabelSelector = Annotated[str, AfterValidator(parse_label_selector)]


class Feed(_Strict):
    """One UPS feed and the Hecate instance that watches its UPS."""

    instance: InstanceName = Field(
        description="The instance watching this feed's UPS: its coordination.peer_name (the "
        "coordinator's own name for itself, or its host name when peer_name is null). A "
        "trigger from that instance is this feed's."
    )


class ShedConfig(_Strict):
    """Load shedding on battery: what is scaled down or powered off to buy runtime, once per
    outage, and restored exactly once mains is stable (docs: Power feeds, "Load shedding")."""

    after_seconds: float | None = Field(
        None, gt=0, description="Shed after this long on battery (null: not by time)."
    )
    below_runtime_seconds: float | None = Field(
        None,
        gt=0,
        description="Shed when the UPS runtime falls below this (null: not by runtime).",
    )
    label_selector: LabelSelector | None = Field(
        None,
        description="Workloads (Deployments, StatefulSets) with these labels are scaled to zero "
        "(such as hecate.dev/shed=true; null: none).",
    )
    priority_below: int | None = Field(
        None,
        description="Only workloads whose pods' priority (their PriorityClass's value) is below "
        "this are shed (null: any priority).",
    )
    agents: list[Node] = Field(
        default_factory=list,
        description="Low-priority agents drained and powered off when shedding (powered on "
        "again as the startup's power_on stage does, then started and uncordoned).",
    )


def twice(names: Sequence[str]) -> list[str]:
    return sorted({name for name in names if list(names).count(name) > 1})


def own_problems(
    feeds: Mapping[str, Feed], node_feeds: Mapping[str, Sequence[str]]
) -> list[tuple[str, str]]:
    """(message, key path relative to `power`) for what `power` alone shows wrong: a node's
    unknown or repeated feed, two feeds watched by one instance (a trigger's feed would be
    ambiguous), node_feeds without feeds. Pure."""
    problems: list[tuple[str, str]] = []
    for node, names in node_feeds.items():
        if not names:
            problems.append((f"node {node!r} names no feed", f"node_feeds.{node}"))
        for name in twice(names):
            problems.append((f"feed {name!r} is named twice", f"node_feeds.{node}"))
        unknown = sorted(set(names) - set(feeds))
        if unknown:
            problems.append((f"feeds not in power.feeds: {unknown}", f"node_feeds.{node}"))
    by_instance: dict[str, list[str]] = {}
    for name, feed in feeds.items():
        by_instance.setdefault(feed.instance, []).append(name)
    for instance, names in sorted(by_instance.items()):
        if len(names) > 1:
            problems.append(
                (
                    f"instance {instance!r} watches feeds {sorted(names)}: one instance watches "
                    "one UPS, so a trigger's feed would be ambiguous",
                    f"feeds.{sorted(names)[1]}.instance",
                )
            )
    return problems


def feed_problems(
    feeds: Mapping[str, Feed],
    node_feeds: Mapping[str, Sequence[str]],
    shed_agents: Sequence[str],
    servers: Sequence[str],
    agents: Sequence[str],
) -> list[tuple[str, str]]:
    """(message, key path relative to `power`) for what needs the node lists: a node in
    node_feeds that is no node, a node without a feed while feeds are set, a shed agent that
    is no agent. Pure."""
    problems: list[tuple[str, str]] = []
    every = [*servers, *agents]
    unknown = sorted(set(node_feeds) - set(every))
    if unknown:
        problems.append((f"names nodes not in nodes.servers/agents: {unknown}", "node_feeds"))
    missing = [node for node in every if node not in node_feeds]
    if feeds and missing:
        problems.append((f"nodes without a feed (each node needs one): {missing}", "node_feeds"))
    not_agents = sorted(set(shed_agents) - set(agents))
    if not_agents:
        problems.append((f"names nodes not in nodes.agents: {not_agents}", "shed.agents"))
    for name in twice(shed_agents):
        problems.append((f"node {name!r} is listed twice", "shed.agents"))
    return problems
