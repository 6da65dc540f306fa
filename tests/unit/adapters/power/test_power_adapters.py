"""The power adapters without a BMC: what reaches ipmitool, SSH's answer, the magic packet, the
methods that have no BMC. (Against real BMCs: tests/integration/test_power_bmc.py.)"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hecate.adapters.power.ipmi import IpmiDriver
from hecate.adapters.power.none import NoneDriver
from hecate.adapters.power.port import ssh_target
from hecate.adapters.power.ssh_answer import SshTarget, ssh_answers
from hecate.adapters.power.wol import WolDriver
from hecate.config.model import parse_config
from hecate.config.power import IpmiPower, WolPower
from hecate.core.power import NO_BMC_OFF, PowerResult, mac_in_packet

SECRET = "s3cret-Pa55"  # noqa: S105 - a test password


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "bmc-pass"
    path.write_text(SECRET + "\n")
    path.chmod(0o600)
    return path


def _ipmi(password_file: Path, address: str = "127.0.0.1:1623") -> IpmiPower:
    return IpmiPower.model_validate(
        {"method": "ipmi", "address": address, "user": "admin", "password_file": password_file}
    )


def _fake_ipmitool(tmp_path: Path, body: str) -> str:
    """A stand-in for ipmitool (only to see what it is given: argv and environment)."""
    script = tmp_path / "ipmitool"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return str(script)


def test_the_password_reaches_ipmitool_through_its_environment_never_its_arguments(
    tmp_path: Path, password_file: Path
) -> None:
    seen = tmp_path / "seen"
    tool = _fake_ipmitool(
        tmp_path, f'echo "$@" > {seen}; echo "$IPMI_PASSWORD" >> {seen}; echo "Chassis Power is on"'
    )
    reading = IpmiDriver("titan-0", _ipmi(password_file), ipmitool=tool).status()
    assert (reading.state, reading.reason) == ("on", "BMC 127.0.0.1:1623 says on")
    argv, env_password = seen.read_text().splitlines()
    assert env_password == SECRET
    assert SECRET not in argv
    words = argv.split()
    assert "-E" in words and "-P" not in words and "-f" not in words
    assert words[words.index("-C") + 1] == "17"  # IPMI 2.0's SHA-256 suite by default
    assert words[words.index("-I") + 1] == "lanplus"
    assert words[words.index("-p") + 1] == "1623"
    assert words[-3:] == ["chassis", "power", "status"]


@pytest.mark.parametrize(("hard", "word"), [(False, "soft"), (True, "off")])
def test_off_is_soft_unless_hard(
    tmp_path: Path, password_file: Path, hard: bool, word: str
) -> None:
    seen = tmp_path / "seen"
    tool = _fake_ipmitool(tmp_path, f'echo "$@" > {seen}')
    result = IpmiDriver("titan-0", _ipmi(password_file), ipmitool=tool).act(
        "hard_off" if hard else "off"
    )
    assert result.ok
    assert seen.read_text().split()[-3:] == ["chassis", "power", word]


def test_a_password_ipmitool_echoes_is_masked(tmp_path: Path, password_file: Path) -> None:
    tool = _fake_ipmitool(tmp_path, 'echo "bad password $IPMI_PASSWORD" >&2; exit 1')
    reading = IpmiDriver("titan-0", _ipmi(password_file), ipmitool=tool).status()
    assert reading.state == "unknown"
    assert SECRET not in reading.reason


def test_a_hanging_ipmitool_is_bounded(tmp_path: Path, password_file: Path) -> None:
    tool = _fake_ipmitool(tmp_path, "exec sleep 30")
    started = time.monotonic()
    reading = IpmiDriver("titan-0", _ipmi(password_file), ipmitool=tool, timeout=0.5).status()
    assert time.monotonic() - started < 5
    assert reading.state == "unknown"
    assert reading.reason == "BMC 127.0.0.1:1623 did not answer within 0.5s"


def test_a_missing_ipmitool_says_how_to_install_it(password_file: Path) -> None:
    driver = IpmiDriver("titan-0", _ipmi(password_file), ipmitool="/nonexistent/ipmitool")
    assert "apt install ipmitool" in driver.status().reason


def test_a_missing_password_file_is_the_reason_not_an_exception(tmp_path: Path) -> None:
    reading = IpmiDriver("titan-0", _ipmi(tmp_path / "absent")).status()
    assert reading.state == "unknown"
    assert "BMC password file" in reading.reason and "absent" in reading.reason


def test_a_password_file_holding_a_nul_byte_is_the_reason_not_an_exception(
    tmp_path: Path,
) -> None:
    """An environment variable cannot hold a NUL: subprocess raised ValueError, which ended
    `hecate power status` for every node with a traceback."""
    secret = tmp_path / "bmc-pass"
    secret.write_bytes(b"s3cret\x00Pa55\n")
    secret.chmod(0o600)
    tool = _fake_ipmitool(tmp_path, 'echo "Chassis Power is on"')
    driver = IpmiDriver("titan-0", _ipmi(secret), ipmitool=tool)
    reading = driver.status()
    assert reading.state == "unknown"
    assert "NUL" in reading.reason and str(secret) in reading.reason
    assert "s3cret" not in reading.reason
    assert not driver.act("on").ok


@pytest.fixture
def tcp_server() -> Iterator[tuple[socket.socket, list[bytes]]]:
    """A listening socket on 127.0.0.1 that sends each connection the first banner queued."""
    server = socket.create_server(("127.0.0.1", 0))
    banners: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            if banners and banners[0]:
                conn.sendall(banners[0])
            threading.Timer(2.0, conn.close).start()

    threading.Thread(target=serve, daemon=True).start()
    yield server, banners
    server.close()


def _target(server: socket.socket) -> SshTarget:
    return SshTarget("127.0.0.1", server.getsockname()[1])


def test_ssh_answers_only_with_an_ssh_banner(
    tcp_server: tuple[socket.socket, list[bytes]],
) -> None:
    server, banners = tcp_server
    banners.append(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
    assert ssh_answers(_target(server), 2) == (True, f"SSH answers at {_target(server)}")
    banners[0] = b"HTTP/1.1 400 Bad Request\r\n"
    answers, seen = ssh_answers(_target(server), 2)
    assert not answers and "is no SSH server" in seen


def test_a_silent_port_is_bounded(tcp_server: tuple[socket.socket, list[bytes]]) -> None:
    server, _ = tcp_server  # accepts, never speaks
    started = time.monotonic()
    answers, seen = ssh_answers(_target(server), 0.3)
    assert not answers and "did not answer within 0.3s" in seen
    assert time.monotonic() - started < 2


def test_a_closed_port_says_refused() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    answers, seen = ssh_answers(SshTarget("127.0.0.1", port), 1)
    assert not answers and "Connection refused" in seen


def test_ssh_target_is_ssh_node_hosts_or_the_name_with_ssh_port() -> None:
    config = parse_config(
        {
            "ups": {"target": "u@127.0.0.1"},
            "nodes": {"servers": ["titan-0"], "agents": ["titan-1", "titan-2"]},
            "ssh_port": 2222,
            "ssh_node_hosts": {"titan-0": "127.0.0.1:2200", "titan-1": "127.0.0.2"},
        }
    )
    assert ssh_target(config, "titan-0") == SshTarget("127.0.0.1", 2200)
    assert ssh_target(config, "titan-1") == SshTarget("127.0.0.2", 2222)
    assert ssh_target(config, "titan-2") == SshTarget("titan-2", 2222)


def test_wake_on_lan_sends_the_magic_packet_with_the_mac() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.settimeout(2)
        config = WolPower.model_validate(
            {
                "method": "wol",
                "mac": "AA-BB-CC-DD-EE-02",
                "broadcast": "127.0.0.1",
                "port": listener.getsockname()[1],
            }
        )
        driver = WolDriver("titan-1", config, SshTarget("127.0.0.1", 1), 0.5)
        result = driver.act("on")
        assert result.ok, result.reason
        assert mac_in_packet(listener.recv(2048)) == "aa:bb:cc:dd:ee:02"
        assert driver.act("off") == PowerResult("titan-1", "off", False, NO_BMC_OFF)
        reading = driver.status()
        assert reading.state == "unknown"
        assert "Wake-on-LAN cannot read a power state" in reading.reason


def test_a_node_without_out_of_band_power_cannot_be_switched() -> None:
    driver = NoneDriver("titan-2", SshTarget("127.0.0.1", 1), 0.5)
    on = driver.act("on")
    assert not on.ok and "method none" in on.reason
    assert driver.act("off").reason == NO_BMC_OFF
    assert driver.status().state == "unknown"


def test_a_resolver_that_hangs_is_bounded_too(monkeypatch: pytest.MonkeyPatch) -> None:
    # A mock only here: no real resolver can be made to hang on 127.0.0.1. getaddrinfo has no
    # timeout of its own; the check's bound must hold through it (the power review's finding).
    def hang(*_args: object, **_kwargs: object) -> list[object]:
        time.sleep(3)
        raise OSError("too late")

    monkeypatch.setattr(socket, "getaddrinfo", hang)
    started = time.monotonic()
    answers, seen = ssh_answers(SshTarget("titan-0", 22), 0.3)
    assert not answers and "did not answer within 0.3s" in seen
    assert time.monotonic() - started < 1.5
