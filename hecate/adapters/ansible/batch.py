"""Several stages in one ``ansible-playbook`` run, and each stage's result taken back out of it.

Pure (no I/O, no ``ansible_runner``): the port (hecate/adapters/ansible/port.py) writes what these
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
run when every host of a play failed; a separate run per stage would still have reached those
hosts (power off an agent whose k3s-agent would not stop). So:

* after each stage a play on that stage's group clears its host errors (``meta:
  clear_host_errors``): a host that failed a stage goes on to the later ones in the same run, in
  the plan's order;
* what that cannot bring back (an unreachable host, a run that ended early), and each stage's
  own time bound, the pure planner decides (hecate/core/batch_planner.py): the port runs the
  remaining stages again for just those hosts, and stops a run whose current stage is over its
  bound (that stage is ``timeout``).

A stage's hosts are those its plays run on, known to Python before the run (the request's limit
within the group its playbook targets, from the inventory Python generated): which hosts a play
selected is never read back out of an Ansible host pattern.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hecate.adapters.ansible.events import HostStats, RunStatus, TaskEvent, TaskTiming
from hecate.config.yaml_dump import safe_dump
from hecate.core.batch_planner import BatchStep, pending_steps

STAGE_GROUP_VAR = "hecate_stage_group"
STAGE_GROUP_PREFIX = "hecate_stage_"
# ansible-playbook's exit codes for "a host failed" and "a host was unreachable"
RC_FAILED_HOSTS = 2
RC_UNREACHABLE = 4


def stage_group(index: int) -> str:
    """The inventory group that holds stage `index`'s hosts in a batch."""
    return f"{STAGE_GROUP_PREFIX}{index}"


def _stage_index(group: str) -> int | None:
    """The index of a stage group's name (``hecate_stage_3`` -> 3), None for any other name."""
    digits = group.removeprefix(STAGE_GROUP_PREFIX)
    if digits == group or not digits.isascii() or not digits.isdigit():
        return None
    return int(digits)


def stage_of(play_pattern: object) -> int | None:
    """The stage a play belongs to: the stage group Hecate put in its templated hosts pattern
    (``...:&hecate_stage_3``); None: not a batch play."""
    if not isinstance(play_pattern, str):
        return None
    for part in play_pattern.split(":&")[1:]:
        end = next((i for i, c in enumerate(part) if c in ":&!, \t\n"), len(part))
        index = _stage_index(part[:end])
        if index is not None:
            return index
    return None


def clear_play_stage(event: Mapping[str, Any]) -> int | None:
    """The stage whose clearing play (the play right after it, on its group alone) an
    ansible-runner ``playbook_on_play_start`` event starts: that stage's own plays are over."""
    if event.get("event") != "playbook_on_play_start":
        return None
    data = event.get("event_data")
    pattern = data.get("play_pattern") if isinstance(data, Mapping) else None
    return _stage_index(pattern) if isinstance(pattern, str) else None


def play_start_stage(event: Mapping[str, Any]) -> tuple[int, str] | None:
    """The stage whose play an ansible-runner ``playbook_on_play_start`` event starts, and the
    play's (templated) hosts pattern."""
    if event.get("event") != "playbook_on_play_start":
        return None
    data = event.get("event_data")
    if not isinstance(data, Mapping):
        return None
    pattern = data.get("play_pattern")
    stage = stage_of(pattern)
    return None if stage is None or not isinstance(pattern, str) else (stage, pattern)


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
    # the hosts its plays run on (its limit within its playbook's group); None: all of `hosts`
    targets: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not self.hosts:
            raise ValueError(f"batch stage {self.index} ({self.playbook}) has no hosts")

    @property
    def step(self) -> BatchStep:
        """The stage as the planner sees it."""
        targets = self.hosts if self.targets is None else self.targets
        return BatchStep(self.index, targets, self.timeout_s)


def batch_playbook(stages: Sequence[BatchStage]) -> list[dict[str, Any]]:
    """The combined playbook (YAML-able): one import per stage, in order, and after each stage
    but the last a play that lets its failed hosts go on to the next stages."""
    plays: list[dict[str, Any]] = []
    for position, stage in enumerate(stages):
        plays.append(
            {
                "name": f"Stage {stage.index}: {stage.playbook}",
                "ansible.builtin.import_playbook": str(stage.path),
                "vars": {**stage.extravars, STAGE_GROUP_VAR: stage_group(stage.index)},
            }
        )
        if position < len(stages) - 1:
            plays.append(
                {
                    "name": f"After stage {stage.index}: its failed hosts go on to the next",
                    "hosts": stage_group(stage.index),
                    "gather_facts": False,
                    "tasks": [
                        {
                            "name": "A separate run per stage would reach them: so does this",
                            "ansible.builtin.meta": "clear_host_errors",
                        }
                    ],
                }
            )
    return plays


def batch_playbook_text(stages: Sequence[BatchStage]) -> str:
    """:func:`batch_playbook` as the YAML file the run is given."""
    return safe_dump(batch_playbook(stages), sort_keys=False, width=4096)


def batch_inventory(inventory: Mapping[str, Any], stages: Sequence[BatchStage]) -> dict[str, Any]:
    """`inventory` plus one group per stage (the inventory itself is not changed)."""
    data = {key: value for key, value in inventory.items() if key != "all"}
    top = dict(inventory.get("all") or {})
    children = dict(top.get("children") or {})
    clash = sorted(name for name in children if name.startswith(STAGE_GROUP_PREFIX))
    if clash:
        raise ValueError(f"the inventory already has groups named like a batch's: {clash}")
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
            # as ansible counts: a changed task, and an ignored failure, are also ok
            ok=self.ok + self.changed + self.ignored,
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
    started_at: dict[int, float] = field(default_factory=dict)  # monotonic, the port's clock
    ended_at: dict[int, float] = field(default_factory=dict)  # its clearing play began

    def stage_ended(self, stage: int, at: float) -> None:
        self.ended_at.setdefault(stage, at)

    def clock_s(self, stage: int, run_end: float) -> float | None:
        """How long the stage's plays ran, on the port's clock: from its play's start to its
        clearing play, the next stage's start, or the end of the run (None: never started)."""
        start = self.started_at.get(stage)
        if start is None:
            return None
        later = [at for other, at in self.started_at.items() if other > stage]
        end = self.ended_at.get(stage, min(later, default=run_end))
        return max(0.0, end - start)

    def play_started(self, stage: int, at: float | None = None) -> None:
        self.started.add(stage)
        if at is not None:
            self.started_at.setdefault(stage, at)

    @property
    def current(self) -> int | None:
        """The stage whose play runs now (plays run in order), None before the first."""
        return max(self.started, default=None)

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
    budget_hit: int | None = None,
    run_end: float | None = None,
) -> list[StageOutcome]:
    """Each stage's outcome of one run. `budget_hit`: the stage the port stopped the run in
    because it was over its own time bound (that stage is `timeout`; the ones after it did not
    run and are pending). Otherwise a run that timed out or was cancelled leaves the stage it was
    in, and those after it, with the run's status; the stages before it stand as reported.
    A stage cut short keeps no host counts, as a run of its own killed before its stats would
    (its nodes are then `unknown`, never `ok` from a task that ran once for the play). With
    `run_end` (the port's clock) a stage's duration is its plays' time on that clock, a hung
    task included; without, the span of its finished tasks."""
    out: list[StageOutcome] = []
    for stage in stages:
        hosts = collected.hosts(stage.index)
        tasks = collected.timings.get(stage.index, [])
        clock = collected.clock_s(stage.index, run_end) if run_end is not None else None
        span = _span_s(tasks) if clock is None else clock
        if budget_hit is not None and stage.index == budget_hit:
            detail = f"timed out after {stage.timeout_s:g}s"
            out.append(StageOutcome(stage.index, "timeout", rc, {}, tasks, span, detail))
            continue
        cut_short = run in ("timeout", "canceled") and budget_hit is None
        if cut_short and not collected.finished(stage.index):
            detail = f"timed out after {timeout_s:g}s" if run == "timeout" else "canceled"
            out.append(StageOutcome(stage.index, run, rc, {}, tasks, span, detail))
            continue
        status, code = _judged(hosts)
        out.append(StageOutcome(stage.index, status, code, hosts, tasks, span))
    return out


def pending_hosts(
    stages: Sequence[BatchStage], collected: BatchCollector, *, budget_hit: int | None = None
) -> list[BatchStage]:
    """The stages again, each with only the hosts its plays run on that the run did not reach
    (the planner's :func:`~hecate.core.batch_planner.pending_steps` on what `collected` saw)."""
    by_index = {stage.index: stage for stage in stages}
    reached = {index: set(hosts) for index, hosts in collected.counts.items()}
    again = pending_steps([s.step for s in stages], reached, over_bound=budget_hit)
    return [
        dataclasses.replace(by_index[step.index], hosts=step.hosts, targets=None) for step in again
    ]


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


def not_reached(outcome: StageOutcome, hosts: Sequence[str], why: str) -> StageOutcome:
    """A stage some of whose hosts no attempt reached: failed, naming them and why."""
    if not hosts or outcome.status in ("timeout", "canceled"):
        return outcome
    note = f"not run on {', '.join(hosts)}" + (f": {why}" if why else "")
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
