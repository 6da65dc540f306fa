"""The strict NUT reader against a real upsd + dummy-ups: what upsd really sends passes.

The adversarial answers a real upsd never gives are in tests/unit/adapters/nut/test_nut_answers.py.
"""

from __future__ import annotations

import pytest

from hecate.adapters.nut.client import NutClient, UpsProtocolError
from hecate.config.addresses import UpsTarget
from tests.testbed.nut import NutServer
from tests.testbed.pytest_nut import NutServerFactory

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

UPS = "pyrphoros"


def client(server: NutServer, ups: str = UPS) -> NutClient:
    return NutClient(
        UpsTarget.parse(server.target(ups)), server.user, server.password, timeout_s=3.0
    )


def test_escaped_values_and_get_var(nut_server_factory: NutServerFactory) -> None:
    """upsd escapes '"' and '\\' in values (and '#', which dummy-ups cannot carry: covered by
    tests/unit/adapters/nut/test_nut_answers.py): the strict reader takes them back exactly, in
    LIST VAR
    and GET VAR alike; a variable the UPS lacks is upsd's refusal, not a value."""
    tricky = 'rack "A" \\ B'
    server = nut_server_factory(devices={UPS: {"ups.status": "OL", "ups.id": tricky}})
    ups = client(server)
    assert ups.read().extra["ups.id"] == tricky
    assert ups.read_vars()["ups.id"] == tricky.encode()
    assert ups.get_var("ups.id") == tricky.encode()
    assert ups.get_var("ups.status") == b"OL"
    with pytest.raises(UpsProtocolError, match="VAR-NOT-SUPPORTED"):
        ups.get_var("battery.voltage.nominal")


def test_ups_name_in_another_case(nut_server: NutServer) -> None:
    """upsd finds a UPS whatever the case of its name and repeats the name as asked in every
    line: the strict check (every line names the UPS asked for) holds for it."""
    assert client(nut_server, "PyrPhoros").read().on_mains
    assert client(nut_server).read().on_mains
