"""Fixtures shared by the integration tests that start a daemon process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.daemon_process import SilentSsh


@pytest.fixture
def silent_ssh() -> Iterator[SilentSsh]:
    """A port that accepts TCP connections and never answers: a node whose SSH hangs."""
    sink = SilentSsh()
    try:
        yield sink
    finally:
        sink.close()
