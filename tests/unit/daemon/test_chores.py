"""Background chores never die of an exception; each failure counted, each run of them logged
once (hecate/daemon/chore_watch.py), in the daemon as wired (hecate/daemon/service.py)."""

from __future__ import annotations

import logging
import threading
from contextlib import nullcontext
from pathlib import Path

import pytest

from hecate.adapters.metrics.exposition import render_text
from hecate.adapters.metrics.registry import BACKGROUND_CHORES, Metrics
from hecate.adapters.statedir import unsaved
from hecate.config.model import parse_config
from hecate.core.readings import UpsReading, parse_status
from hecate.daemon.background import forward_trigger
from hecate.daemon.chore_watch import ChoreWatch
from hecate.daemon.service import Daemon


def failures(metrics: Metrics, chore: str) -> float:
    value = metrics.registry.get_sample_value("hecate_background_failures_total", {"chore": chore})
    assert value is not None
    return value


def test_every_chore_is_counted_from_zero() -> None:
    metrics = Metrics()
    assert {c: failures(metrics, c) for c in BACKGROUND_CHORES} == dict.fromkeys(
        BACKGROUND_CHORES, 0.0
    )


def test_a_chore_that_keeps_failing_is_logged_once_counted_each_time_and_recovers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics()
    watch = ChoreWatch(metrics)
    with caplog.at_level(logging.DEBUG, logger="hecate.daemon"):
        for _ in range(5):
            watch.outcome("warmup", OSError(30, "Read-only file system", "/var/lib/hecate/x"))
        watch.outcome("warmup", None)
        watch.outcome("warmup", OSError(28, "No space left on device"))
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage().split(":")[0] for r in errors] == [
        "background chore warmup failed",
        "background chore warmup failed",  # a new run of failures, after it worked again
    ]
    assert "Read-only file system (/var/lib/hecate/x)" in errors[0].getMessage()
    assert any("warmup works again" in r.getMessage() for r in caplog.records)
    assert failures(metrics, "warmup") == 6.0
    assert watch.failing() == {"warmup": "No space left on device"}


def test_a_guarded_thread_never_dies_of_its_exception() -> None:
    metrics = Metrics()
    watch = ChoreWatch(metrics)
    died: list[threading.ExceptHookArgs] = []
    old, threading.excepthook = threading.excepthook, died.append
    try:

        def broken() -> None:
            raise KeyError("a bug")

        thread = threading.Thread(target=watch.guarded("probe", broken))
        thread.start()
        thread.join(5)
    finally:
        threading.excepthook = old
    assert died == []
    assert failures(metrics, "probe") == 1.0
    assert "KeyError" in watch.failing()["probe"]


def test_the_daemons_warmup_on_a_broken_state_dir_is_a_counted_chore_failure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The real port, the real state dir: its run dir cannot be made (a file is in the way, as
    a full or read-only disk refuses a mkdir), three warm-ups in a row."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "ansible-artifacts").write_text("in the way\n")
    # and its fallback under the runtime directory too (a broken state disk alone no longer
    # stops a run: it goes there, hecate.adapters.ansible.rundir)
    (unsaved.runtime_dir() / "ansible").write_text("in the way\n")
    config = parse_config(
        {
            "state_dir": str(state),
            "nodes": {"servers": ["s1"]},
            "ssh_node_hosts": {"s1": "127.0.0.1:9"},
            "ups": {"target": "pyrphoros@127.0.0.1:9"},
        }
    )
    on_battery = UpsReading(parse_status("OB DISCHRG"), 1800, 90)
    daemon = Daemon(config, reader=lambda: on_battery)
    assert daemon.warmer is not None
    with caplog.at_level(logging.INFO, logger="hecate.daemon"):
        for now in range(3):
            assert daemon.warmer.warm(float(now), force=True)
            daemon.warmer.join(30)
    # the state disk's own line (hecate.statefiles, logged once) is not the chore's
    errors = [
        r for r in caplog.records if r.levelno >= logging.WARNING and r.name != "hecate.statefiles"
    ]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert "cannot make a run dir in" in errors[0].getMessage()
    assert failures(daemon.metrics, "warmup") == 3.0
    text = render_text(daemon.metrics.registry).decode()
    assert 'hecate_background_failures_total{chore="warmup"} 3.0' in text


def test_a_forward_that_breaks_is_a_failed_forward_never_a_lost_trigger() -> None:
    """The supervisor hears ForwardFailed (it retries, or falls back to a local shutdown)."""

    class Broken:
        def send_trigger(self, peer: str, reason: str) -> str:
            raise ValueError("a bug in the client")

    metrics = Metrics(role="peer")
    sent = forward_trigger(Broken(), "peer-1", "LB", metrics)  # type: ignore[arg-type]
    assert sent is False
    assert failures(metrics, "forward") == 1.0


def test_an_outage_trace_that_cannot_be_written_is_logged_once_not_at_every_poll(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "traces").write_text("in the way\n")  # as a full or read-only disk refuses it
    config = parse_config(
        {
            "state_dir": str(state),
            "nodes": {"servers": ["s1"]},
            "ups": {"target": "pyrphoros@127.0.0.1:9"},
        }
    )
    on_battery = UpsReading(parse_status("OB DISCHRG"), 1800, 90)
    daemon = Daemon(config, reader=lambda: on_battery, context_factory=lambda _c: nullcontext())  # type: ignore[arg-type,return-value]
    with caplog.at_level(logging.INFO, logger="hecate.daemon"):
        for _ in range(5):
            daemon.poll_once()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 1 and "background chore trace failed" in errors[0], errors
    assert failures(daemon.metrics, "trace") == 5.0
