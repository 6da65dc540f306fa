"""The one port to Ansible: typed playbook requests in, typed results out, through ansible-runner.

This is the only module that imports ``ansible_runner``. Flows depend on the small
:class:`Ansible` protocol, so they can be unit-tested with a fake that records requests.
The other jobs live beside it, each name in its own module:
:mod:`hecate.adapters.ansible.events` (pure mapping of runner events and stats),
:mod:`hecate.adapters.ansible.assets` (where playbooks and roles are; which file and extra vars a
playbook name runs), :mod:`hecate.adapters.ansible.rundir` (each run's private data dir, kept for
post-mortems, rotated) and :mod:`hecate.adapters.ansible.ssh_preflight` (the jump-host check that
picks the inventory). Playbooks run in place from the assets dir.

Results are judged from runner's status, rc and ``runner.stats`` (never from scraping stdout):
an unreachable host shows up in :attr:`PlaybookResult.unreachable_hosts` while the other hosts
are still handled.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hecate.adapters.ansible.assets import (
    PlaybookError,
    assets_dir,
    playbook_extravars,
    resolve_playbook,
)
from hecate.adapters.ansible.batch import BatchStage, event_stage
from hecate.adapters.ansible.batch_run import held_stages, run_batch
from hecate.adapters.ansible.events import (
    EventCallback,
    TaskEvent,
    TaskTiming,
    log_event,
    parse_stats,
    run_status,
    task_event_from_runner,
    timing_from_runner,
)
from hecate.adapters.ansible.held import DEFAULT_HOLD_S, HeldRun
from hecate.adapters.ansible.held_runs import HeldRuns
from hecate.adapters.ansible.inventory import dump_inventory, inventory_hosts
from hecate.adapters.ansible.protocol import PlaybookRequest, PlaybookResult, RunnerDone
from hecate.adapters.ansible.reap import reap_run
from hecate.adapters.ansible.rundir import (
    ARTIFACTS_DIRNAME,
    DEFAULT_REMOTE_TMP,
    RunEnv,
    prepare_run_dir,
    rotate_run_dirs,
    runner_envvars,
    runner_settings,
    short_tmp_dir,
    stdout_tail,
)
from hecate.adapters.ansible.ssh_preflight import JumpCheck, check_jump_host, prepare_inventory
from hecate.adapters.statedir.private_files import private_umask
from hecate.config.model import HecateConfig
from hecate.errors import AnsibleRunError

log = logging.getLogger(__name__)

DEFAULT_KEEP_RUNS = 50
DEFAULT_TIMEOUT_S = 600.0


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
        self._held = HeldRuns()

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
        self._held.drop_all(wait_s=10.0)  # their processes end before the sockets go
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
            action_plugins_dir=self.assets / "playbooks" / "action_plugins",
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

    def checked_limit(self, name: str, request: PlaybookRequest) -> tuple[str, ...] | None:
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
        limit = self.checked_limit(name, request)
        if limit is not None and not limit:
            return PlaybookResult(name, "skipped", 0, {}, 0.0, [], None, limit, "empty limit")
        if cancel is not None and cancel.is_set():
            return PlaybookResult(name, "canceled", 254, {}, 0.0, [], None, limit, "canceled")
        held = self._held.claim_for([request], functools.partial(held_stages, self))
        if held is not None:
            return run_batch(self, [request], on_event=on_event, cancel=cancel, held=held)[0]

        timeout_s = request.timeout_s or self.default_timeout_s
        timings: list[TaskTiming] = []

        def collect(_event: dict[str, Any], mapped: TaskEvent, timing: TaskTiming | None) -> None:
            if timing is not None:
                timings.append(timing)

        log.info("ansible: %s limit=%s timeout=%ss", name, ",".join(limit or ["all"]), timeout_s)
        done = self.run_runner(
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
        """Several playbooks, in order, as the plays of one ``ansible-playbook``
        (hecate/adapters/ansible/batch_run.py); one result per request, as :meth:`run`'s."""
        return run_batch(self, requests, on_event=on_event, cancel=cancel)

    def hold(self, requests: Sequence[PlaybookRequest], *, hold_s: float = DEFAULT_HOLD_S) -> None:
        """Start `requests` ahead as one batch held at its gate (hecate/adapters/ansible/held.py),
        for a later run of the same work; a hint: what cannot be batched holds nothing."""
        stages = held_stages(self, requests)
        if not stages or self._held.covers(stages, len(requests)):
            return
        run = HeldRun(stages, len(requests), self.control_path_dir, hold_s=hold_s)
        run.start(
            functools.partial(self.run_runner, "held", None, extravars={}, request=None),
            self.inventory,
        )
        self._held.add(run)

    def claim_held(self, stages: Sequence[BatchStage], requests: int) -> HeldRun | None:
        return self._held.claim(stages, requests)  # batch_run.run_batch's

    def drop_held(self) -> None:
        """Say "no" to every run still held (a flow ended before it needed them)."""
        self._held.drop_all()

    def settle(self, wait_s: float) -> None:  # for bench/flows.py: count their CPU
        self._held.settle(wait_s)  # the runs that returned before their process exited

    def run_runner(
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
        on_dir: Callable[[Path], None] | None = None,
    ) -> RunnerDone:
        """One ansible-runner run in a new private data dir (kept, rotated): `path` is the
        playbook, or `batch` the combined playbook written into the run dir."""
        # under state_dir, or under the runtime dir when the state disk refuses (full, read-only,
        # failing): a broken state disk never stops a node stage (hecate.adapters.ansible.rundir)
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
        if on_dir is not None:
            on_dir(run_dir)
        path = run_dir / "batch.yml" if batch is not None else path
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
            # One log line per event: a caller's callback reports it (a flow's progress, which
            # the daemon logs); logging it here too wrote each node line twice.
            callback = on_event if on_event is not None else log_event
            try:
                callback(mapped)
            except Exception:
                log.exception("on_event callback failed for %s", mapped)
            return True

        cmdline = ["--check"] if request is not None and request.check else []
        import ansible_runner  # noqa: PLC0415 - only a flow needs it (daemon idle RSS)

        with private_umask():  # runner writes some artifacts by the umask: hold it at 077
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
                reap_run(run_dir)
                raise AnsibleRunError(f"{name}: ansible-runner could not run: {exc}") from exc
            finally:
                rotate_run_dirs(run_dir.parent, self.keep_runs)
        status = run_status(runner.status)
        if status in ("canceled", "timeout"):
            reap_run(run_dir)  # runner's kill misses the detached workers and their ssh
        artifacts = Path(runner.config.artifact_dir)
        return RunnerDone(
            status,
            int(runner.rc) if runner.rc is not None else -1,
            runner.stats,
            artifacts,
        )


@contextmanager
def open_port(config: HecateConfig, **kwargs: Any) -> Iterator[AnsiblePort]:
    """``with open_port(config) as port: port.run(...)`` (cleans the ssh control dir)."""
    port = AnsiblePort.from_config(config, **kwargs)
    try:
        yield port
    finally:
        port.close()
