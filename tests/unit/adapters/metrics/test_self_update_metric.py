"""A self-update that cannot update is visible as a metric, not only in the journal (#18)."""

from __future__ import annotations

import pytest

from hecate.adapters.metrics.exposition import render_text
from hecate.adapters.metrics.registry import Metrics
from hecate.adapters.systemd import selfupdate
from hecate.adapters.systemd.selfupdate import UpdateFailedCache


def test_failed_update_is_exported_as_one() -> None:
    metrics = Metrics(update_failed=lambda: True)
    assert "hecate_self_update_failed 1.0" in render_text(metrics.registry).decode()


def test_without_systemd_it_reads_zero() -> None:
    # this test machine runs no systemd for hecate-update: never "failed"
    text = render_text(Metrics().registry).decode()
    assert "hecate_self_update_failed 0.0" in text


def test_systemd_is_asked_at_most_once_per_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def fake() -> bool:
        calls.append(1)
        return True

    monkeypatch.setattr(selfupdate, "update_failed", fake)
    cache = UpdateFailedCache(ttl_s=3600)
    assert cache() and cache() and cache()
    assert len(calls) == 1
