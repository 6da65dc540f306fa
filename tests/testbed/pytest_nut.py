"""Pytest fixtures for the NUT test server: real upsd + dummy-ups (tests/testbed/nut.py).

- `nut_server`: one server with one UPS, `pyrphoros`, on mains (OL, runtime 1800 s, charge 100 %).
- `nut_server_factory`: call it for more servers (several UPSes, real device dumps, several
  servers at once); every server it made is closed when the test ends.

Both always stop every process they started, whether the test passes or fails. They need Debian's
`nut-server` package (/lib/nut/upsd, /lib/nut/dummy-ups).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import pytest

from tests.testbed.nut import DEFAULT_UPS, DUMMY_UPS, UPSD, NutServer


class NutServerFactory(Protocol):
    def __call__(
        self,
        ups: Sequence[str] = (),
        devices: Mapping[str, Path | Mapping[str, str]] | None = None,
        *,
        port: int | None = None,
    ) -> NutServer: ...


def _require_nut() -> None:
    missing = [str(path) for path in (UPSD, DUMMY_UPS) if not path.exists()]
    if missing:
        pytest.fail(
            f"the NUT test server needs {', '.join(missing)}:"
            " apt-get install nut-server nut-client",
            pytrace=False,
        )


@pytest.fixture
def nut_server_factory() -> Iterator[NutServerFactory]:
    """Make NutServers; each one is closed (processes killed, temp dir removed) at teardown."""
    _require_nut()
    servers: list[NutServer] = []

    def make(
        ups: Sequence[str] = (),
        devices: Mapping[str, Path | Mapping[str, str]] | None = None,
        *,
        port: int | None = None,
    ) -> NutServer:
        server = NutServer(ups=ups, devices=devices, port=port)
        servers.append(server)
        return server

    try:
        yield make
    finally:
        for server in reversed(servers):
            server.close()


@pytest.fixture
def nut_server(nut_server_factory: NutServerFactory) -> NutServer:
    """A running upsd serving one UPS, `pyrphoros`, on mains: OL, runtime 1800 s, charge 100 %."""
    return nut_server_factory([DEFAULT_UPS])
