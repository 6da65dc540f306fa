"""The one grammar of addresses and names: accepted and refused forms, each with its reason."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hecate.config.addresses import (
    Address,
    AddressError,
    HostPort,
    ListenAddress,
    NodeName,
    UpsTarget,
    parse_host,
)


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("titan-0", "titan-0", None),
        ("10.0.0.1", "10.0.0.1", None),
        ("10.0.0.1:22", "10.0.0.1", 22),
        ("node.example.org:65535", "node.example.org", 65535),
        ("[fd00::1]:2222", "fd00::1", 2222),
        ("[fd00::1]", "fd00::1", None),
        ("fd00::1", "fd00::1", None),  # bare IPv6: no port possible
        ("Titan_0.local.", "Titan_0.local.", None),  # any case, '_', a final dot
    ],
)
def test_host_port_accepts(text: str, host: str, port: int | None) -> None:
    parsed = HostPort.parse(text)
    assert (parsed.host, parsed.port) == (host, port)
    assert parsed == text  # it stays the text the operator wrote


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("10.0.0.1:99999", "port above 65535"),
        ("10.0.0.1:0", "port 0 cannot be connected to"),
        ("10.0.0.1:ssh", "service names are not ports"),
        ("10.0.0.1:+22", "a sign is not a digit"),
        ("10.0.0.1:\uff12\uff12", "fullwidth digits are not ASCII"),
        ("[fd00::1:22", "unclosed bracket"),
        ("[fd00::1]x", "junk after the bracket"),
        ("[not-v6]:22", "brackets hold IPv6 only"),
        ("[]:22", "empty brackets"),
        (":22", "empty host"),
        ("999.1.1.1", "numeric last label must be a real IPv4 address"),
        ("10.0.0", "numeric last label must be a real IPv4 address"),
        ("-oProxyCommand=x", "option injection: labels cannot start with '-'"),
        ("host name", "space"),
        ("a..b", "empty label"),
        ("h\u00e9", "non-ASCII host"),
        ("x" * 64, "label longer than 63"),
        ("", "empty"),
        ("a\x00b", "NUL byte"),
    ],
)
def test_host_port_refuses(text: str, why: str) -> None:
    with pytest.raises(AddressError):
        HostPort.parse(text)


@pytest.mark.parametrize(
    ("text", "ups", "host", "port"),
    [
        ("pyrphoros@localhost", "pyrphoros", "localhost", 3493),
        ("ups@127.0.0.1:13493", "ups", "127.0.0.1", 13493),
        ("ups@[::1]:3494", "ups", "::1", 3494),
        ("ups@::1", "ups", "::1", 3493),
    ],
)
def test_ups_target_accepts(text: str, ups: str, host: str, port: int) -> None:
    parsed = UpsTarget.parse(text)
    assert (parsed.ups, parsed.host, parsed.port) == (ups, host, port)


@pytest.mark.parametrize(
    "text",
    ["ups@host:abc", "a@b@c", "u ps@host", "@host", "ups@", "ups", "ups@host:0", "ups@-x"],
)
def test_ups_target_refuses(text: str) -> None:
    with pytest.raises(AddressError):
        UpsTarget.parse(text)


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [(":9560", "", 9560), ("127.0.0.1:0", "127.0.0.1", 0), ("[::1]:9560", "::1", 9560)],
)
def test_listen_accepts(text: str, host: str, port: int) -> None:
    parsed = ListenAddress.parse(text)
    assert (parsed.host, parsed.port) == (host, port)


@pytest.mark.parametrize(
    "text", ["999.1.1.1:9560", "nope", "9560", ":65536", ":-1", "[::1:9560", "host:"]
)
def test_listen_refuses(text: str) -> None:
    with pytest.raises(AddressError):
        ListenAddress.parse(text)


@pytest.mark.parametrize(
    ("a", "b", "clash"),
    [
        (":9560", "127.0.0.1:9560", True),  # the wildcard covers every interface
        ("127.0.0.1:9560", "127.0.0.1:9560", True),
        ("127.0.0.1:9560", "10.0.0.1:9560", False),  # different interfaces
        (":9560", ":9561", False),
        (":0", ":0", False),  # two free ports never clash
    ],
)
def test_listen_overlap(a: str, b: str, clash: bool) -> None:
    assert ListenAddress.parse(a).overlaps(ListenAddress.parse(b)) is clash


def test_address_needs_a_port() -> None:
    assert Address.parse("[fd00::5]:9561").port == 9561
    with pytest.raises(AddressError):
        Address.parse("coordinator")


@pytest.mark.parametrize("name", ["titan-0", "n1.lab", "0", "a" * 63])
def test_node_name_accepts(name: str) -> None:
    assert NodeName.parse(name) == name


@pytest.mark.parametrize(
    "name", ["-oProxyCommand=touch /tmp/x", "Titan", "a_b", "a..b", "a-", "a" * 64, "n\u00e9"]
)
def test_node_name_refuses(name: str) -> None:
    with pytest.raises(AddressError):
        NodeName.parse(name)


@given(st.text(max_size=40))
def test_parsers_raise_only_address_error(text: str) -> None:
    """Whatever the text, a parser returns a value or raises AddressError: nothing else."""
    for kind in (HostPort, Address, UpsTarget, ListenAddress, NodeName):
        try:
            parsed = kind.parse(text)
        except AddressError:
            continue
        # what was accepted parses again to the same parts
        assert kind.parse(str(parsed)) == parsed


@given(st.ip_addresses(), st.integers(1, 65535))
def test_every_ip_and_port_round_trips(ip: object, port: int) -> None:
    text = f"[{ip}]:{port}" if ":" in str(ip) else f"{ip}:{port}"
    parsed = HostPort.parse(text)
    assert (parsed.host, parsed.port) == (str(ip), port)
    assert parse_host(str(ip)) == str(ip)
