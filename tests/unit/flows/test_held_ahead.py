"""The runner starts each flow's next playbook run ahead (`Ansible.hold`) while the stage before
it runs. Held work is only used when the flow asks for the very same work, so what the runner
holds must be exactly what the flow then runs: a hold that never matches costs a process start
and saves nothing. Every hold here must equal, request for request (playbook, extra vars,
bound; hosts within), a run or batch the flow made after it, and the flow must drop what is
left when it ends."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from hecate.adapters.ansible.events import EventCallback
from hecate.adapters.ansible.protocol import PlaybookRequest, PlaybookResult
from hecate.config.model import parse_config
from hecate.core.plans import ShutdownOptions, StartupOptions
from hecate.core.run_history import Outcome
from hecate.errors import AnsibleRunError
from hecate.flows.shutdown import run_shutdown
from hecate.flows.startup import run_startup
from tests.fakes import FakeAnsible
from tests.unit.flows import test_flows, test_startup_runs

Key = tuple[str, tuple[tuple[str, object], ...], float | None]


def _key(request: PlaybookRequest) -> Key:
    return (request.playbook, tuple(sorted(request.extravars.items())), request.timeout_s)


class Holding(FakeAnsible):
    """Records holds and the runs after them, in order, as ("hold"|"run", requests)."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[tuple[str, list[PlaybookRequest]]] = []
        self._batching = False

    def hold(self, requests: Sequence[PlaybookRequest]) -> None:
        super().hold(requests)
        self.log.append(("hold", list(requests)))

    def run(
        self,
        request: PlaybookRequest,
        *,
        on_event: EventCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> PlaybookResult:
        if not self._batching:
            self.log.append(("run", [request]))
        return super().run(request, on_event=on_event, cancel=cancel)

    def run_batch(
        self,
        requests: Sequence[PlaybookRequest],
        *,
        on_event: EventCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> list[PlaybookResult]:
        self.log.append(("run", list(requests)))
        self._batching = True
        try:
            return super().run_batch(requests, on_event=on_event, cancel=cancel)
        finally:
            self._batching = False

    def used(self) -> list[bool]:
        """For each hold: whether a later run asked for the same work, hosts within."""
        out = []
        for number, (kind, held) in enumerate(self.log):
            if kind != "hold":
                continue
            out.append(
                any(
                    later == "run"
                    and [_key(r) for r in ran] == [_key(r) for r in held]
                    and all(
                        set(a.limit or ()) <= set(b.limit or ())
                        for a, b in zip(ran, held, strict=True)
                    )
                    for later, ran in self.log[number + 1 :]
                )
            )
        return out


def test_a_startup_holds_each_node_run_ahead_and_runs_exactly_that(tmp_path: Path) -> None:
    ansible = Holding()
    config = parse_config(test_startup_runs._data(tmp_path))
    report = run_startup(test_startup_runs._ctx(config, ansible), StartupOptions())
    assert report.outcome is Outcome.SUCCESS, report.to_json()
    # time_sync while power_on runs, start_servers' one run (the etcd reads around the start)
    # while time_sync runs, start_agents while start_servers runs
    assert ansible.held == [["time_sync"], ["etcd", "start_servers", "etcd"], ["start_agents"]]
    assert ansible.used() == [True, True, True]
    assert ansible.drops == 1  # the flow's end: nothing left held


def test_a_shutdown_holds_its_node_batch_while_the_api_stages_run(tmp_path: Path) -> None:
    ansible = Holding()
    config = test_flows._config(tmp_path)
    ctx = test_flows._ctx(config, test_flows._cluster(), ansible)
    report = run_shutdown(ctx, ShutdownOptions(reason="ups"))
    assert report.outcome is Outcome.SUCCESS, report.to_json()
    assert ansible.held == [["stop_agents", "stop_servers", "poweroff", "poweroff"]]
    assert ansible.log[0][0] == "hold"  # before the first stage, Flux's, began
    assert ansible.used() == [True]
    assert ansible.drops == 1


def test_a_failed_startup_drops_what_it_held(tmp_path: Path) -> None:
    """The quorum gate stops the startup: start_agents, held, must not outlive the flow."""
    ansible = Holding()
    ansible.etcd_quorum = False
    data = test_startup_runs._data(tmp_path, etcd_quorum_timeout_seconds=1)
    config = parse_config(data)
    report = run_startup(test_startup_runs._ctx(config, ansible), StartupOptions())
    assert report.outcome is Outcome.FAILED
    assert ["start_agents"] in ansible.held
    assert ansible.drops == 1
    assert not any(r.playbook == "start_agents" for r in ansible.requests)


class RefusingHolds(FakeAnsible):
    def hold(self, requests: Sequence[PlaybookRequest]) -> None:
        raise AnsibleRunError("control path dir too long")


def test_a_hold_that_cannot_be_made_never_fails_the_flow(tmp_path: Path) -> None:
    """Holding is a hint: each stage then starts its own run, as before."""
    ansible = RefusingHolds()
    config = parse_config(test_startup_runs._data(tmp_path))
    report = run_startup(test_startup_runs._ctx(config, ansible), StartupOptions())
    assert report.outcome is Outcome.SUCCESS, report.to_json()
    assert [r.playbook for r in ansible.requests][-1] == "start_agents"
