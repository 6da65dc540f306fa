"""Pure mapping of ansible-runner's event dicts to Hecate's typed task events and host stats.

No I/O and no ``ansible_runner`` import: every function takes the plain dicts ansible-runner
hands to ``event_handler`` (or ``runner.stats``) and returns frozen values. Anything the mapping
does not recognise (an event without a host, a loop item, a malformed field) maps to ``None`` or
is left out, never raises: the runner's event stream is outside input. :func:`log_event`, the
port's default event callback, only logs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

log = logging.getLogger("hecate.adapters.ansible.port")  # one logger for the port's runs

RunStatus = Literal["successful", "failed", "timeout", "canceled", "skipped"]
EventStatus = Literal["started", "ok", "changed", "failed", "ignored", "unreachable", "skipped"]

# ansible-runner's per-host final events and the status each one maps to (before the
# changed / ignore_errors refinements of task_event_from_runner).
_FINAL_EVENTS: dict[str, EventStatus] = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_unreachable": "unreachable",
    "runner_on_skipped": "skipped",
}
_MESSAGE_MAX = 300
_RUNNER_STATUSES: dict[str, RunStatus] = {
    "successful": "successful",
    "failed": "failed",
    "timeout": "timeout",
    "canceled": "canceled",
}


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
    # In a batch (several stages in one run, hecate/adapters/ansible/batch.py): which of the
    # requests the event belongs to, by its index in the batch; None for a run of one playbook.
    stage: int | None = None


EventCallback = Callable[[TaskEvent], None]


def _parse_time(value: object) -> datetime | None:
    """An event's ``start``/``end`` (ISO 8601, naive means UTC); None when absent or garbage."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _duration(data: Mapping[str, Any]) -> float | None:
    value = data.get("duration")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _event_message(data: Mapping[str, Any]) -> str | None:
    """The last line of a failed task's ``msg`` (or ``stderr``), at most 300 characters."""
    res = data.get("res")
    if not isinstance(res, Mapping):
        return None
    text = str(res.get("msg") or res.get("stderr") or "").strip()
    return text.splitlines()[-1][:_MESSAGE_MAX] if text else None


def _host_data(event: Mapping[str, Any]) -> Mapping[str, Any] | None:
    data = event.get("event_data")
    if not isinstance(data, Mapping) or not data.get("host"):
        return None
    return data


def task_event_from_runner(playbook: str, event: Mapping[str, Any]) -> TaskEvent | None:
    """Map one ansible-runner event to a TaskEvent (None for events that are not per-host)."""
    data = _host_data(event)
    if data is None:
        return None
    kind = event.get("event")
    host = str(data["host"])
    task = str(data.get("task") or data.get("task_action") or "?")
    if kind == "runner_on_start":
        return TaskEvent(playbook, host, task, "started")
    if not isinstance(kind, str) or kind not in _FINAL_EVENTS:
        return None
    status = _FINAL_EVENTS[kind]
    res = data.get("res")
    if status == "ok" and isinstance(res, Mapping) and res.get("changed"):
        status = "changed"
    if status == "failed" and data.get("ignore_errors"):
        status = "ignored"
    return TaskEvent(
        playbook,
        host,
        task,
        status,
        duration_s=_duration(data),
        message=_event_message(data) if status in ("failed", "ignored", "unreachable") else None,
        result=res if status in ("ok", "changed") and isinstance(res, Mapping) else None,
    )


def timing_from_runner(event: Mapping[str, Any], status: EventStatus) -> TaskTiming | None:
    """When one task ran on one host (from its final event), or None without a host."""
    data = _host_data(event)
    if data is None:
        return None
    return TaskTiming(
        task=str(data.get("task") or "?"),
        host=str(data["host"]),
        status=status,
        start=_parse_time(data.get("start")),
        end=_parse_time(data.get("end")),
        duration_s=_duration(data),
    )


_STATS_KEYS = {
    "ok": "ok",
    "changed": "changed",
    "failures": "failed",
    "dark": "unreachable",
    "skipped": "skipped",
    "rescued": "rescued",
    "ignored": "ignored",
}


def parse_stats(stats: Mapping[str, Any] | None) -> dict[str, HostStats]:
    """Per-host counters from ``runner.stats`` (the playbook_on_stats event)."""
    if not stats:
        return {}
    counts: dict[str, dict[str, int]] = {}
    for source, target in _STATS_KEYS.items():
        per_host = stats.get(source) or {}
        if not isinstance(per_host, Mapping):
            continue
        for host, value in per_host.items():
            counts.setdefault(str(host), {})[target] = int(value or 0)
    processed = stats.get("processed") or {}
    if isinstance(processed, Mapping):
        for host in processed:
            counts.setdefault(str(host), {})
    return {host: HostStats(**values) for host, values in sorted(counts.items())}


def run_status(status: object) -> RunStatus:
    """ansible-runner's final status; anything else (``error``, ``unstarted``, None) is failed."""
    return _RUNNER_STATUSES.get(status, "failed") if isinstance(status, str) else "failed"


__all__ = [
    "EventCallback",
    "EventStatus",
    "HostStats",
    "RunStatus",
    "TaskEvent",
    "TaskTiming",
    "parse_stats",
    "run_status",
    "task_event_from_runner",
    "timing_from_runner",
]


def log_event(event: TaskEvent) -> None:
    """Structured logging of task events (logger ``hecate.adapters.ansible.port``)."""
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
