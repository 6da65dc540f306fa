"""The Ansible port's protocol: what the flows ask (a playbook request) and get back (its
result), and the small `Ansible` interface they depend on (fakes in tests implement just it)."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from hecate.adapters.ansible.events import EventCallback, HostStats, RunStatus, TaskTiming


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

    def hold(self, requests: Sequence[PlaybookRequest]) -> None:
        """Start `requests` ahead as one batch, held until a run or run_batch asks for the same
        work (AnsiblePort: hecate/adapters/ansible/held.py). A hint: nothing runs on a node
        until then, and a port may ignore it."""
        ...

    def drop_held(self) -> None:
        """Say "no" to whatever is still held: it ends without touching a node."""
        ...


@dataclass(frozen=True)
class RunnerDone:
    """What one ansible-runner run ended with (judged by status, rc and stats)."""

    status: RunStatus
    rc: int
    stats: Mapping[str, Any] | None
    artifacts: Path
