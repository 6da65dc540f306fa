"""The daemon's decisions (pure) and its loop with in-memory ports and an explicit clock."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

from hecate.adapters.metrics.exposition import render_text
from hecate.adapters.statedir.files import exclusive_lock
from hecate.adapters.statedir.store import StateStore
from hecate.config.model import HecateConfig, parse_config
from hecate.core.intent import IntentState
from hecate.core.policy.values import Event
from hecate.core.readings import CommError, Poll, UpsReading, parse_status
from hecate.core.supervisor import effects_for
from hecate.core.supervisor_vocabulary import CancelStartup, ForwardTrigger, RunShutdown, RunStartup
from hecate.core.trace import load_trace
from hecate.daemon.service import Daemon
from hecate.flows.context import FlowContext
from tests.fakes import FakeAnsible, FakeKube


def ev(name: str) -> Event:
    return Event(0.0, name, "why", 330.0, 100.0)


def test_actions_table() -> None:
    assert effects_for([ev("trigger_shutdown")], "coordinator", None) == [RunShutdown("UPS: why")]
    assert effects_for([ev("trigger_shutdown")], "peer", None) == [ForwardTrigger("why")]
    assert effects_for([ev("trigger_shutdown")], "coordinator", "shutdown") == []
    assert effects_for([ev("trigger_shutdown")], "coordinator", "startup") == [
        CancelStartup("shutdown triggered during startup"),
        RunShutdown("UPS: why"),
    ]
    assert effects_for([ev("on_battery")], "coordinator", "startup")[0] == CancelStartup(
        "power failed again during startup"
    )
    assert effects_for([ev("on_battery")], "coordinator", None) == []
    assert effects_for([ev("startup_allowed")], "coordinator", None) == [
        RunStartup("power restored: why")
    ]
    assert effects_for([ev("startup_allowed")], "peer", None) == []
    assert effects_for([ev("comm_lost"), ev("condition_met")], "coordinator", None) == []


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


class World:
    """A UPS reading the test sets, a fake cluster, and the daemon wired to them."""

    def __init__(self, tmp_path: Path, **config: object) -> None:
        data: dict[str, object] = {
            "state_dir": str(tmp_path / "state"),
            "nodes": {"servers": ["s1"], "agents": ["a1"]},
            # polls come every 5-11 s of fake time: no observation gap below 30 s
            "ups": {
                "target": "pyrphoros@localhost",
                "debounce_polls": 2,
                "poll_interval_seconds": 1,
                "max_poll_gap_seconds": 30,
            },
            "startup": {
                "power_stable_seconds": 10,
                "min_battery_charge": 50,
                "flux_ready_timeout_seconds": 1,
                "nodes_ready_timeout_seconds": 1,
            },
        }
        data.update(config)
        self.config: HecateConfig = parse_config(data)
        self.reading: Poll = UpsReading(parse_status("OL"), 1800, 100)
        self.kube = FakeKube(nodes_up={"s1": True, "a1": True})
        self.kube.add_flux("GitRepository", "flux-system", "flux-system")
        self.ansible = FakeAnsible(cluster=self.kube)
        self.clock = Clock()
        self.daemon = Daemon(
            self.config, reader=lambda: self.reading, context_factory=self.context, clock=self.clock
        )

    @contextlib.contextmanager
    def context(self, cancel: threading.Event) -> Iterator[FlowContext]:
        yield FlowContext(
            self.config,
            self.ansible,
            self.kube,
            StateStore(self.config.state_dir),
            read_ups=lambda: self.reading,
            cancel=cancel,
            clock=self.clock,
            sleep=lambda _: None,
        )

    def poll(self, reading: Poll, dt: float = 5.0) -> list[str]:
        self.clock.t += dt
        self.reading = reading
        actions = self.daemon.poll_once()
        assert self.daemon.wait_idle(10)
        return [type(a).__name__ for a in actions]


def r(status: str, runtime: float, charge: float = 90) -> UpsReading:
    return UpsReading(parse_status(status), runtime, charge)


def test_outage_then_power_return_runs_shutdown_then_startup(tmp_path: Path) -> None:
    w = World(tmp_path)
    assert w.poll(r("OL", 1800)) == []
    assert w.poll(r("OB DISCHRG", 1000)) == []
    assert w.poll(r("OB DISCHRG", 200)) == []  # 1 of 2
    assert w.poll(r("OB DISCHRG", 190)) == ["RunShutdown"]
    assert w.poll(r("OB DISCHRG", 180)) == []  # latched: no second shutdown
    store = StateStore(w.config.state_dir)
    assert store.read_intent().state is IntentState.SHUTDOWN_COMPLETE
    assert [p for p, _ in w.ansible.playbooks][-2:] == ["poweroff", "poweroff"]
    assert w.poll(r("OL CHRG", 300, 40)) == []  # back, but charge too low and not stable
    assert w.poll(r("OL CHRG", 600, 55), dt=11) == ["RunStartup"]
    assert store.read_intent().state is IntentState.NORMAL
    kinds = [(rep.kind, rep.outcome.value) for rep in w.daemon.reports]
    assert kinds == [("shutdown", "success"), ("startup", "success")]
    text = render_text(w.daemon.metrics.registry).decode()
    assert 'hecate_runs_total{kind="shutdown",outcome="success"} 1.0' in text
    assert 'hecate_triggers_total{source="ups"} 1.0' in text
    assert 'hecate_intent_state{state="normal"} 1.0' in text


def test_outage_is_recorded_as_a_replayable_trace(tmp_path: Path) -> None:
    w = World(tmp_path, shutdown={"ups_mode": "cluster-only"})
    w.poll(r("OL", 1800))
    w.poll(r("OB DISCHRG", 200))
    w.poll(CommError("connection refused"))
    w.poll(r("OB DISCHRG", 150))
    trace = w.daemon.recorder.current
    assert trace is not None
    points = load_trace(trace)
    assert [p.t for p in points] == [0.0, 5.0, 10.0]
    assert isinstance(points[1].poll, CommError)


def test_daemon_started_after_a_shutdown_waits_for_the_gate(tmp_path: Path) -> None:
    w0 = World(tmp_path)
    StateStore(w0.config.state_dir).set_intent(IntentState.SHUTTING_DOWN, reason="x", run_id="r")
    StateStore(w0.config.state_dir).set_intent(
        IntentState.SHUTDOWN_COMPLETE, reason="x", run_id="r"
    )
    w = World(tmp_path)
    assert w.poll(r("OL", 900, 80)) == []
    assert w.poll(r("OL", 900, 80), dt=11) == ["RunStartup"]


def test_new_outage_during_startup_cancels_it_and_shuts_down(tmp_path: Path) -> None:
    w = World(tmp_path)
    release = threading.Event()
    started = threading.Event()
    original_run = w.ansible.run

    def slow_run(request, *, on_event=None, cancel=None):  # type: ignore[no-untyped-def]
        if request.playbook == "start_servers":
            started.set()
            assert cancel is not None
            cancel.wait(10)  # a long start, until cancelled
        return original_run(request, on_event=on_event, cancel=cancel)

    w.ansible.run = slow_run  # type: ignore[method-assign]
    w.poll(r("OB DISCHRG", 100))
    w.poll(r("OB DISCHRG", 100))  # shutdown done
    w.clock.t += 5
    w.reading = r("OL", 900, 80)
    w.daemon.poll_once()
    w.clock.t += 11
    assert [type(a).__name__ for a in w.daemon.poll_once()] == ["RunStartup"]
    assert started.wait(5)
    w.clock.t += 5
    w.reading = r("OB DISCHRG", 800, 70)
    actions = [type(a).__name__ for a in w.daemon.poll_once()]
    assert actions == ["CancelStartup", "RunShutdown"]
    assert w.daemon.wait_idle(10)  # the startup stops (nobody waited for it in the poll)
    w.clock.t += 5
    w.daemon.poll_once()  # the owed shutdown starts now that the worker is free
    assert w.daemon.wait_idle(10)
    release.set()
    outcomes = [(rep.kind, rep.outcome.value) for rep in w.daemon.reports]
    assert outcomes == [("shutdown", "success"), ("startup", "aborted"), ("shutdown", "success")]
    assert StateStore(w.config.state_dir).read_intent().state is IntentState.SHUTDOWN_COMPLETE


def test_comm_errors_never_crash_and_are_counted(tmp_path: Path) -> None:
    w = World(tmp_path)
    for _ in range(5):
        assert w.poll(CommError("driver not connected", "driver_down")) == []
    text = render_text(w.daemon.metrics.registry).decode()
    assert 'hecate_nut_errors_total{kind="driver_down",ups="pyrphoros"} 5.0' in text
    assert 'hecate_ups_readable{ups="pyrphoros"} 0.0' in text


def test_daemon_refreshes_the_bootstrap_cache_while_healthy(tmp_path: Path) -> None:
    manifest = tmp_path / "gitea.yaml"
    manifest.write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: gitea, namespace: gitea}\n"
    )
    w = World(
        tmp_path,
        startup={
            "gitea_bootstrap_manifests": [str(manifest)],
            "bootstrap_cache_refresh_seconds": 60,
        },
    )
    cache = w.config.state_dir / "bootstrap-cache" / "gitea.yaml"
    w.poll(r("OB DISCHRG", 1500))  # on battery: never refreshed during an outage
    assert w.daemon._cache_thread is None
    w.poll(r("OL", 1800))
    assert w.daemon._cache_thread is not None
    w.daemon._cache_thread.join(10)
    assert cache.exists()
    first = w.daemon._cache_thread
    w.poll(r("OL", 1800))  # 5 s later: not due yet
    assert w.daemon._cache_thread is first


def test_power_back_during_the_shutdown_still_starts_up_afterwards(tmp_path: Path) -> None:
    w = World(tmp_path)
    release, entered = threading.Event(), threading.Event()
    original_run = w.ansible.run

    def slow_run(request, *, on_event=None, cancel=None):  # type: ignore[no-untyped-def]
        if request.playbook == "stop_servers":
            entered.set()
            release.wait(10)
        return original_run(request, on_event=on_event, cancel=cancel)

    w.ansible.run = slow_run  # type: ignore[method-assign]
    w.clock.t += 5
    w.reading = r("OB DISCHRG", 100)
    w.daemon.poll_once()
    w.clock.t += 5
    assert [type(a).__name__ for a in w.daemon.poll_once()] == ["RunShutdown"]
    assert entered.wait(5)
    for _ in range(3):  # mains back and stable while the shutdown still runs
        w.clock.t += 11
        w.reading = r("OL", 900, 90)
        assert w.daemon.poll_once() == []
    release.set()
    assert w.daemon.wait_idle(10)
    assert w.poll(r("OL", 900, 90)) == ["RunStartup"]
    assert StateStore(w.config.state_dir).read_intent().state is IntentState.NORMAL


def test_a_shutdown_blocked_by_the_lock_is_retried(tmp_path: Path) -> None:
    w = World(tmp_path)
    with exclusive_lock(w.config.state_dir, "startup from hecate-bootstrap"):
        w.poll(r("OB DISCHRG", 100))
        assert w.poll(r("OB DISCHRG", 100)) == ["RunShutdown"]
        assert StateStore(w.config.state_dir).read_intent().state is IntentState.NORMAL
    w.poll(r("OB DISCHRG", 100), dt=11)  # the owed shutdown runs once the lock is free
    assert StateStore(w.config.state_dir).read_intent().state is IntentState.SHUTDOWN_COMPLETE


def test_a_restart_resumes_an_interrupted_startup(tmp_path: Path) -> None:
    w0 = World(tmp_path)
    store = StateStore(w0.config.state_dir)
    store.set_intent(IntentState.STARTUP_IN_PROGRESS, reason="boot", run_id="startup-x")
    w = World(tmp_path)
    w.poll(r("OL", 900, 90))
    assert w.poll(r("OL", 900, 90), dt=11) == ["RunStartup"]
    assert store.read_intent().state is IntentState.NORMAL


def test_a_reader_crash_is_a_comm_error(tmp_path: Path) -> None:
    w = World(tmp_path)

    def broken() -> Poll:
        raise RuntimeError("password file vanished")

    w.daemon.reader = broken
    assert w.poll(r("OL", 900)) == []
    text = render_text(w.daemon.metrics.registry).decode()
    assert 'hecate_nut_errors_total{kind="error",ups="pyrphoros"} 1.0' in text
