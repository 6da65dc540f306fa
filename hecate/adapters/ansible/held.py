"""A run started ahead: the next stage's ``ansible-playbook`` launched while the current stage
runs, held at a gate until Python decides what it runs on.

Why: every ``ansible-playbook`` costs 0.7-1.0 s (and about 0.8 CPU-s) before its first task,
and a startup needs a decision from Python between its node stages (the clocks before k3s
starts, the API before the agents), so those stages cannot share one run. Started ahead, the
process has done its start-up by the time Python decides; what is left is the gate's latency
(20 ms polls, hecate's ``hecate_gate`` action plugin in playbooks/action_plugins/).

What stays true:

* Python still decides: the held run's stage plays have no hosts until the flow asks the port
  to run the same stages (same playbooks, extra vars and bounds; hosts within those held), and
  then exactly the hosts asked for are put in the stage groups. A request that does not match
  runs as a fresh run, as before; the held one is told "no" and ends without touching a node.
* The run is the batch the port would have run (hecate/adapters/ansible/batch.py): the same
  plays, stage groups, per-stage results and bounds; only a first play on the controller
  (``hecate_gate``, a host of its own, no connection) comes before them.
* A hold is bounded: unclaimed after ``hold_s`` the gate ends the run by itself, and a decision
  that comes just then is never taken for one that ran (the decision file is created by exactly
  one side, see the plugin). Closing the port says "no" to every run still held.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hecate.adapters.ansible.batch import (
    BatchCollector,
    BatchStage,
    batch_playbook,
    stage_group,
)
from hecate.adapters.ansible.events import EventCallback, TaskEvent, TaskTiming
from hecate.adapters.ansible.protocol import RunnerDone
from hecate.config.yaml_dump import safe_dump
from hecate.core.batch_planner import BatchStep, run_bound_s
from hecate.errors import AnsibleRunError

log = logging.getLogger("hecate.adapters.ansible.port")

GATE_HOST = "hecate-gate.invalid"  # .invalid: never a real name (RFC 2606)
GATE_GROUP = "hecate_gate"
DEFAULT_HOLD_S = 300.0
# a held run is not claimed this close to the end of its hold: the gate may be giving up
CLAIM_MARGIN_S = 5.0


def held_inventory(inventory: Mapping[str, Any], stages: Sequence[BatchStage]) -> dict[str, Any]:
    """`inventory` plus the gate's host and one empty group per stage (the gate fills them)."""
    data = {key: value for key, value in inventory.items() if key != "all"}
    top = dict(inventory.get("all") or {})
    children = dict(top.get("children") or {})
    taken = sorted(
        name for name in children if name == GATE_GROUP or name.startswith("hecate_stage_")
    )
    if taken:
        raise AnsibleRunError(f"the inventory already has groups Hecate's held runs use: {taken}")
    children[GATE_GROUP] = {"hosts": {GATE_HOST: {"ansible_connection": "local"}}}
    for stage in stages:
        children[stage_group(stage.index)] = {"hosts": {}}
    top["children"] = children
    data["all"] = top
    return data


def held_playbook(stages: Sequence[BatchStage], gate: Path, hold_s: float) -> list[dict[str, Any]]:
    """The gate play, then the batch's own plays (:func:`batch_playbook`)."""
    gate_play = {
        "name": "Held until Hecate decides which hosts each stage runs on",
        "hosts": GATE_GROUP,
        "gather_facts": False,
        "tasks": [
            {
                "name": "Wait for Hecate's decision",
                "hecate_gate": {"path": str(gate), "timeout_s": hold_s},
                "register": "hecate_gate_decision",
            },
            {
                "name": "Put each decided host in its stage's group",
                "ansible.builtin.add_host": {"name": "{{ item[1] }}", "groups": "{{ item[0] }}"},
                "loop": "{{ hecate_gate_decision.pairs }}",
            },
        ],
    }
    return [gate_play, *batch_playbook(stages)]


def decision(stages: Sequence[BatchStage]) -> dict[str, Any]:
    """What the gate is told: each stage group's hosts."""
    return {"go": True, "groups": {stage_group(s.index): list(s.hosts) for s in stages}}


def same_work(held: Sequence[BatchStage], asked: Sequence[BatchStage]) -> bool:
    """Whether `asked` is what `held` was started for: the same stages (by index), playbooks,
    extra vars and bounds, each on hosts among those held. A stage asked for none is left out."""
    by_index = {stage.index: stage for stage in held}
    if not asked:
        return False
    for stage in asked:
        mine = by_index.get(stage.index)
        if (
            mine is None
            or mine.path != stage.path
            or dict(mine.extravars) != dict(stage.extravars)
            or mine.timeout_s != stage.timeout_s
            or not set(stage.hosts) <= set(mine.hosts)
        ):
            return False
    return True


@dataclass
class ClaimTarget:
    """Where a claimed run's events go (set when Python decides)."""

    collected: BatchCollector
    on_event: EventCallback | None
    on_play: Callable[[dict[str, Any]], None]
    should_stop: Callable[[], bool]


class HeldRun:
    """One batch started ahead and held at its gate (see the module's docstring)."""

    def __init__(
        self,
        stages: Sequence[BatchStage],
        requests: int,
        gate_dir: Path,
        *,
        hold_s: float = DEFAULT_HOLD_S,
    ) -> None:
        if not stages:
            raise ValueError("a held run needs at least one stage")
        self.stages = list(stages)
        self.requests = requests  # how many requests the held batch was made of
        self.gate = gate_dir / f"gate-{uuid.uuid4().hex}"
        self.hold_s = hold_s
        self.started_at = time.monotonic()  # HeldRuns judges a hold's age on this clock
        self.label = "+".join(stage.playbook for stage in stages)
        self._target: ClaimTarget | None = None
        self._dropped = False
        self._done: RunnerDone | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        # the run's own end, as ansible counted it (its stats), before the process exits
        self._stats: dict[str, Any] | None = None
        self._stats_seen = threading.Event()
        self._run_dir: Path | None = None

    # ------------------------------------------------------------------ launching

    def start(self, launch: Callable[..., RunnerDone], inventory: Mapping[str, Any]) -> None:
        """Launch the run in a thread of its own; it waits at the gate."""
        steps = [BatchStep(s.index, s.hosts, s.timeout_s) for s in self.stages]
        hosts = sorted({host for stage in self.stages for host in stage.hosts})
        text = safe_dump(held_playbook(self.stages, self.gate, self.hold_s), sort_keys=False)
        kwargs = {
            "inventory": held_inventory(inventory, self.stages),
            "limit": (*hosts, GATE_HOST),
            # the hold, then the stages' own bounds (the watch applies those from the claim)
            "timeout_s": self.hold_s + run_bound_s(steps),
            "batch": text,
            "collect": self._collect,
            "on_event": self._on_event,
            "stop": self._should_stop,
            "on_play": self._on_play,
            "on_dir": self._set_run_dir,
        }

        def body() -> None:
            try:
                self._done = launch(**kwargs)
            except BaseException as exc:
                self._error = exc
            finally:
                log.debug("ansible: held %s ended", self.label)

        self._thread = threading.Thread(target=body, name=f"held {self.label}", daemon=True)
        self._thread.start()
        log.info("ansible: held %s ahead (hosts %s)", self.label, ",".join(hosts))

    # ------------------------------------------------------------------ relays

    def _collect(self, event: dict[str, Any], mapped: TaskEvent, timing: TaskTiming | None) -> None:
        target = self._target
        if target is not None and mapped.stage is not None:
            target.collected.add(mapped.stage, mapped, timing)

    def _on_event(self, event: TaskEvent) -> None:
        target = self._target
        if target is None or event.stage is None or target.on_event is None:
            return  # the gate's own tasks are no stage's
        target.on_event(event)

    def _on_play(self, event: dict[str, Any]) -> None:
        target = self._target
        if target is not None:
            target.on_play(event)
            if event.get("event") == "playbook_on_stats":
                data = event.get("event_data")
                self._stats = dict(data) if isinstance(data, Mapping) else None
                self._stats_seen.set()

    def _set_run_dir(self, path: Path) -> None:
        self._run_dir = path

    def _should_stop(self) -> bool:
        target = self._target
        return target.should_stop() if target is not None else False

    # ------------------------------------------------------------------ deciding

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._error is None

    def claimable(self, stages: Sequence[BatchStage], requests: int, now: float) -> bool:
        """Whether a batch of `requests` whose stages are `stages` can be this run."""
        return (
            not self._dropped
            and self._target is None
            and self.alive
            and requests == self.requests
            and now < self.started_at + self.hold_s - CLAIM_MARGIN_S
            and same_work(self.stages, stages)
        )

    def _decide(self, body: Mapping[str, Any]) -> bool:
        """Create the decision file; False when the gate gave up first (it made the file)."""
        tmp = self.gate.with_name(f"{self.gate.name}.{uuid.uuid4().hex[:8]}")
        tmp.write_text(json.dumps(body))
        try:
            os.link(tmp, self.gate)
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)
        return True

    def go(
        self,
        stages: Sequence[BatchStage],
        target: ClaimTarget,
        *,
        wait_s: float,
    ) -> RunnerDone | None:
        """Release the gate for `stages` and wait for the run's end. None: the run could not be
        used (its hold ran out, it failed to start): nothing of `stages` ran, run them anew."""
        with self._lock:
            if self._dropped or self._target is not None:
                return None
            self._target = target
        if not self._decide(decision(stages)):
            self._target = None
            return None
        early = self._wait_end(wait_s)
        if early is not None:
            return early
        if self._error is not None:
            raise AnsibleRunError(f"{self.label}: the run held ahead failed: {self._error}")
        if self._done is None:
            raise AnsibleRunError(f"{self.label}: the run held ahead did not end")
        return self._done

    def _wait_end(self, wait_s: float) -> RunnerDone | None:
        """Wait for the run's end. A run whose every host came through (ansible's own stats,
        its last event: no failure, no unreachable host) is over: its result is returned then,
        while the process exits behind it (0.3-0.5 s that nothing waits for; the thread still
        reaps it). Anything else waits for the process and returns None (use ``_done``)."""
        deadline = time.monotonic() + wait_s
        thread = self._thread
        while thread is not None and thread.is_alive() and time.monotonic() < deadline:
            if self._stats_seen.wait(0.05):
                stats = self._stats or {}
                clean = not stats.get("failures") and not stats.get("dark")
                if clean and self._run_dir is not None:
                    artifacts = self._run_dir / "artifacts" / "run"
                    return RunnerDone("successful", 0, _runner_stats(stats), artifacts)
                thread.join(max(0.0, deadline - time.monotonic()))
                break
        return None

    def join(self, wait_s: float) -> None:
        """Wait that long, at most, for the run's process to be gone."""
        if wait_s > 0 and self._thread is not None:
            self._thread.join(wait_s)

    def drop(self, wait_s: float = 0.0) -> None:
        """Tell the gate "no" (once): the run ends without touching a node. `wait_s`: wait
        that long for its process to end."""
        with self._lock:
            claimed = self._target is not None
            first = not self._dropped and not claimed
            self._dropped = self._dropped or not claimed
        if first:
            with contextlib.suppress(OSError):
                self._decide({"go": False})
        if wait_s > 0 and not claimed and self._thread is not None:
            self._thread.join(wait_s)


def _runner_stats(data: Mapping[str, Any]) -> dict[str, Any]:
    """ansible-runner's ``runner.stats``, from the stats event it is made of."""
    keys = ("skipped", "ok", "dark", "failures", "ignored", "rescued", "processed", "changed")
    return {key: data.get(key, {}) for key in keys}
