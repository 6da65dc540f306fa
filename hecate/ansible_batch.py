"""Several stages in one ``ansible-playbook`` run, and each stage's result taken back out of it.

Pure (no I/O, no ``ansible_runner``): the port (hecate/ansible_port.py) writes what these
functions return and runs it. Why: every ``ansible-playbook`` process costs 0.6-1.0 s and about
0.8 CPU-s before its first task, so stages that need no decision from Python between them (stop
the agents, stop the servers, power them off) run as the plays of one playbook.

How a stage stays a stage:

* the combined playbook imports each stage's own playbook file with the stage's extra vars as
  the import's vars, plus ``hecate_stage_group: hecate_stage_<i>``;
* the inventory gains one group per stage holding exactly that stage's hosts, and every playbook
  that may be batched intersects its hosts pattern with it
  (``hosts: "agent:&{{ hecate_stage_group | default('all') }}"``), so each play runs on its
  own stage's hosts, never on another's;
* every event names its play's (templated) hosts pattern, so :func:`stage_of` tells which stage
  an event belongs to; per-stage host stats and timings are counted from those events (the run's
  own stats are for the whole run).

Ansible drops a host that failed in one play from every later play of the same run, and stops the
run when every host of a play failed. A separate run per stage would still have reached those
hosts (power off an agent whose k3s-agent would not stop), so :func:`pending_hosts` names the
hosts a stage never ran on and the port runs the remaining stages again for just those: the
failure path costs one more process, the common path none.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hecate.ansible_events import HostStats, RunStatus, TaskEvent, TaskTiming

STAGE_GROUP_VAR = "hecate_stage_group"
STAGE_GROUP_PREFIX = "hecate_stage_"
_STAGE_IN_PATTERN = re.compile(rf"(?:^|[:&!,\s]){STAGE_GROUP_PREFIX}(\d+)(?=$|[:&!,\s])")
# ansible-playbook's exit codes for "a host failed" and "a host was unreachable"
RC_FAILED_HOSTS = 2
RC_UNREACHABLE = 4


def stage_group(index: int) -> str:
    """The inventory group that holds stage `index`'s hosts in a batch."""
    return f"{STAGE_GROUP_PREFIX}{index}"


def stage_of(play_pattern: object) -> int | None:
    """The stage a play belongs to, from its templated hosts pattern (None: not a batch play)."""
    if not isinstance(play_pattern, str):
        return None
    found = _STAGE_IN_PATTERN.search(play_pattern)
    return int(found.group(1)) if found else None


def play_start_stage(event: Mapping[str, Any]) -> int | None:
    """The stage whose play an ansible-runner ``playbook_on_play_start`` event starts."""
    if event.get("event") != "playbook_on_play_start":
        return None
    data = event.get("event_data")
    return stage_of(data.get("play_pattern")) if isinstance(data, Mapping) else None


def event_stage(event: Mapping[str, Any]) -> int | None:
    """The stage of any ansible-runner event that carries its play's pattern."""
    data = event.get("event_data")
    return stage_of(data.get("play_pattern")) if isinstance(data, Mapping) else None


@dataclass(frozen=True)
class BatchStage:
    """One stage of a batch: its index (stable across re-runs), the playbook name it was asked
    as, the file that runs, the vars it runs with, its hosts and its time bound."""

    index: int
    playbook: str
    path: Path
    extravars: Mapping[str, Any]
    hosts: tuple[str, ...]
    timeout_s: float

    def __post_init__(self) -> None:
        if not self.hosts:
            raise ValueError(f"batch stage {self.index} ({self.playbook}) has no hosts")


def batch_playbook(stages: Sequence[BatchStage]) -> list[dict[str, Any]]:
    """The combined playbook (YAML-able): one import per stage, in order."""
    return [
        {
            "name": f"Stage {stage.index}: {stage.playbook}",
            "ansible.builtin.import_playbook": str(stage.path),
            "vars": {**stage.extravars, STAGE_GROUP_VAR: stage_group(stage.index)},
        }
        for stage in stages
    ]


def batch_playbook_text(stages: Sequence[BatchStage]) -> str:
    """:func:`batch_playbook` as the YAML file the run is given."""
    return yaml.safe_dump(batch_playbook(stages), sort_keys=False, width=4096)


def batch_inventory(inventory: Mapping[str, Any], stages: Sequence[BatchStage]) -> dict[str, Any]:
    """`inventory` plus one group per stage (the inventory itself is not changed)."""
    data = {key: value for key, value in inventory.items() if key != "all"}
    top = dict(inventory.get("all") or {})
    children = dict(top.get("children") or {})
    for stage in stages:
        children[stage_group(stage.index)] = {"hosts": {host: {} for host in stage.hosts}}
    top["children"] = children
    data["all"] = top
    return data


def batch_limit(stages: Sequence[BatchStage]) -> tuple[str, ...]:
    """The run's --limit: every host of every stage (each play narrows it to its own stage)."""
    return tuple(sorted({host for stage in stages for host in stage.hosts}))


@dataclass
class _Counts:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    ignored: int = 0

    def stats(self) -> HostStats:
        return HostStats(
            ok=self.ok + self.changed,  # as ansible counts: a changed task is also ok
            changed=self.changed,
            failed=self.failed,
            unreachable=self.unreachable,
            skipped=self.skipped,
            ignored=self.ignored,
        )


@dataclass
class BatchCollector:
    """What one batch run reported, per stage: fed the run's events in order (the port's event
    handler), read once the run is over. Events of no stage are ignored."""

    started: set[int] = field(default_factory=set)
    counts: dict[int, dict[str, _Counts]] = field(default_factory=dict)
    timings: dict[int, list[TaskTiming]] = field(default_factory=dict)

    def play_started(self, stage: int) -> None:
        self.started.add(stage)

    def add(self, stage: int, event: TaskEvent, timing: TaskTiming | None) -> None:
        self.started.add(stage)
        if event.status == "started":
            return
        per_host = self.counts.setdefault(stage, {}).setdefault(event.host, _Counts())
        if event.status == "ok":
            per_host.ok += 1
        elif event.status == "changed":
            per_host.changed += 1
        elif event.status == "failed":
            per_host.failed += 1
        elif event.status == "unreachable":
            per_host.unreachable += 1
        elif event.status == "skipped":
            per_host.skipped += 1
        elif event.status == "ignored":
            per_host.ignored += 1
        if timing is not None:
            self.timings.setdefault(stage, []).append(timing)

    @property
    def saw_anything(self) -> bool:
        return bool(self.counts)

    def hosts(self, stage: int) -> dict[str, HostStats]:
        return {host: c.stats() for host, c in sorted(self.counts.get(stage, {}).items())}

    def finished(self, stage: int) -> bool:
        """A later stage's play started, so this one's play is over."""
        return any(other > stage for other in self.started)


@dataclass(frozen=True)
class StageOutcome:
    """One stage's share of one or more batch runs (the port makes its PlaybookResult)."""

    index: int
    status: RunStatus
    rc: int
    hosts: dict[str, HostStats]
    tasks: list[TaskTiming]
    duration_s: float
    detail: str = ""


def _span_s(tasks: Iterable[TaskTiming]) -> float:
    """From the stage's first task start to its last task end, from the events' own stamps."""
    starts = [t.start for t in tasks if t.start is not None]
    ends = [t.end for t in tasks if t.end is not None]
    if not starts or not ends:
        return 0.0
    return max(0.0, (max(ends) - min(starts)).total_seconds())


def _judged(hosts: Mapping[str, HostStats]) -> tuple[RunStatus, int]:
    if any(s.unreachable for s in hosts.values()):
        return "failed", RC_UNREACHABLE
    if any(s.failed for s in hosts.values()):
        return "failed", RC_FAILED_HOSTS
    return "successful", 0


def stage_outcomes(
    stages: Sequence[BatchStage],
    collected: BatchCollector,
    run: RunStatus,
    rc: int,
    *,
    timeout_s: float,
) -> list[StageOutcome]:
    """Each stage's outcome of one run. A run that timed out or was cancelled leaves the stage it
    was in, and those after it, with the run's status; the stages before it stand as reported."""
    out: list[StageOutcome] = []
    for stage in stages:
        hosts = collected.hosts(stage.index)
        tasks = collected.timings.get(stage.index, [])
        if run in ("timeout", "canceled") and not collected.finished(stage.index):
            detail = f"timed out after {timeout_s:g}s" if run == "timeout" else "canceled"
            out.append(StageOutcome(stage.index, run, rc, hosts, tasks, _span_s(tasks), detail))
            continue
        status, code = _judged(hosts)
        out.append(StageOutcome(stage.index, status, code, hosts, tasks, _span_s(tasks)))
    return out


def pending_hosts(stages: Sequence[BatchStage], collected: BatchCollector) -> list[BatchStage]:
    """The stages again, each with only the hosts it never ran on (stages with none left out):
    what the port runs again after a run in which ansible dropped failed hosts."""
    again: list[BatchStage] = []
    for stage in stages:
        seen = collected.counts.get(stage.index, {})
        missing = tuple(host for host in stage.hosts if host not in seen)
        if missing:
            again.append(
                BatchStage(
                    stage.index,
                    stage.playbook,
                    stage.path,
                    stage.extravars,
                    missing,
                    stage.timeout_s,
                )
            )
    return again


def merge_outcomes(first: StageOutcome, later: StageOutcome) -> StageOutcome:
    """A stage run in two goes (the second for hosts the first never reached): the hosts of
    both, the worse status, both durations."""
    hosts = {**first.hosts, **later.hosts}
    status: RunStatus
    if later.status in ("timeout", "canceled"):
        status, rc, detail = later.status, later.rc, later.detail
    else:
        status, rc = _judged(hosts)
        detail = first.detail
    return StageOutcome(
        first.index,
        status,
        rc,
        dict(sorted(hosts.items())),
        first.tasks + later.tasks,
        first.duration_s + later.duration_s,
        detail,
    )


def not_reached(stage: BatchStage, outcome: StageOutcome) -> StageOutcome:
    """A stage with hosts that no run reached (every re-run stopped short): failed, naming them."""
    missing = [host for host in stage.hosts if host not in outcome.hosts]
    if not missing or outcome.status in ("timeout", "canceled"):
        return outcome
    note = f"not run on {', '.join(missing)}"
    detail = f"{outcome.detail}; {note}" if outcome.detail else note
    return StageOutcome(
        outcome.index,
        "failed",
        outcome.rc or RC_FAILED_HOSTS,
        outcome.hosts,
        outcome.tasks,
        outcome.duration_s,
        detail,
    )


__all__ = [
    "RC_FAILED_HOSTS",
    "RC_UNREACHABLE",
    "STAGE_GROUP_PREFIX",
    "STAGE_GROUP_VAR",
    "BatchCollector",
    "BatchStage",
    "StageOutcome",
    "batch_inventory",
    "batch_limit",
    "batch_playbook",
    "batch_playbook_text",
    "event_stage",
    "merge_outcomes",
    "not_reached",
    "pending_hosts",
    "play_start_stage",
    "stage_group",
    "stage_of",
    "stage_outcomes",
]
