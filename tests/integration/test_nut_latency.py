"""A UPS read against a real upsd (dummy-ups) is not held back by TCP's delayed ACK.

upsd writes a list's `BEGIN LIST VAR` line on its own and the rest only once that line is
acknowledged (Nagle); a client that lets its kernel delay the ACK waits about 40 ms for every
LIST VAR (`upsc` does). The session asks for immediate ACKs (hecate.adapters.nut.session), so
`hecate status` and every daemon poll get their reading in a few milliseconds."""

from __future__ import annotations

import statistics
import time

import pytest

from hecate.adapters.nut.client import NutClient
from hecate.config.addresses import UpsTarget
from tests.testbed.nut import NutServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def test_a_reading_takes_milliseconds_not_a_delayed_ack(nut_server: NutServer) -> None:
    nut = NutClient(
        UpsTarget.parse(nut_server.target()), nut_server.user, nut_server.password, timeout_s=3.0
    )
    nut.read()  # the driver's first answer is in
    times = []
    for _ in range(7):
        start = time.monotonic()
        nut.read()  # a session each: connect, USERNAME, PASSWORD, PRIMARY, LIST VAR, LOGOUT
        times.append(time.monotonic() - start)
    # a delayed ACK is at least 40 ms (Linux's minimum): the median of 7 stays far below it
    assert statistics.median(times) < 0.02, times
