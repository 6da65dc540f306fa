"""Opening the nodes' ssh connections before a flow needs them (hecate/flows/warmup.py)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hecate.adapters.ansible.events import EventCallback
from hecate.adapters.ansible.protocol import Ansible, PlaybookRequest, PlaybookResult
from hecate.adapters.ansible.rundir import CONTROL_PERSIST_S
from hecate.config.model import parse_config
from hecate.core.plans import ShutdownOptions
from hecate.errors import AnsibleRunError
from hecate.flows.open_context import open_flow_context
from hecate.flows.shutdown import node_batch_ahead, run_shutdown
from hecate.flows.warmup import CONNECT_PLAYBOOK, REFRESH_S, ConnectionWarmer, warm_due
from tests.fakes import FakeAnsible
from tests.unit.flows import test_flows


def test_first_warm_is_due() -> None:
    assert warm_due(None, 0.0)


def test_recent_warm_is_not_repeated_and_a_stale_one_is() -> None:
    assert not warm_due(100.0, 100.0 + REFRESH_S - 1)
    assert warm_due(100.0, 100.0 + REFRESH_S)


@given(st.floats(0, 1e6), st.floats(0, 1e6))
def test_due_exactly_when_refresh_has_passed(last: float, delta: float) -> None:
    assert warm_due(last, last + delta) == (delta >= REFRESH_S)


def test_refresh_comes_before_the_masters_expire() -> None:
    assert REFRESH_S < CONTROL_PERSIST_S


def test_warmer_runs_the_connect_playbook_once_per_refresh() -> None:
    fake = FakeAnsible()
    made: list[Ansible] = []

    def factory() -> Ansible:
        made.append(fake)
        return fake

    warmer = ConnectionWarmer(factory)
    assert warmer.opened is None  # nothing built until needed (no preflight in the poll thread)
    assert warmer.warm(10.0)
    warmer.join(5)
    assert not warmer.warm(11.0)  # recent: no second run
    assert warmer.warm(10.0 + REFRESH_S)
    warmer.join(5)
    assert [r.playbook for r in fake.requests] == [CONNECT_PLAYBOOK, CONNECT_PLAYBOOK]
    assert fake.requests[0].limit is None  # every node
    assert len(made) == 1 and warmer.opened is fake
    assert warmer.runs == 2


def test_a_failing_port_is_logged_not_raised() -> None:
    def broken() -> Ansible:
        raise AnsibleRunError("inventory cannot be built")

    warmer = ConnectionWarmer(broken)
    assert warmer.warm(0.0)
    warmer.join(5)
    assert warmer.runs == 0


@pytest.mark.parametrize(("warm", "runs"), [(True, 1), (False, 0)], ids=["asked", "default"])
def test_a_flow_context_warms_only_when_asked(tmp_path: Path, warm: bool, runs: int) -> None:
    """By default nothing warms when a context opens: the CLI's first node stage opens the
    connections (warming beside a CLI shutdown measured worse on 2 cores), and the daemon
    warms on battery, before the decision."""
    config = parse_config(
        {
            "state_dir": str(tmp_path / "s"),
            "nodes": {"servers": ["s1"], "agents": []},
            "ups": {"target": "pyrphoros@localhost"},
        }
    )
    fake = FakeAnsible()
    warmer = ConnectionWarmer(lambda: fake)
    with open_flow_context(config, read_ups=None, warmer=warmer, warm=warm) as ctx:
        assert ctx.ansible is fake
        warmer.join(5)
    assert [r.playbook for r in fake.requests] == [CONNECT_PLAYBOOK] * runs


class BlockingAnsible(FakeAnsible):
    """A warm-up that runs until cancelled (a node that never answers), as the real port does:
    the cancel event is its cancel_callback."""

    def __init__(self) -> None:
        super().__init__()
        self.started = threading.Event()
        self.cancel_seen: threading.Event | None = None

    def run(
        self,
        request: PlaybookRequest,
        *,
        on_event: EventCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> PlaybookResult:
        self.requests.append(request)
        self.cancel_seen = cancel
        self.started.set()
        assert cancel is not None, "a warm-up must be cancellable"
        cancel.wait(30)
        return PlaybookResult(request.playbook, "canceled", 254, {}, 0.0, [], None)


def test_stop_cancels_a_running_warmup_and_starts_no_other() -> None:
    port = BlockingAnsible()
    outcomes: list[Exception | None] = []
    warmer = ConnectionWarmer(lambda: port, on_outcome=outcomes.append)
    assert warmer.warm(0.0)
    assert port.started.wait(5)
    started = time.monotonic()
    assert warmer.stop(5.0)
    assert time.monotonic() - started < 1.0  # the run was cancelled, not waited out
    assert port.cancel_seen is not None and port.cancel_seen.is_set()
    assert outcomes == [None]  # a cancelled warm-up is no failure
    assert not warmer.warm(1e9, force=True)  # stopped for good
    assert len(port.requests) == 1


@pytest.mark.parametrize(
    "error",
    [OSError(28, "No space left on device"), RuntimeError("a bug"), AnsibleRunError("no run")],
    ids=["OSError", "bug", "HecateError"],
)
def test_any_failure_of_a_warmup_is_reported_never_raised_in_its_thread(error: Exception) -> None:
    class Failing(FakeAnsible):
        def run(self, request: PlaybookRequest, **_: object) -> PlaybookResult:
            raise error

    outcomes: list[Exception | None] = []
    warmer = ConnectionWarmer(Failing, on_outcome=outcomes.append)
    assert warmer.warm(0.0)
    warmer.join(5)
    assert outcomes == [error]
    assert warmer.runs == 0


def test_after_connecting_the_warmer_holds_the_shutdown_the_daemon_would_run(
    tmp_path: Path,
) -> None:
    """The daemon's warm-up also starts the shutdown's node batch ahead (held, nothing runs on
    a node): exactly the batch the shutdown then asks for, so the decision finds it started."""

    config = test_flows._config(tmp_path)
    options = ShutdownOptions(mode=config.shutdown.ups_mode, reason="ups")
    fake = FakeAnsible()
    warmer = ConnectionWarmer(lambda: fake, ahead=lambda: node_batch_ahead(config, options))
    assert warmer.warm(10.0)
    warmer.join(5)
    assert [r.playbook for r in fake.requests] == [CONNECT_PLAYBOOK]  # nothing else ran
    assert fake.held == [["stop_agents", "stop_servers", "poweroff", "poweroff"]]
    # the very requests the shutdown's batch makes (the flow's own steps, not a copy)
    ran = FakeAnsible()
    kept: list[list[PlaybookRequest]] = []
    original = ran.run_batch

    def run_batch(requests: list[PlaybookRequest], **kwargs: object) -> list[PlaybookResult]:
        kept.append(list(requests))
        return original(requests, **kwargs)  # type: ignore[arg-type]

    ran.run_batch = run_batch  # type: ignore[method-assign,assignment]
    ctx = test_flows._ctx(config, test_flows._cluster(), ran)
    run_shutdown(ctx, options)
    assert kept == [node_batch_ahead(config, options)]


def test_a_cluster_only_shutdown_holds_just_its_stops(tmp_path: Path) -> None:

    config = test_flows._config(tmp_path)
    requests = node_batch_ahead(config, ShutdownOptions(mode="cluster-only", reason="x"))
    assert [(r.playbook, tuple(r.limit or ())) for r in requests] == [
        ("stop_agents", ("a1", "a2")),
        ("stop_servers", ("s1",)),
    ]
