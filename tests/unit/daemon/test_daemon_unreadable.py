"""A UPS never readable since the daemon started is a WARNING (journal and systemd Status=)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from hecate.adapters.metrics.exposition import render_text
from hecate.adapters.systemd.notify import SystemdNotifier
from hecate.config.model import parse_config
from hecate.core.readings import CommError, Poll, UpsReading, parse_status
from hecate.daemon.service import Daemon


class RecordingNotifier(SystemdNotifier):
    def __init__(self) -> None:
        super().__init__(address=None)
        self.statuses: list[str] = []

    def status(self, text: str) -> bool:
        self.statuses.append(text)
        return True


def make(tmp_path: Path, polls: list[Poll]) -> tuple[Daemon, RecordingNotifier]:
    config = parse_config(
        {
            "state_dir": str(tmp_path / "state"),
            "nodes": {"servers": ["s1"]},
            "ups": {"target": "pyrphros@127.0.0.1:3493"},
        }
    )
    notifier = RecordingNotifier()
    readings = iter(polls)
    daemon = Daemon(config, reader=lambda: next(readings), notifier=notifier, clock=lambda: 1000.0)
    return daemon, notifier


UNKNOWN = CommError(
    "pyrphros@127.0.0.1:3493: upsd serves no UPS named 'pyrphros'; it serves: pyrphoros",
    "unknown_ups",
)


def test_never_readable_warns_once_per_error_in_the_journal_and_status(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    refused = CommError("connection refused (is upsd running?)", "unreachable")
    daemon, notifier = make(tmp_path, [UNKNOWN, UNKNOWN, UNKNOWN, refused])
    with caplog.at_level(logging.WARNING, logger="hecate.daemon.service"):
        for _ in range(4):
            daemon.poll_once()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2  # not once per poll: once per distinct error
    assert "NOT protected" in warnings[0].getMessage()
    assert "it serves: pyrphoros" in warnings[0].getMessage()
    assert notifier.statuses[0].startswith("WARNING: UPS never readable")
    assert "connection refused" in notifier.statuses[-1]
    text = render_text(daemon.metrics.registry).decode()
    assert 'hecate_ups_readable{ups="pyrphros"} 0.0' in text  # the misspelt name it was given


def test_a_first_good_reading_clears_it_and_later_losses_are_no_never_readable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = UpsReading(parse_status("OL"), 1800, 100)
    daemon, notifier = make(tmp_path, [UNKNOWN, good, UNKNOWN])
    with caplog.at_level(logging.INFO, logger="hecate.daemon.service"):
        for _ in range(3):
            daemon.poll_once()
    assert notifier.statuses == [
        f"WARNING: UPS never readable, not protected: {UNKNOWN.message}",
        "watching the UPS",
    ]
    never = [r for r in caplog.records if "never been readable" in r.getMessage()]
    assert len(never) == 1  # the loss after a good reading is ordinary comm loss


def test_a_readable_ups_never_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = UpsReading(parse_status("OL"), 1800, 100)
    daemon, notifier = make(tmp_path, [good, good])
    with caplog.at_level(logging.WARNING, logger="hecate.daemon.service"):
        daemon.poll_once()
        daemon.poll_once()
    assert notifier.statuses == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
