"""The one port to Ansible: typed playbook requests in, typed results out, through ansible-runner.

This is the only module that imports ``ansible_runner``. Flows depend on the small
:class:`Ansible` protocol, so they can be unit-tested with a fake that records requests.
The other jobs live beside it (the names flows use are re-exported): :mod:`hecate.ansible_events`
(pure mapping of runner events and stats), :mod:`hecate.ansible_assets` (where playbooks and
roles are; which file and extra vars a playbook name runs), :mod:`hecate.ansible_rundir` (each
run's private data dir, kept for post-mortems, rotated) and :mod:`hecate.ssh_preflight` (the
jump-host check that picks the inventory). Playbooks run in place from the assets dir.

Results are judged from runner's status, rc and ``runner.stats`` (never from scraping stdout):
an unreachable host shows up in :attr:`PlaybookResult.unreachable_hosts` while the other hosts
are still handled.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from hecate.ansible_assets import (
    BATCHABLE_FILES,
    Playbook,
    PlaybookError,
    assets_dir,
    playbook_extravars,
    resolve_playbook,
)
from hecate.ansible_batch import (
    RC_FAILED_HOSTS,
    BatchCollector,
    BatchStage,
    StageOutcome,
    batch_inventory,
    batch_limit,
    batch_playbook_text,
    clear_play_stage,
    event_stage,
    group_members,
    matched_hosts,
    merge_outcomes,
    not_reached,
    pending_hosts,
    play_start_stage,
    stage_outcomes,
)
from hecate.ansible_events import (
    EventCallback,
    HostStats,
    RunStatus,
    TaskEvent,
    TaskTiming,
    parse_stats,
    run_status,
    task_event_from_runner,
    timing_from_runner,
)
from hecate.ansible_rundir import (
    ARTIFACTS_DIRNAME,
    CONTROL_PERSIST_S,
    DEFAULT_REMOTE_TMP,
    RunEnv,
    prepare_run_dir,
    rotate_run_dirs,
    runner_envvars,
    runner_settings,
    short_tmp_dir,
    stdout_tail,
)
from hecate.config import HecateConfig
from hecate.errors import AnsibleRunError
from hecate.inventory import dump_inventory, inventory_hosts
from hecate.ssh_preflight import JumpCheck, check_jump_host, prepare_inventory

log = logging.getLogger(__name__)

DEFAULT_KEEP_RUNS = 50
DEFAULT_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class PlaybookRequest:
    """One playbook run.

    ``limit=None`` targets every host the playbook's plays select; an empty limit runs nothing
    (status ``skipped``), so "stop these 0 agents" is a no-op, never "stop everything".
    """

    playbook: str
    limit: Sequence[str] | None = None
    extravars: Mapping[str, Any] = field(default_factory=dict)
    timeout_s: float | None = None
    check: bool = False
    tags: Sequence[str] = ()
    skip_tags: Sequence[str] = ()

    def __post_init__(self) -> None:
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        if isinstance(self.limit, str):
            raise TypeError("limit is a list of host names, not a string")


@dataclass(frozen=True)
class PlaybookResult:
    playbook: str
    status: RunStatus
    rc: int
    hosts: dict[str, HostStats]
    duration_s: float
    tasks: list[TaskTiming]
    artifacts_dir: Path | None
    limit: tuple[str, ...] | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("successful", "skipped")

    @property
    def timed_out(self) -> bool:
        return self.status == "timeout"

    @property
    def canceled(self) -> bool:
        return self.status == "canceled"

    @property
    def failed_hosts(self) -> list[str]:
        return sorted(h for h, s in self.hosts.items() if s.failed)

    @property
    def unreachable_hosts(self) -> list[str]:
        return sorted(h for h, s in self.hosts.items() if s.unreachable)

    @property
    def changed_hosts(self) -> list[str]:
        return sorted(h for h, s in self.hosts.items() if s.changed)

    @property
    def succeeded_hosts(self) -> list[str]:
        """Hosts that ran the play with no failure and no unreachability."""
        return sorted(h for h, s in self.hosts.items() if not s.failed and not s.unreachable)

    def summary(self) -> str:
        parts = [f"{self.playbook}: {self.status} (rc {self.rc}, {self.duration_s:.1f}s)"]
        if self.failed_hosts:
            parts.append(f"failed: {', '.join(self.failed_hosts)}")
        if self.unreachable_hosts:
            parts.append(f"unreachable: {', '.join(self.unreachable_hosts)}")
        return "; ".join(parts)


class Ansible(Protocol):
    """What flows need from Ansible (fakes in tests implement just this)."""

    def run(
        self,
        request: PlaybookRequest,
        *,
        on_event: EventCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> PlaybookResult: ...

    def run_batch(
        self,
        requests: Sequence[PlaybookRequest],
        *,
        on_event: EventCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> list[PlaybookResult]:
        """Several playbooks in order, one result each (AnsiblePort: one ansible-playbook)."""
        ...


def log_event(event: TaskEvent) -> None:
    """Structured logging of task events (logger ``hecate.ansible_port``)."""
    level = logging.WARNING if event.status in ("failed", "unreachable") else logging.DEBUG
    log.log(
        level,
        "%s %s %s %s",
        event.playbook,
        event.host,
        event.status,
        event.task,
        extra={
            "playbook": event.playbook,
            "host": event.host,
            "task": event.task,
            "status": event.status,
            "duration_s": event.duration_s,
        },
    )


# --------------------------------------------------------------------------- the port


class AnsiblePort:
    """Runs Hecate's playbooks through ansible-runner (implements :class:`Ansible`)."""

    def __init__(
        self,
        inventory: Mapping[str, Any],
        *,
        state_dir: Path,
        connect_timeout_s: int = 10,
        default_timeout_s: float = DEFAULT_TIMEOUT_S,
        forks: int | None = None,
        keep_runs: int = DEFAULT_KEEP_RUNS,
        assets: Path | None = None,
        remote_tmp: str = DEFAULT_REMOTE_TMP,
        extra_env: Mapping[str, str] | None = None,
        warnings: Sequence[str] = (),
    ) -> None:
        if keep_runs < 1:
            raise ValueError("keep_runs must be at least 1")
        self.inventory: dict[str, Any] = json.loads(json.dumps(inventory))
        self.hosts = inventory_hosts(self.inventory)
        self.state_dir = state_dir
        self.artifacts_root = state_dir / ARTIFACTS_DIRNAME
        self.connect_timeout_s = connect_timeout_s
        self.default_timeout_s = default_timeout_s
        self.forks = max(forks or 0, len(self.hosts), 1)
        self.keep_runs = keep_runs
        self._assets = assets
        self.remote_tmp = remote_tmp
        self.extra_env = dict(extra_env or {})
        self.warnings = list(warnings)
        self._control_dir: Path | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_config(
        cls,
        config: HecateConfig,
        *,
        preflight: bool = True,
        check: Callable[[HecateConfig], JumpCheck] = check_jump_host,
        **kwargs: Any,
    ) -> AnsiblePort:
        """A port for the configured cluster (jump-host preflight first, if one is set)."""
        plan = prepare_inventory(config, preflight=preflight, check=check)
        kwargs.setdefault("connect_timeout_s", config.ssh_connect_timeout_seconds)
        return cls(plan.data, state_dir=config.state_dir, warnings=plan.warnings, **kwargs)

    # ------------------------------------------------------------------ lifecycle

    @property
    def assets(self) -> Path:
        if self._assets is None:
            self._assets = assets_dir()
        return self._assets

    @property
    def control_path_dir(self) -> Path:
        """A short private dir for ssh ControlPersist sockets, shared by this port's runs."""
        with self._lock:
            if self._control_dir is None or not self._control_dir.is_dir():
                self._control_dir = short_tmp_dir("hecate-cp-")
            return self._control_dir

    def close(self) -> None:
        with self._lock:
            if self._control_dir is not None:
                shutil.rmtree(self._control_dir, ignore_errors=True)
                self._control_dir = None

    def __enter__(self) -> AnsiblePort:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ preparing a run

    def playbook_path(self, name: str) -> Path:
        """The file a playbook name runs (:func:`resolve_playbook`), or an absolute path."""
        candidate = Path(name)
        if candidate.is_absolute():
            path = candidate
        else:
            if "/" in name or name.startswith("."):
                raise PlaybookError(f"playbook {name!r}: give a bare name or an absolute path")
            path = self.assets / "playbooks" / resolve_playbook(name).file
        if not path.is_file():
            raise PlaybookError(f"playbook {name!r} not found at {path}")
        return path

    @staticmethod
    def extravars(request: PlaybookRequest) -> dict[str, Any]:
        """The request's extra vars plus those its playbook name implies (which must agree)."""
        return playbook_extravars(request.playbook, request.extravars)

    def envvars(self, run_dir: Path, state_dir: Path | None = None) -> dict[str, str]:
        env = RunEnv(
            state_dir=state_dir or self.state_dir,
            control_dir=self.control_path_dir,
            roles_dir=self.assets / "roles",
            remote_tmp=self.remote_tmp,
            connect_timeout_s=self.connect_timeout_s,
            forks=self.forks,
            extra_env=self.extra_env,
        )
        return runner_envvars(env, run_dir)

    def rotate(self) -> list[Path]:
        """Delete all but the newest ``keep_runs`` run dirs; returns the deleted ones."""
        return rotate_run_dirs(self.artifacts_root, self.keep_runs)

    # ------------------------------------------------------------------ running

    def _checked_limit(self, name: str, request: PlaybookRequest) -> tuple[str, ...] | None:
        limit = tuple(request.limit) if request.limit is not None else None
        if limit is not None:
            unknown = sorted(set(limit) - self.hosts)
            if unknown:
                raise PlaybookError(f"{name}: hosts not in the inventory: {unknown}")
        return limit

    def run(
        self,
        request: PlaybookRequest,
        *,
        on_event: EventCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> PlaybookResult:
        """Run one playbook; returns its result, raises AnsibleRunError if it cannot run."""
        started = time.monotonic()
        name = Path(request.playbook).stem
        path = self.playbook_path(request.playbook)
        extravars = self.extravars(request)  # a contradiction is refused before anything runs
        limit = self._checked_limit(name, request)
        if limit is not None and not limit:
            return PlaybookResult(name, "skipped", 0, {}, 0.0, [], None, limit, "empty limit")
        if cancel is not None and cancel.is_set():
            return PlaybookResult(name, "canceled", 254, {}, 0.0, [], None, limit, "canceled")

        timeout_s = request.timeout_s or self.default_timeout_s
        timings: list[TaskTiming] = []

        def collect(_event: dict[str, Any], mapped: TaskEvent, timing: TaskTiming | None) -> None:
            if timing is not None:
                timings.append(timing)

        log.info("ansible: %s limit=%s timeout=%ss", name, ",".join(limit or ["all"]), timeout_s)
        done = self._run_runner(
            name,
            path,
            inventory=self.inventory,
            extravars=extravars,
            limit=limit,
            timeout_s=timeout_s,
            request=request,
            collect=collect,
            on_event=on_event,
            stop=cancel.is_set if cancel is not None else None,
        )
        hosts = parse_stats(done.stats)
        detail = ""
        if done.status == "timeout":
            detail = f"timed out after {timeout_s:g}s"
        elif done.status == "failed" and not hosts:
            detail = stdout_tail(done.artifacts / "stdout")
        result = PlaybookResult(
            playbook=name,
            status=done.status,
            rc=done.rc,
            hosts=hosts,
            duration_s=time.monotonic() - started,
            tasks=timings,
            artifacts_dir=done.artifacts,
            limit=limit,
            detail=detail,
        )
        log.info("ansible: %s", result.summary())
        return result

    def run_batch(
        self,
        requests: Sequence[PlaybookRequest],
        *,
        on_event: EventCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> list[PlaybookResult]:
        """Run several playbooks, in order, as the plays of one ``ansible-playbook`` (see
        :mod:`hecate.ansible_batch`); one result per request, as :meth:`run` would return it.
        Hosts that ansible dropped after a failure in an earlier play get the later stages in
        one more run, so a node's failure never keeps it (or the others) from a later stage.
        Every request is checked before anything runs; ``check``, ``tags`` and ``skip_tags``
        are not batched (those requests are refused: run them alone)."""
        names = [Path(r.playbook).stem for r in requests]
        stages: list[BatchStage] = []
        results: dict[int, PlaybookResult] = {}
        for index, (name, request) in enumerate(zip(names, requests, strict=True)):
            if request.check or request.tags or request.skip_tags:
                raise PlaybookError(f"{name}: check mode and tags are not batched; run it alone")
            # Only the shipped playbooks that intersect their hosts with their stage's group: a
            # playbook by path could run its plays on the other stages' hosts.
            batchable = resolve_playbook(request.playbook).file in BATCHABLE_FILES
            if Path(request.playbook).is_absolute() or not batchable:
                raise PlaybookError(f"{name}: its playbook does not take a stage group")
            path = self.playbook_path(request.playbook)
            extravars = self.extravars(request)
            limit = self._checked_limit(name, request)
            if limit is None:
                raise PlaybookError(f"{name}: a batched stage needs its hosts (a limit)")
            if not limit:
                results[index] = PlaybookResult(
                    name, "skipped", 0, {}, 0.0, [], None, limit, "empty limit"
                )
                continue
            timeout_s = request.timeout_s or self.default_timeout_s
            stages.append(BatchStage(index, name, path, extravars, limit, timeout_s))
        if cancel is not None and cancel.is_set():
            stages, canceled = [], stages
            for stage in canceled:
                results[stage.index] = PlaybookResult(
                    stage.playbook, "canceled", 254, {}, 0.0, [], None, stage.hosts, "canceled"
                )
        if len(stages) == 1:  # nothing to share: the plain run, its events still tagged
            only = stages[0]

            def tagged(event: TaskEvent) -> None:
                if on_event is not None:
                    on_event(dataclasses.replace(event, stage=only.index))

            results[only.index] = self.run(requests[only.index], on_event=tagged, cancel=cancel)
            stages = []
        outcomes, artifacts = self._run_stages(stages, on_event=on_event, cancel=cancel)
        for stage in stages:
            outcome = outcomes[stage.index]
            results[stage.index] = PlaybookResult(
                playbook=stage.playbook,
                status=outcome.status,
                rc=outcome.rc,
                hosts=outcome.hosts,
                duration_s=outcome.duration_s,
                tasks=outcome.tasks,
                artifacts_dir=artifacts,
                limit=stage.hosts,
                detail=outcome.detail,
            )
            log.info("ansible: %s", results[stage.index].summary())
        return [results[index] for index in range(len(requests))]

    def _run_stages(
        self,
        stages: Sequence[BatchStage],
        *,
        on_event: EventCallback | None,
        cancel: threading.Event | None,
    ) -> tuple[dict[int, StageOutcome], Path | None]:
        """Run the batch, then again for the hosts a run left out (hecate/ansible_batch.py).
        Each attempt retires its first stage, so there are at most as many attempts as stages;
        a later attempt that cannot run fails what it would have run, and keeps what ran."""
        outcomes: dict[int, StageOutcome] = {}
        unreached: dict[int, tuple[tuple[str, ...], str]] = {}
        artifacts: Path | None = None
        todo = list(stages)
        for attempt in range(len(stages)):
            if not todo:
                break
            collected = BatchCollector()
            try:
                done, budget_hit, run_end = self._run_batch_once(todo, collected, on_event, cancel)
            except AnsibleRunError as exc:
                if attempt == 0:
                    raise
                for stage in todo:
                    unreached[stage.index] = (stage.hosts, str(exc))
                todo = []
                break
            artifacts = done.artifacts
            ran = stage_outcomes(
                todo,
                collected,
                done.status,
                done.rc,
                timeout_s=sum(s.timeout_s for s in todo),
                budget_hit=budget_hit,
                run_end=run_end,
            )
            for outcome in ran:
                earlier = outcomes.get(outcome.index)
                outcomes[outcome.index] = (
                    outcome if earlier is None else merge_outcomes(earlier, outcome)
                )
            if done.status in ("timeout", "canceled") and budget_hit is None:
                todo = []  # cancelled, or the whole run's bound: nothing more to run
                break
            pending = pending_hosts(todo, collected, budget_hit=budget_hit)
            why = stdout_tail(done.artifacts / "stdout") if done.status == "failed" else ""
            for stage in pending:
                if stage.index == todo[0].index:  # retired: no attempt runs it again
                    unreached[stage.index] = (stage.hosts, why)
            todo = [stage for stage in pending if stage.index != todo[0].index]
            if todo:
                log.info(
                    "ansible: batch again for hosts the run left out: %s",
                    "; ".join(f"{s.playbook} {','.join(s.hosts)}" for s in todo),
                )
        for stage in todo:  # only if the bound was reached
            unreached[stage.index] = (stage.hosts, "too many attempts")
        final: dict[int, StageOutcome] = {}
        for stage in stages:
            outcome = outcomes.get(stage.index) or StageOutcome(
                stage.index, "failed", RC_FAILED_HOSTS, {}, [], 0.0
            )
            hosts, why = unreached.get(stage.index, ((), ""))
            final[stage.index] = not_reached(outcome, hosts, why)
        return final, artifacts

    def _run_batch_once(
        self,
        stages: Sequence[BatchStage],
        collected: BatchCollector,
        on_event: EventCallback | None,
        cancel: threading.Event | None,
    ) -> tuple[_RunnerDone, int | None, float]:
        """One ansible-playbook for `stages`. Returns how it ended; when the port stopped it
        because its current stage was over that stage's own bound, which stage that was; and
        when it ended (monotonic)."""
        label = "+".join(stage.playbook for stage in stages)
        budgets = {stage.index: stage.timeout_s for stage in stages}
        launched = time.monotonic()
        hit: list[int] = []

        def collect(event: dict[str, Any], mapped: TaskEvent, timing: TaskTiming | None) -> None:
            if mapped.stage is not None:
                collected.add(mapped.stage, mapped, timing)

        inventory = batch_inventory(self.inventory, stages)
        members = group_members(inventory)

        order = [stage.index for stage in stages]

        def play_started(event: dict[str, Any]) -> None:
            started = play_start_stage(event)
            if started is not None:
                stage, pattern = started
                collected.play_started(stage, time.monotonic(), matched_hosts(pattern, members))
                return
            ended = clear_play_stage(event)
            if ended is not None:
                collected.stage_ended(ended, time.monotonic())

        def stop() -> bool:
            if cancel is not None and cancel.is_set():
                return True
            now = time.monotonic()
            current = collected.current
            if current is None:  # the first stage's bound covers the process start-up
                index, since = order[0], launched
            elif current in collected.ended_at:  # between stages: the next one's clock runs
                later = order[order.index(current) + 1 :]
                if not later:
                    return False
                index, since = later[0], collected.ended_at[current]
            else:
                index = current
                since = launched if index == order[0] else collected.started_at[index]
            if now - since > budgets[index]:
                if not hit:
                    hit.append(index)
                    log.warning(
                        "ansible: stage %d of batch %s over its %gs bound: stopped",
                        index,
                        label,
                        budgets[index],
                    )
                return True
            return False

        limit = batch_limit(stages)
        # the whole run's own bound: never before the stages' own (they add up to it)
        timeout_s = sum(budgets.values()) + 30
        log.info("ansible: batch %s limit=%s timeout=%ss", label, ",".join(limit), timeout_s)
        done = self._run_runner(
            "batch",
            None,
            inventory=inventory,
            extravars={},
            limit=limit,
            timeout_s=timeout_s,
            request=None,
            collect=collect,
            on_event=on_event,
            stop=stop,
            batch=batch_playbook_text(stages),
            on_play=play_started,
        )
        user_cancel = cancel is not None and cancel.is_set()
        return done, hit[0] if hit and not user_cancel else None, time.monotonic()

    def _run_runner(
        self,
        name: str,
        path: Path | None,
        *,
        inventory: Mapping[str, Any],
        extravars: Mapping[str, Any],
        limit: tuple[str, ...] | None,
        timeout_s: float,
        request: PlaybookRequest | None,
        collect: Callable[[dict[str, Any], TaskEvent, TaskTiming | None], None],
        on_event: EventCallback | None,
        stop: Callable[[], bool] | None,
        batch: str | None = None,
        on_play: Callable[[dict[str, Any]], None] | None = None,
    ) -> _RunnerDone:
        """One ansible-runner run in a new private data dir (kept, rotated): `path` is the
        playbook, or `batch` the combined playbook written into the run dir."""
        run_dir = prepare_run_dir(
            self.state_dir,
            name,
            datetime.now(UTC),
            envvars=self.envvars,
            inventory_text=dump_inventory(dict(inventory)),
            settings=runner_settings(timeout_s),
            extravars=extravars,
            batch=batch,
        )
        if batch is not None:
            path = run_dir / "batch.yml"
        if path is None:
            raise PlaybookError(f"{name}: neither a playbook nor a batch to run")

        def handle(event: dict[str, Any]) -> bool:
            if on_play is not None:
                on_play(event)
            mapped = task_event_from_runner(name, event)
            if mapped is None:
                return True
            if batch is not None:
                mapped = dataclasses.replace(mapped, stage=event_stage(event))
            timing = None
            if mapped.status != "started":
                timing = timing_from_runner(event, mapped.status)
            collect(event, mapped, timing)
            for callback in (log_event, on_event):
                if callback is None:
                    continue
                try:
                    callback(mapped)
                except Exception:
                    log.exception("on_event callback failed for %s", mapped)
            return True

        cmdline = ["--check"] if request is not None and request.check else []
        import ansible_runner  # noqa: PLC0415 - only a flow needs it (daemon idle RSS)

        try:
            runner = ansible_runner.run(
                private_data_dir=str(run_dir),
                project_dir=str(path.parent),
                playbook=str(path),
                ident="run",
                limit=",".join(limit) if limit is not None else None,
                tags=",".join(request.tags) or None if request is not None else None,
                skip_tags=",".join(request.skip_tags) or None if request is not None else None,
                cmdline=" ".join(cmdline) or None,
                event_handler=handle,
                cancel_callback=stop,
                quiet=True,
            )
        except Exception as exc:
            raise AnsibleRunError(f"{name}: ansible-runner could not run: {exc}") from exc
        finally:
            rotate_run_dirs(run_dir.parent, self.keep_runs)
        artifacts = Path(runner.config.artifact_dir)
        return _RunnerDone(
            run_status(runner.status),
            int(runner.rc) if runner.rc is not None else -1,
            runner.stats,
            artifacts,
        )


@dataclass(frozen=True)
class _RunnerDone:
    """What one ansible-runner run ended with (judged by status, rc and stats)."""

    status: RunStatus
    rc: int
    stats: Mapping[str, Any] | None
    artifacts: Path


@contextmanager
def open_port(config: HecateConfig, **kwargs: Any) -> Iterator[AnsiblePort]:
    """``with open_port(config) as port: port.run(...)`` (cleans the ssh control dir)."""
    port = AnsiblePort.from_config(config, **kwargs)
    try:
        yield port
    finally:
        port.close()


__all__ = [
    "CONTROL_PERSIST_S",
    "Ansible",
    "AnsiblePort",
    "EventCallback",
    "HostStats",
    "JumpCheck",
    "Playbook",
    "PlaybookError",
    "PlaybookRequest",
    "PlaybookResult",
    "RunStatus",
    "TaskEvent",
    "TaskTiming",
    "assets_dir",
    "check_jump_host",
    "log_event",
    "open_port",
    "prepare_inventory",
]
