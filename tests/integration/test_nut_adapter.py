"""The NUT adapter (hecate/adapters/nut/) against a real upsd + dummy-ups, and against broken
servers."""

from __future__ import annotations

import contextlib
import gc
import logging
import secrets
import socket
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hecate.adapters.nut.client import (
    AuthCheck,
    NutClient,
    UpsProtocolError,
    UpsUnknownError,
    reading_from_vars,
)
from hecate.adapters.nut.port import Ups, poll
from hecate.config.addresses import UpsTarget
from hecate.config.model import HecateConfig, parse_config
from hecate.core.readings import CommError, Poll, UpsReading
from hecate.errors import (
    ConfigError,
    UpsAuthError,
    UpsDriverDownError,
    UpsError,
    UpsTimeoutError,
    UpsUnreachableError,
)
from tests.testbed.nut import (
    DDL_DIR,
    NutServer,
    NutSession,
    leftover_processes,
    read_dump,
    spawned_pids,
)
from tests.testbed.pytest_nut import NutServerFactory

pytestmark = [
    pytest.mark.integration,
    # An unclosed socket shows up as an "unraisable" ResourceWarning: make it fail the test.
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.timeout(60),
]

UPS = "pyrphoros"


def distinct(tag: str) -> str:
    """A password no other text contains, to search for in messages and logs."""
    return f"{tag}-{secrets.token_hex(6)}"


WRONG_PASSWORD = distinct("wrong")


def client(
    server: NutServer,
    ups: str = UPS,
    *,
    user: str | None = None,
    password: str | None = None,
    timeout_s: float = 3.0,
    auth_check: AuthCheck = "primary",
) -> NutClient:
    """A client for `server` with its primary user unless told otherwise."""
    return NutClient(
        UpsTarget.parse(server.target(ups)),
        user if user is not None else server.user,
        password if password is not None else server.password,
        timeout_s=timeout_s,
        auth_check=auth_check,
    )


@pytest.fixture(autouse=True)
def _collect_garbage() -> Iterator[None]:
    """Leaked sockets held in reference cycles warn on collection: collect inside the test."""
    yield
    gc.collect()


@pytest.fixture(scope="module")
def shared() -> Iterator[NutServer]:
    """One server for the tests that only read; the last teardown checks no process is left."""
    with NutServer([UPS]) as server:
        yield server
    assert leftover_processes() == [], "test bed processes left running"


# -- readings --------------------------------------------------------------------------------


def test_reading_on_mains(shared: NutServer) -> None:
    reading = client(shared).read()
    assert reading == UpsReading(
        status=frozenset({"OL"}), runtime_s=1800.0, charge_pct=100.0, load_pct=20.0
    )
    assert reading.on_mains
    assert reading.extra["driver.name"] == "dummy-ups"
    assert poll(client(shared)) == reading


def test_outage_low_battery_and_back(nut_server: NutServer) -> None:
    ups = client(nut_server)
    assert ups.read().on_mains

    nut_server.set_reading(UPS, status="OB DISCHRG", runtime=612, charge=55.5, load=33)
    reading = ups.read()
    assert reading.status == {"OB", "DISCHRG"}
    assert (reading.runtime_s, reading.charge_pct, reading.load_pct) == (612.0, 55.5, 33.0)
    assert reading.on_battery
    assert not reading.on_mains
    assert not reading.low_battery

    nut_server.set_reading(UPS, status="OB DISCHRG LB", runtime=95, charge=9)
    reading = ups.read()
    assert reading.low_battery
    assert reading.on_battery
    assert (reading.runtime_s, reading.charge_pct, reading.load_pct) == (95.0, 9.0, 33.0)

    nut_server.set_reading(UPS, status="OL CHRG", runtime=1500, charge=70)
    reading = ups.read()
    assert reading.on_mains
    assert not reading.low_battery
    assert (reading.runtime_s, reading.charge_pct, reading.load_pct) == (1500.0, 70.0, 33.0)


def test_forced_shutdown(nut_server: NutServer) -> None:
    ups = client(nut_server)
    nut_server.set_reading(UPS, status="FSD OB LB")  # as a driver reports it
    assert ups.read().forced_shutdown

    nut_server.set_reading(UPS, status="OB LB")
    assert not ups.read().forced_shutdown

    # As upsmon primaries set it: the FSD command; upsd then adds the flag itself.
    with NutSession(nut_server.host, nut_server.port) as session:
        session.login(nut_server.user, nut_server.password)
        assert session.command(f"PRIMARY {UPS}") == "OK PRIMARY-GRANTED"
        assert session.command(f"FSD {UPS}") == "OK FSD-SET"
    reading = ups.read()
    assert reading.forced_shutdown
    assert reading.status >= {"OB", "LB"}


def test_garbage_values_from_the_ups(nut_server: NutServer) -> None:
    nut_server.set_reading(UPS, status="OB DISCHRG", runtime="36:00", charge=255, load="-3")
    reading = client(nut_server).read()
    assert reading.on_battery
    assert (reading.runtime_s, reading.charge_pct, reading.load_pct) == (None, None, None)


# -- communication failures ------------------------------------------------------------------


def test_driver_down(nut_server: NutServer) -> None:
    ups = client(nut_server)
    nut_server.set_reading(UPS, status="OB DISCHRG", runtime=300)
    nut_server.stop_driver(UPS)
    with pytest.raises(UpsDriverDownError, match="DRIVER-NOT-CONNECTED"):
        ups.read()
    polled = poll(ups)
    assert isinstance(polled, CommError)
    assert polled.kind == "driver_down"

    nut_server.start_driver(UPS)
    reading = ups.read()
    assert reading.on_battery  # the reading survives the driver restart
    assert reading.runtime_s == 300.0


def test_upsd_down(nut_server: NutServer) -> None:
    ups = client(nut_server)
    nut_server.stop_upsd()
    started = time.monotonic()
    with pytest.raises(UpsUnreachableError, match="refused"):
        ups.read()
    assert time.monotonic() - started < 1.0
    polled = poll(ups)
    assert isinstance(polled, CommError)
    assert polled.kind == "unreachable"

    nut_server.start_upsd()
    assert ups.read().on_mains


def test_wrong_password(shared: NutServer) -> None:
    secret = distinct("wrong")
    with pytest.raises(UpsAuthError, match="ACCESS-DENIED") as caught:
        client(shared, password=secret).read()
    assert secret not in "".join(traceback.format_exception(caught.value))
    polled = poll(client(shared, password=secret))
    assert isinstance(polled, CommError)
    assert polled.kind == "auth"
    assert secret not in polled.message


def test_unknown_user(shared: NutServer) -> None:
    with pytest.raises(UpsAuthError, match="nobody"):
        client(shared, user="nobody", password=WRONG_PASSWORD).read()


def test_auth_check_modes(shared: NutServer) -> None:
    user, password = shared.secondary_user, shared.secondary_password
    # The PRIMARY check needs `upsmon primary`: a secondary is refused, with a hint.
    with pytest.raises(UpsAuthError, match="upsmon primary"):
        client(shared, user=user, password=password).read()
    # LOGIN works for any upsmon user, and still refuses a wrong password.
    assert client(shared, user=user, password=password, auth_check="login").read().on_mains
    with pytest.raises(UpsAuthError):
        client(shared, user=user, password=WRONG_PASSWORD, auth_check="login").read()
    # Without a check, upsd never looks at the password for reads.
    assert client(shared, password=WRONG_PASSWORD, auth_check="none").read().on_mains
    # Anonymous reads work too.
    assert NutClient(UpsTarget.parse(shared.target(UPS)), timeout_s=3.0).read().on_mains


@pytest.mark.parametrize("auth_check", ["primary", "login", "none"])
def test_unknown_ups(shared: NutServer, auth_check: AuthCheck) -> None:
    with pytest.raises(UpsUnknownError, match="'nosuchups'") as caught:
        client(shared, "nosuchups", auth_check=auth_check).read()
    assert isinstance(caught.value, UpsError)
    polled = poll(client(shared, "nosuchups", auth_check=auth_check))
    assert isinstance(polled, CommError)
    assert polled.kind == "unknown_ups"


def _poll_config(config: HecateConfig) -> Poll:
    """What the CLI does with a config: the one port built from it, polled."""
    return Ups.from_config(config).poll()


def test_poll_config(shared: NutServer, tmp_path: Path) -> None:
    """The CLI's entry point: target, user, password file and timeout from the config."""
    ups = {
        "target": shared.target(UPS),
        "user": shared.user,
        "password_file": str(shared.password_file),
        "timeout_seconds": 3,
    }
    polled = _poll_config(parse_config({"ups": ups}))
    assert isinstance(polled, UpsReading)
    assert polled.on_mains
    assert shared.password not in repr(Ups.from_config(parse_config({"ups": ups})).client)

    wrong = tmp_path / "wrong"
    wrong.write_text(WRONG_PASSWORD + "\n")
    wrong.chmod(0o600)
    polled = _poll_config(parse_config({"ups": {**ups, "password_file": str(wrong)}}))
    assert isinstance(polled, CommError)
    assert polled.kind == "auth"

    # Without a password file the read is anonymous (no access check).
    anonymous = {key: value for key, value in ups.items() if key != "password_file"}
    assert isinstance(_poll_config(parse_config({"ups": anonymous})), UpsReading)

    # A config problem is not a communication loss: it raises.
    with pytest.raises(ConfigError, match="password file"):
        _poll_config(parse_config({"ups": {**ups, "password_file": str(tmp_path / "none")}}))
    with pytest.raises(ConfigError, match="target"):
        _poll_config(parse_config({"ups": {**ups, "target": "pyrphoros@host:port"}}))


def test_ups_port_reads_its_password_once(nut_server: NutServer, tmp_path: Path) -> None:
    """The `Ups` port is built once with its credentials: after the password file is gone
    (or rewritten wrong), the port still reads and sends instant commands as the same user.
    The old per-command construction (`client_from_config(...).instant_command`) would raise
    ConfigError ('cannot read NUT password file') here."""
    password = tmp_path / "nut.password"
    password.write_text(nut_server.password + "\n")
    password.chmod(0o600)
    ups_config = {
        "target": nut_server.target(UPS),
        "user": nut_server.user,
        "password_file": str(password),
        "timeout_seconds": 3,
    }
    ups = Ups.from_config(parse_config({"ups": ups_config}))
    password.unlink()
    polled = ups.poll()
    assert isinstance(polled, UpsReading), polled
    assert polled.on_mains
    ups.instant_command("load.off")  # dummy-ups supports it; upsd checks the password here
    password.write_text(WRONG_PASSWORD + "\n")
    password.chmod(0o600)
    assert isinstance(ups.poll(), UpsReading)  # still the password read at construction
    assert nut_server.password not in repr(ups)
    # A port built now reads the wrong password, and upsd says so.
    fresh = Ups.from_config(parse_config({"ups": ups_config}))
    with pytest.raises(UpsAuthError):
        fresh.instant_command("load.off")
    refused = fresh.poll()
    assert isinstance(refused, CommError)
    assert refused.kind == "auth"


def test_unresolvable_host() -> None:
    ups = NutClient(UpsTarget.parse("pyrphoros@no-such-host.invalid"), timeout_s=3.0)
    with pytest.raises(UpsUnreachableError, match="resolve"):
        ups.read()


# -- broken servers --------------------------------------------------------------------------


class _FakeServer:
    """A TCP server on 127.0.0.1 that handles each connection with `handler` in a thread."""

    def __init__(self, handler: Callable[[socket.socket, threading.Event], None]) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self._handler = handler
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            with conn, contextlib.suppress(OSError):  # the client may reset the connection
                self._handler(conn, self._stop)

    def target(self) -> str:
        return f"{UPS}@127.0.0.1:{self.port}"

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()


@pytest.fixture
def fake_server() -> Iterator[Callable[[Callable[[socket.socket, threading.Event], None]], str]]:
    servers: list[_FakeServer] = []

    def make(handler: Callable[[socket.socket, threading.Event], None]) -> str:
        servers.append(_FakeServer(handler))
        return servers[-1].target()

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def silent_target() -> Iterator[str]:
    """A port that accepts connections (the kernel completes them) and never answers."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield f"{UPS}@127.0.0.1:{listener.getsockname()[1]}"


@pytest.mark.timeout(10)
@pytest.mark.parametrize("with_credentials", [True, False])
def test_silent_server_times_out(silent_target: str, with_credentials: bool) -> None:
    secret = distinct("silent")
    user, password = ("hecate", secret) if with_credentials else (None, None)
    ups = NutClient(UpsTarget.parse(silent_target), user, password, timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(UpsTimeoutError) as caught:
        ups.read()
    assert 0.4 < time.monotonic() - started < 2.0
    assert secret not in "".join(traceback.format_exception(caught.value))
    polled = poll(ups)
    assert isinstance(polled, CommError)
    assert polled.kind == "timeout"


@pytest.mark.timeout(10)
def test_trickling_server_times_out(
    fake_server: Callable[[Callable[[socket.socket, threading.Event], None]], str],
) -> None:
    """One byte every 50 ms, never a full line: the timeout bounds the whole read."""

    def trickle(conn: socket.socket, stop: threading.Event) -> None:
        while not stop.wait(0.05):
            try:
                conn.sendall(b"O")
            except OSError:
                return

    ups = NutClient(UpsTarget.parse(fake_server(trickle)), "hecate", WRONG_PASSWORD, timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(UpsTimeoutError):
        ups.read()
    assert time.monotonic() - started < 2.0


def _hang_up_at_once(conn: socket.socket, stop: threading.Event) -> None:
    """Close without reading: the client's request makes the kernel send a reset."""


def _hang_up_after_request(conn: socket.socket, stop: threading.Event) -> None:
    """Read the request, then end the stream cleanly (FIN): the client sees end-of-file."""
    conn.recv(1024)
    conn.shutdown(socket.SHUT_WR)
    while not stop.is_set() and conn.recv(1024):
        pass


@pytest.mark.timeout(10)
@pytest.mark.parametrize("handler", [_hang_up_at_once, _hang_up_after_request])
@pytest.mark.parametrize("with_credentials", [True, False])
def test_server_hanging_up(
    fake_server: Callable[[Callable[[socket.socket, threading.Event], None]], str],
    handler: Callable[[socket.socket, threading.Event], None],
    with_credentials: bool,
) -> None:
    """A server that hangs up: an error at once (pynutclient, used before, spun forever on EOF)."""
    user, password = ("hecate", WRONG_PASSWORD) if with_credentials else (None, None)
    ups = NutClient(UpsTarget.parse(fake_server(handler)), user, password, timeout_s=3.0)
    started = time.monotonic()
    with pytest.raises(UpsUnreachableError, match="closed the connection"):
        ups.read()
    assert time.monotonic() - started < 1.0


@pytest.mark.timeout(10)
@pytest.mark.parametrize("with_credentials", [True, False])
def test_not_a_nut_server(
    fake_server: Callable[[Callable[[socket.socket, threading.Event], None]], str],
    with_credentials: bool,
) -> None:
    def http(conn: socket.socket, stop: threading.Event) -> None:
        conn.recv(1024)
        conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n\xff\xfe")

    user, password = ("hecate", WRONG_PASSWORD) if with_credentials else (None, None)
    ups = NutClient(UpsTarget.parse(fake_server(http)), user, password, timeout_s=3.0)
    with pytest.raises(UpsProtocolError, match="NUT server"):
        ups.read()
    polled = poll(ups)
    assert isinstance(polled, CommError)
    assert polled.kind == "protocol"


@pytest.mark.timeout(10)
def test_server_echoing_the_password(
    fake_server: Callable[[Callable[[socket.socket, threading.Event], None]], str],
) -> None:
    """Even a hostile server cannot get the password into an error message."""

    def echo(conn: socket.socket, stop: threading.Event) -> None:
        buffer = b""
        while not stop.is_set():
            chunk = conn.recv(1024)
            if not chunk:
                return
            buffer += chunk
            while b"\n" in buffer:
                line, _, buffer = buffer.partition(b"\n")
                answer = b"OK" if line.startswith(b"USERNAME") else b"ERR " + line
                conn.sendall(answer + b"\n")

    secret = distinct("echoed")
    ups = NutClient(UpsTarget.parse(fake_server(echo)), "hecate", secret, timeout_s=3.0)
    with pytest.raises(UpsError) as caught:
        ups.read()
    assert secret not in "".join(traceback.format_exception(caught.value))
    polled = poll(ups)
    assert isinstance(polled, CommError)
    assert secret not in polled.message


def test_password_never_logged(shared: NutServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client(shared).read()
    poll(client(shared, password=WRONG_PASSWORD))
    poll(client(shared, "nosuchups"))
    assert shared.password not in caplog.text
    assert WRONG_PASSWORD not in caplog.text
    assert shared.password not in repr(client(shared))


def _open_fds() -> int:
    return len(list(Path("/proc/self/fd").iterdir()))


def test_every_outcome_closes_its_socket(shared: NutServer, silent_target: str) -> None:
    """Sockets are closed explicitly, not by garbage collection (which would warn)."""
    refused = socket.create_server(("127.0.0.1", 0))
    refused_target = f"{UPS}@127.0.0.1:{refused.getsockname()[1]}"
    refused.close()
    clients = [
        client(shared),
        client(shared, password=WRONG_PASSWORD),
        client(shared, "nosuchups"),
        client(shared, auth_check="login"),
        NutClient(UpsTarget.parse(refused_target), timeout_s=1.0),
        NutClient(UpsTarget.parse(silent_target), timeout_s=0.2),
    ]
    for ups in clients:  # warm up (imports, resolver) before counting
        poll(ups)
    gc.collect()
    gc.disable()
    try:
        before = _open_fds()
        for _ in range(3):
            for ups in clients:
                poll(ups)
        after = _open_fds()
    finally:
        gc.enable()
    assert after == before
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


# -- several servers, several UPSes, real device dumps ---------------------------------------


def test_two_servers_at_once(nut_server_factory: NutServerFactory) -> None:
    coordinator = nut_server_factory([UPS])
    peer = nut_server_factory([UPS])
    assert coordinator.port != peer.port
    coordinator.set_reading(UPS, status="OB DISCHRG", runtime=400, charge=60)
    assert client(coordinator).read().on_battery
    assert client(peer).read().on_mains

    peer.stop_upsd()
    assert isinstance(poll(client(peer)), CommError)
    assert client(coordinator).read().runtime_s == 400.0


# UPS name -> dump file (in DDL_DIR/<vendor>/, the vendor being the file name's first part)
DUMPS = {
    # the seed's default UPS: CyberPower, vendor 0764, product 0601
    "cyberpower": "Cyber_Power_Systems__OR1500ERM1U__usbhid-ups__2.7.4.1__01.dev",
    "cyberpower-ob": "Cyber_Power_Systems__CP900AVR__usbhid-ups__2.6.5__01.dev",  # OB DISCHRG
    "cps-clock-runtime": "Cyber_Power_Systems__OP1000E__cpsups__2.0.5__01.dev",  # runtime 36:00
    "apc-ob": "APC__Smart-UPS_2200__usbhid-ups__2.7.4__01.dev",  # OB, runtime 65535 #BAD
    "apc-lb": "APC__Back-UPS_ES_750__usbhid-ups__2.6.4__01.dev",  # OL CHRG LB, runtime 0
    "tripplite-bogus": "Tripp_Lite__SU6000RT4U__usbhid-ups__2.1.0__01.dev",  # OB LB RB #BAD
    "plexus-off": "Plexus__UPS_1000V__megatec_usb__2.2.1__01.dev",  # OFF #BAD, no runtime
}


def test_real_device_dumps(nut_server_factory: NutServerFactory) -> None:
    paths = {name: DDL_DIR / file.split("__")[0] / file for name, file in DUMPS.items()}
    missing = [str(path) for path in paths.values() if not path.is_file()]
    if missing:
        pytest.skip(f"device dumps not found: {missing}")
    server = nut_server_factory(devices=dict(paths))
    for name, path in paths.items():
        expected = reading_from_vars(read_dump(path))
        reading = client(server, name).read()
        seen = (reading.status, reading.runtime_s, reading.charge_pct, reading.load_pct)
        wanted = (expected.status, expected.runtime_s, expected.charge_pct, expected.load_pct)
        assert seen == wanted, name
    assert client(server, "apc-ob").read().on_battery
    assert client(server, "apc-lb").read().low_battery
    assert client(server, "cps-clock-runtime").read().runtime_s is None  # "36:00"
    assert client(server, "plexus-off").read().runtime_s is None  # not reported

    # A dump's UPS changes like any other, also in variables the model never reported.
    server.set_reading("plexus-off", status="OB DISCHRG", runtime=120)
    reading = client(server, "plexus-off").read()
    assert reading.on_battery
    assert reading.runtime_s == 120.0


def test_no_test_bed_process_left_behind(shared: NutServer) -> None:
    """Every server but the module's shared one has stopped all its processes."""
    assert spawned_pids(), "the test bed started nothing?"
    assert leftover_processes() == shared.pids()
