"""The pure side of out-of-band power: what BMCs answer, parsed; magic packets."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hecate.core.power import (
    ipmi_failure_reason,
    mac_in_packet,
    magic_packet,
    one_line,
    parse_ipmi_power,
    parse_redfish_power,
)

# What Debian's ipmitool 1.8.19 printed with -v against the twin's pyghmi BMC (tests/testbed).
HMAC_REFUSED = (
    "Loading IANA PEN Registry...\n> RAKP 2 HMAC is invalid\n"
    "Error: Unable to establish IPMI v2 / RMCP+ session\n"
)
UNKNOWN_USER = (
    "> Error: no response from RAKP 1 message\n"
    * 4
    + "Set Session Privilege Level to ADMINISTRATOR failed\n"
    "Error: Unable to establish IPMI v2 / RMCP+ session\n"
)
NO_ANSWER = (
    "Loading IANA PEN Registry...\nGet Auth Capabilities error\n"
    "Error issuing Get Channel Authentication Capabilities request\n"
    "Error: Unable to establish IPMI v2 / RMCP+ session\n"
)
WRONG_SUITE = (
    "Authentication algorithm 0x01 is not what we requested 0x03\n\n"
    "Error: Unable to establish IPMI v2 / RMCP+ session\n"
)


@pytest.mark.parametrize(
    ("output", "state"),
    [
        ("Chassis Power is on\n", "on"),
        ("Loading IANA PEN Registry...\nChassis Power is off\n", "off"),
        ("chassis power is ON", "on"),
        ("Chassis Power is on and off", None),
        ("Chassis Power Control: Up/On", None),
        ("", None),
    ],
)
def test_ipmi_power_status_is_read_only_from_its_answer(output: str, state: str | None) -> None:
    assert parse_ipmi_power(output) == state


@pytest.mark.parametrize(
    ("output", "words"),
    [
        (HMAC_REFUSED, "refused the password"),
        (UNKNOWN_USER, "did not answer the login"),
        (NO_ANSWER, "no answer (unreachable"),
        (WRONG_SUITE, "cipher suite"),
        ("RAKP 2 message indicates an error : unauthorized name\n", "does not know the user"),
        ("Loading IANA PEN Registry...\nsomething odd\n\n", "something odd"),
        ("", "without saying why"),
    ],
)
def test_each_ipmitool_failure_gets_its_own_reason(output: str, words: str) -> None:
    reason = ipmi_failure_reason(output)
    assert words in reason
    assert "\n" not in reason


@pytest.mark.parametrize(
    ("value", "state"),
    [("On", "on"), ("Off", "off"), ("PoweringOn", "unknown"), (None, "unknown"), ("on", "unknown")],
)
def test_redfish_power_state_is_on_or_off_only_when_it_says_so(value: object, state: str) -> None:
    assert parse_redfish_power(value) == state


def test_magic_packet_is_six_ff_then_the_mac_sixteen_times() -> None:
    packet = magic_packet("aa:bb:cc:dd:ee:01")
    assert len(packet) == 102
    assert packet[:6] == b"\xff" * 6
    assert packet[6:] == bytes.fromhex("aabbccddee01") * 16


@settings(deadline=None)  # a loaded CI machine is slow, not wrong
@given(st.binary(min_size=6, max_size=6), st.binary(max_size=20), st.binary(max_size=20))
def test_the_mac_a_packet_carries_is_found_anywhere_in_it(
    raw: bytes, before: bytes, after: bytes
) -> None:
    mac = ":".join(f"{b:02x}" for b in raw)
    packet = before + magic_packet(mac) + after
    found = mac_in_packet(packet)
    assert found is not None
    assert magic_packet(found) in packet  # whatever it names, the packet wakes that NIC
    # An ff next to the sync stream can make the packet also a magic packet for a rotation of
    # the MAC, one byte earlier or later (b"\xff" + packet of 00:00:00:00:00:ff is also one for
    # ff:00:00:00:00:00): a NIC matches the first. Without such an ff, only the MAC sent.
    if not before.endswith(b"\xff") and not raw.startswith(b"\xff"):
        assert found == mac


def test_an_ff_before_the_sync_stream_names_the_first_match_as_a_nic_would() -> None:
    packet = b"\xff" + magic_packet("00:00:00:00:00:ff")
    assert mac_in_packet(packet) == "ff:00:00:00:00:00"
    assert magic_packet("ff:00:00:00:00:00") == packet[:102]


@pytest.mark.parametrize(
    "packet",
    [
        b"",
        b"\xff" * 6 + bytes.fromhex("aabbccddee01") * 15,  # one repeat short
        b"\xff" * 6 + bytes.fromhex("aabbccddee01") * 15 + bytes.fromhex("aabbccddee02"),
        bytes.fromhex("aabbccddee01") * 17,  # no sync stream
    ],
)
def test_no_mac_in_what_is_no_magic_packet(packet: bytes) -> None:
    assert mac_in_packet(packet) is None


def test_a_magic_packet_refuses_what_is_no_mac() -> None:
    with pytest.raises(ValueError, match="not a MAC"):
        magic_packet("aa:bb:cc")


def test_one_line_folds_and_bounds() -> None:
    assert one_line("a\n  b\tc") == "a b c"
    assert len(one_line("x" * 1000, 50)) == 50
