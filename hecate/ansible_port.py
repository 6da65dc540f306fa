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
    Playbook,
    PlaybookError,
    assets_dir,
    playbook_extravars,
    resolve_playbook,
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
    new_run_dir,
    rotate_run_dirs,
    runner_envvars,
    runner_settings,
    short_tmp_dir,
    stdout_tail,
    write_private_data_dir,
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

    def envvars(self, run_dir: Path) -> dict[str, str]:
        env = RunEnv(
            state_dir=self.state_dir,
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
        limit = tuple(request.limit) if request.limit is not None else None
        path = self.playbook_path(request.playbook)
        extravars = self.extravars(request)  # a contradiction is refused before anything runs
        if limit is not None:
            unknown = sorted(set(limit) - self.hosts)
            if unknown:
                raise PlaybookError(f"{name}: hosts not in the inventory: {unknown}")
            if not limit:
                return PlaybookResult(name, "skipped", 0, {}, 0.0, [], None, limit, "empty limit")
        if cancel is not None and cancel.is_set():
            return PlaybookResult(name, "canceled", 254, {}, 0.0, [], None, limit, "canceled")

        timeout_s = request.timeout_s or self.default_timeout_s
        run_dir = new_run_dir(self.artifacts_root, name, datetime.now(UTC))
        write_private_data_dir(
            run_dir,
            inventory_text=dump_inventory(self.inventory),
            envvars=self.envvars(run_dir),
            settings=runner_settings(timeout_s),
            extravars=extravars,
            state_dir=self.state_dir,
        )
        timings: list[TaskTiming] = []

        def handle(event: dict[str, Any]) -> bool:
            mapped = task_event_from_runner(name, event)
            if mapped is None:
                return True
            if mapped.status != "started":
                timing = timing_from_runner(event, mapped.status)
                if timing is not None:
                    timings.append(timing)
            for callback in (log_event, on_event):
                if callback is None:
                    continue
                try:
                    callback(mapped)
                except Exception:
                    log.exception("on_event callback failed for %s", mapped)
            return True

        cmdline = ["--check"] if request.check else []
        log.info("ansible: %s limit=%s timeout=%ss", name, ",".join(limit or ["all"]), timeout_s)
        import ansible_runner  # noqa: PLC0415 - only a flow needs it (daemon idle RSS)

        try:
            runner = ansible_runner.run(
                private_data_dir=str(run_dir),
                project_dir=str(path.parent),
                playbook=str(path),
                ident="run",
                limit=",".join(limit) if limit is not None else None,
                tags=",".join(request.tags) or None,
                skip_tags=",".join(request.skip_tags) or None,
                cmdline=" ".join(cmdline) or None,
                event_handler=handle,
                cancel_callback=cancel.is_set if cancel is not None else None,
                quiet=True,
            )
        except Exception as exc:
            raise AnsibleRunError(f"{name}: ansible-runner could not run: {exc}") from exc
        finally:
            self.rotate()

        status = run_status(runner.status)
        artifacts = Path(runner.config.artifact_dir)
        hosts = parse_stats(runner.stats)
        detail = ""
        if status == "timeout":
            detail = f"timed out after {timeout_s:g}s"
        elif status == "failed" and not hosts:
            detail = stdout_tail(artifacts / "stdout")
        result = PlaybookResult(
            playbook=name,
            status=status,
            rc=int(runner.rc) if runner.rc is not None else -1,
            hosts=hosts,
            duration_s=time.monotonic() - started,
            tasks=timings,
            artifacts_dir=artifacts,
            limit=limit,
            detail=detail,
        )
        log.info("ansible: %s", result.summary())
        return result


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
