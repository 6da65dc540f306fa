"""The one port to Ansible: typed playbook requests in, typed results out, through ansible-runner.

This is the only module that imports ``ansible_runner``. Flows depend on the small
:class:`Ansible` protocol, so they can be unit-tested with a fake that records requests.

Every run gets a fresh private data dir ``STATE_DIR/ansible-artifacts/<ident>/`` laid out the
way ansible-runner expects (``inventory/hosts``, ``env/settings``, ``env/envvars``,
``env/extravars``; the playbook is run in place from the assets dir, which is the project dir)
and its artifacts (``artifacts/<ident>/``: stdout, job events, status, rc) stay there for
post-mortems; only the newest ``keep_runs`` run dirs are kept.

Results are judged from runner's status, rc and ``runner.stats`` (never from scraping stdout):
an unreachable host shows up in :attr:`PlaybookResult.unreachable_hosts` while the other hosts
are still handled.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, TextIO

from hecate.config import HecateConfig
from hecate.errors import AnsibleRunError
from hecate.inventory import (
    InventoryPlan,
    dump_inventory,
    inventory_hosts,
    jump_preflight_argv,
    plan_inventory,
)

log = logging.getLogger(__name__)

ASSETS_ENV = "HECATE_ASSETS_DIR"
ARTIFACTS_DIRNAME = "ansible-artifacts"
DEFAULT_KEEP_RUNS = 50
DEFAULT_TIMEOUT_S = 600.0
DEFAULT_REMOTE_TMP = "~/.ansible/tmp"
# ssh masters outlive their last use this long; the warm-up (flows/warmup.py) refreshes them.
CONTROL_PERSIST_S = 120
# A unix socket path must fit in 108 bytes; ssh's %C hash takes 40 plus a temporary suffix.
_MAX_CONTROL_DIR_LEN = 50
_RUN_DIR_RE = re.compile(r"^\d{8}T\d{6}\.\d{6}Z-[A-Za-z0-9_.-]+-[0-9a-f]{8}$")


class Playbook(StrEnum):
    """The playbooks shipped in the assets dir (``playbooks/NAME.yml``)."""

    PING = "ping"
    CONNECT = "connect"
    STOP_AGENTS = "stop_agents"
    STOP_SERVERS = "stop_servers"
    START_SERVERS = "start_servers"
    START_AGENTS = "start_agents"
    ETCD_SNAPSHOT = "etcd_snapshot"
    POWEROFF = "poweroff"


class PlaybookError(AnsibleRunError):
    """The request itself is invalid (unknown playbook or host); nothing was run."""


RunStatus = Literal["successful", "failed", "timeout", "canceled", "skipped"]
EventStatus = Literal["started", "ok", "changed", "failed", "ignored", "unreachable", "skipped"]


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
class HostStats:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0


@dataclass(frozen=True)
class TaskTiming:
    task: str
    host: str
    status: EventStatus
    start: datetime | None
    end: datetime | None
    duration_s: float | None


@dataclass(frozen=True)
class TaskEvent:
    """A live progress event: one task on one host started or finished."""

    playbook: str
    host: str
    task: str
    status: EventStatus
    duration_s: float | None = None
    message: str | None = None
    # The module's result (`res`) of an ok/changed task, e.g. a command's stdout (not part of
    # an event's identity: two events of the same task and status compare equal).
    result: Mapping[str, Any] | None = field(default=None, compare=False)


EventCallback = Callable[[TaskEvent], None]


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


# --------------------------------------------------------------------------- assets


def _has_assets(path: Path) -> bool:
    return (path / "playbooks").is_dir() and (path / "roles").is_dir()


def assets_candidates() -> list[Path]:
    """Where playbooks/ and roles/ are looked for, in order."""
    found: list[Path] = []
    env = os.environ.get(ASSETS_ENV)
    if env:
        found.append(Path(env))
    package = Path(__file__).resolve().parent
    found += [
        package.parent,  # a checkout or an editable install
        package / "data",  # packaged as package data
        Path(sys.prefix) / "share" / "hecate",  # a wheel's data-files
        Path(sys.base_prefix) / "share" / "hecate",
        Path("/usr/local/share/hecate"),
        Path("/usr/share/hecate"),
    ]
    return found


def assets_dir() -> Path:
    """The directory holding ``playbooks/`` and ``roles/``; ``$HECATE_ASSETS_DIR`` wins."""
    candidates = assets_candidates()
    for candidate in candidates:
        if _has_assets(candidate):
            return candidate
    raise AnsibleRunError(
        "cannot find Hecate's playbooks/ and roles/ (looked in "
        + ", ".join(str(c) for c in candidates)
        + f"); set {ASSETS_ENV}"
    )


# --------------------------------------------------------------------------- jump preflight


@dataclass(frozen=True)
class JumpCheck:
    ok: bool
    detail: str = ""


Runner = Callable[..., "subprocess.CompletedProcess[str]"]


def check_jump_host(
    config: HecateConfig, *, timeout_s: int | None = None, run: Runner = subprocess.run
) -> JumpCheck:
    """Can the jump host be reached (``ssh -o BatchMode=yes ... JUMP true``)? Fails fast."""
    argv = jump_preflight_argv(config, timeout_s)
    connect = timeout_s or config.ssh_connect_timeout_seconds
    try:
        done = run(
            argv,
            capture_output=True,
            text=True,
            timeout=connect + 5,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return JumpCheck(False, f"no answer within {connect + 5}s")
    except OSError as exc:
        return JumpCheck(False, f"cannot run ssh: {exc.strerror or exc}")
    if done.returncode == 0:
        return JumpCheck(True)
    lines = (done.stderr or "").strip().splitlines()
    return JumpCheck(False, lines[-1] if lines else f"ssh exited {done.returncode}")


def prepare_inventory(
    config: HecateConfig,
    *,
    preflight: bool = True,
    check: Callable[[HecateConfig], JumpCheck] = check_jump_host,
) -> InventoryPlan:
    """The inventory to run with: through the jump host if it answers, else direct (warned)."""
    if not config.ssh_jump_host or not preflight:
        return plan_inventory(config)
    outcome = check(config)
    plan = plan_inventory(config, jump_reachable=outcome.ok, jump_detail=outcome.detail)
    for warning in plan.warnings:
        log.warning("%s", warning)
    return plan


# --------------------------------------------------------------------------- events


class ProgressReporter:
    """A small human-readable progress display: one line per finished task and host."""

    _MARK: ClassVar[dict[str, str]] = {
        "ok": "ok",
        "changed": "changed",
        "failed": "FAILED",
        "ignored": "failed (ignored)",
        "unreachable": "UNREACHABLE",
        "skipped": "skipped",
    }

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._lock = threading.Lock()

    def __call__(self, event: TaskEvent) -> None:
        if event.status == "started":
            return
        took = f" {event.duration_s:.2f}s" if event.duration_s is not None else ""
        note = f": {event.message}" if event.message and event.status != "ok" else ""
        line = f"[{event.playbook}] {event.host:<16} {self._MARK[event.status]:<11} {event.task}"
        with self._lock:
            self._stream.write(f"{line}{took}{note}\n")
            self._stream.flush()


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


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


_FINAL_EVENTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_unreachable": "unreachable",
    "runner_on_skipped": "skipped",
}


def _event_message(data: Mapping[str, Any]) -> str | None:
    res = data.get("res")
    if isinstance(res, Mapping):
        msg = res.get("msg") or res.get("stderr")
        if msg:
            return str(msg).strip().splitlines()[-1][:300] if str(msg).strip() else None
    return None


def task_event_from_runner(playbook: str, event: Mapping[str, Any]) -> TaskEvent | None:
    """Map one ansible-runner event to a TaskEvent (None for events that are not per-host)."""
    kind = event.get("event")
    data = event.get("event_data") or {}
    if not isinstance(data, Mapping) or not data.get("host"):
        return None
    host = str(data["host"])
    task = str(data.get("task") or data.get("task_action") or "?")
    status: EventStatus
    if kind == "runner_on_start":
        return TaskEvent(playbook, host, task, "started")
    if kind not in _FINAL_EVENTS:
        return None
    status = _FINAL_EVENTS[kind]  # type: ignore[assignment]
    res = data.get("res")
    if status == "ok" and isinstance(res, Mapping) and res.get("changed"):
        status = "changed"
    if status == "failed" and data.get("ignore_errors"):
        status = "ignored"
    duration = data.get("duration")
    return TaskEvent(
        playbook,
        host,
        task,
        status,
        duration_s=float(duration) if isinstance(duration, int | float) else None,
        message=_event_message(data) if status in ("failed", "ignored", "unreachable") else None,
        result=res if status in ("ok", "changed") and isinstance(res, Mapping) else None,
    )


def timing_from_runner(event: Mapping[str, Any], status: EventStatus) -> TaskTiming | None:
    data = event.get("event_data") or {}
    if not isinstance(data, Mapping) or not data.get("host"):
        return None
    duration = data.get("duration")
    return TaskTiming(
        task=str(data.get("task") or "?"),
        host=str(data["host"]),
        status=status,
        start=_parse_time(data.get("start")),
        end=_parse_time(data.get("end")),
        duration_s=float(duration) if isinstance(duration, int | float) else None,
    )


def parse_stats(stats: Mapping[str, Any] | None) -> dict[str, HostStats]:
    """Per-host counters from ``runner.stats`` (the playbook_on_stats event)."""
    if not stats:
        return {}
    keys = {
        "ok": "ok",
        "changed": "changed",
        "failures": "failed",
        "dark": "unreachable",
        "skipped": "skipped",
        "rescued": "rescued",
        "ignored": "ignored",
    }
    counts: dict[str, dict[str, int]] = {}
    for source, target in keys.items():
        per_host = stats.get(source) or {}
        if not isinstance(per_host, Mapping):
            continue
        for host, value in per_host.items():
            counts.setdefault(str(host), {})[target] = int(value or 0)
    for host in stats.get("processed") or {}:
        counts.setdefault(str(host), {})
    return {host: HostStats(**values) for host, values in sorted(counts.items())}


# --------------------------------------------------------------------------- the port


def _short_tmp_dir(prefix: str) -> Path:
    base = Path(tempfile.gettempdir())
    if len(str(base)) > 20:
        base = Path("/tmp")  # noqa: S108 - only as a short base for a private mkdtemp
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    if len(str(path)) > _MAX_CONTROL_DIR_LEN:
        raise AnsibleRunError(f"control path dir {path} is too long for ssh sockets")
    return path


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
                self._control_dir = _short_tmp_dir("hecate-cp-")
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
        """``NAME``/``NAME.yml`` in the assets' playbooks/, or an absolute path."""
        candidate = Path(name)
        if candidate.is_absolute():
            path = candidate
        else:
            if "/" in name or name.startswith("."):
                raise PlaybookError(f"playbook {name!r}: give a bare name or an absolute path")
            file = name if name.endswith((".yml", ".yaml")) else f"{name}.yml"
            path = self.assets / "playbooks" / file
        if not path.is_file():
            raise PlaybookError(f"playbook {name!r} not found at {path}")
        return path

    def envvars(self, run_dir: Path) -> dict[str, str]:
        state = self.state_dir
        env = {
            "ANSIBLE_CONFIG": str(run_dir / "ansible.cfg"),
            "ANSIBLE_HOME": str(state / "ansible-home"),
            "ANSIBLE_LOCAL_TEMP": str(state / "ansible-tmp"),
            "ANSIBLE_REMOTE_TEMP": self.remote_tmp,
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(self.control_path_dir),
            "ANSIBLE_PERSISTENT_CONTROL_PATH_DIR": str(self.control_path_dir),
            "ANSIBLE_ROLES_PATH": str(self.assets / "roles"),
            "ANSIBLE_HOST_KEY_CHECKING": "True",
            "ANSIBLE_PIPELINING": "True",
            "ANSIBLE_SSH_ARGS": f"-o ControlMaster=auto -o ControlPersist={CONTROL_PERSIST_S}s",
            "ANSIBLE_SSH_RETRIES": "0",
            "ANSIBLE_TIMEOUT": str(self.connect_timeout_s),
            "ANSIBLE_FORKS": str(self.forks),
            "ANSIBLE_GATHERING": "explicit",
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_INTERPRETER_PYTHON": "auto_silent",
            "ANSIBLE_DEPRECATION_WARNINGS": "False",
            "ANSIBLE_NOCOLOR": "True",
            # only ansible.builtin is used: skip scanning sys.path for collections (faster start)
            "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "False",
        }
        # ansible-playbook next to this interpreter (a venv) even when PATH lacks it
        bindir = Path(sys.executable).parent
        if (bindir / "ansible-playbook").exists():
            env["PATH"] = os.pathsep.join([str(bindir), os.environ.get("PATH", os.defpath)])
        env.update(self.extra_env)
        return env

    def settings(self, timeout_s: float) -> dict[str, Any]:
        seconds = max(1, math.ceil(timeout_s))
        return {
            "job_timeout": seconds,
            "idle_timeout": seconds,
            "pexpect_timeout": 0.2,
            "pexpect_use_poll": True,
            "suppress_ansible_output": True,
        }

    def _new_run_dir(self, playbook: str) -> Path:
        self.artifacts_root.mkdir(parents=True, exist_ok=True, mode=0o700)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(playbook).stem) or "playbook"
        run_dir = self.artifacts_root / f"{stamp}-{stem}-{uuid.uuid4().hex[:8]}"
        run_dir.mkdir(mode=0o700)
        return run_dir

    def write_private_data_dir(
        self, run_dir: Path, request: PlaybookRequest, timeout_s: float
    ) -> None:
        """Lay out ansible-runner's private data dir for one run."""
        (run_dir / "inventory").mkdir(mode=0o700)
        (run_dir / "env").mkdir(mode=0o700)
        (run_dir / "inventory" / "hosts").write_text(dump_inventory(self.inventory))
        (run_dir / "ansible.cfg").write_text(
            "# Hecate sets every option through env/envvars; this file only hides\n"
            "# ./ansible.cfg and /etc/ansible/ansible.cfg from the run.\n[defaults]\n"
        )
        (run_dir / "env" / "envvars").write_text(json.dumps(self.envvars(run_dir), indent=1))
        (run_dir / "env" / "settings").write_text(json.dumps(self.settings(timeout_s), indent=1))
        (run_dir / "env" / "extravars").write_text(json.dumps(dict(request.extravars), indent=1))
        for sub in ("ansible-home", "ansible-tmp"):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True, mode=0o700)

    def rotate(self) -> list[Path]:
        """Delete all but the newest ``keep_runs`` run dirs; returns the deleted ones."""
        if not self.artifacts_root.is_dir():
            return []
        runs = sorted(
            p for p in self.artifacts_root.iterdir() if p.is_dir() and _RUN_DIR_RE.match(p.name)
        )
        doomed = runs[: max(0, len(runs) - self.keep_runs)]
        for path in doomed:
            shutil.rmtree(path, ignore_errors=True)
        return doomed

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
        if limit is not None:
            unknown = sorted(set(limit) - self.hosts)
            if unknown:
                raise PlaybookError(f"{name}: hosts not in the inventory: {unknown}")
            if not limit:
                return PlaybookResult(name, "skipped", 0, {}, 0.0, [], None, limit, "empty limit")
        if cancel is not None and cancel.is_set():
            return PlaybookResult(name, "canceled", 254, {}, 0.0, [], None, limit, "canceled")

        timeout_s = request.timeout_s or self.default_timeout_s
        run_dir = self._new_run_dir(name)
        self.write_private_data_dir(run_dir, request, timeout_s)
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

        status = str(runner.status)
        if status not in ("successful", "failed", "timeout", "canceled"):
            status = "failed"
        artifacts = Path(runner.config.artifact_dir)
        hosts = parse_stats(runner.stats)
        detail = ""
        if status == "timeout":
            detail = f"timed out after {timeout_s:g}s"
        elif status == "failed" and not hosts:
            detail = _stdout_tail(artifacts / "stdout")
        result = PlaybookResult(
            playbook=name,
            status=status,  # type: ignore[arg-type]
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


def _stdout_tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


@contextmanager
def open_port(config: HecateConfig, **kwargs: Any) -> Iterator[AnsiblePort]:
    """``with open_port(config) as port: port.run(...)`` (cleans the ssh control dir)."""
    port = AnsiblePort.from_config(config, **kwargs)
    try:
        yield port
    finally:
        port.close()


__all__ = [
    "Ansible",
    "AnsiblePort",
    "EventCallback",
    "HostStats",
    "JumpCheck",
    "Playbook",
    "PlaybookError",
    "PlaybookRequest",
    "PlaybookResult",
    "ProgressReporter",
    "TaskEvent",
    "TaskTiming",
    "assets_dir",
    "check_jump_host",
    "log_event",
    "open_port",
    "parse_stats",
    "prepare_inventory",
]
