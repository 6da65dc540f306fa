"""Out-of-band power (issue 25): what a node's power state is, and what a power action did.

Pure: the values the power port (hecate/adapters/power) returns and the parsers of what BMCs
answer. A reason is one human line naming what was seen; it never holds a password.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

PowerState = Literal["on", "off", "unknown"]
PowerAction = Literal["on", "off", "hard_off"]
PowerMethod = Literal["none", "wol", "ipmi", "redfish"]

# What `off` answers for a node without a BMC (methods none and wol): the caller powers it off
# over SSH (the shutdown's poweroff step) and confirms it by SSH no longer answering.
NO_BMC_OFF = "no BMC: off goes through SSH"
# What `on` answers for a node with method none.
NONE_ON = (
    "method none: Hecate cannot power this node on (its BIOS must restore on AC loss); give it "
    "power.nodes.NODE (wol, ipmi or redfish)"
)


def cannot_switch(method: PowerMethod, action: PowerAction) -> str | None:
    """Why `action` cannot be done at all by `method` (known without asking anything), or None."""
    if action == "on":
        return NONE_ON if method == "none" else None
    return NO_BMC_OFF if method in ("none", "wol") else None


@dataclass(frozen=True)
class PowerReading:
    """A node's power state as its method can tell it (`unknown` with the reason otherwise)."""

    node: str
    method: PowerMethod
    state: PowerState
    reason: str
    # The BMC answered, with a state between on and off (Redfish PoweringOn, PoweringOff,
    # Paused): unknown for now, but its address and credentials are good.
    in_between: bool = False

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class PowerResult:
    """What one power action did: `ok` when the BMC (or the network, for a magic packet)
    accepted it. Accepted is not done: the caller confirms with `status` or SSH."""

    node: str
    action: PowerAction
    ok: bool
    reason: str

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def one_line(text: str, limit: int = 300) -> str:
    """`text` folded onto one line, bounded (tool output can be long or multi-line)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def parse_ipmi_power(output: str) -> PowerState | None:
    """The state in ipmitool's `chassis power status` answer ("Chassis Power is on"), or None
    when the text is no such answer."""
    for line in output.splitlines():
        words = line.strip().lower().split()
        if words[:3] == ["chassis", "power", "is"] and words[3:] in (["on"], ["off"]):
            return "on" if words[3] == "on" else "off"
    return None


def ipmi_failure_reason(output: str) -> str:
    """One line for a failed ipmitool run, from what it printed with ``-v`` (stderr and
    stdout): which step of the RMCP+ session setup failed says why."""
    text = output.lower()
    checks = (
        ("hmac is invalid", "the BMC refused the password (check the password file)"),
        ("unauthorized name", "the BMC does not know the user (check the user)"),
        ("invalid user", "the BMC does not know the user (check the user)"),
        (
            "no response from rakp 1",
            "the BMC did not answer the login (an unknown user, or a BMC that stopped answering)",
        ),
        ("not what we requested", "the BMC does not offer the cipher suite (check cipher_suite)"),
        (
            "no matching cipher suite",
            "the BMC does not offer the cipher suite (check cipher_suite)",
        ),
        ("insufficient privilege", "the user may not do this (it needs the OPERATOR privilege)"),
        ("get auth capabilities", "no answer (unreachable, or no IPMI over LAN on that port)"),
        ("unable to establish", "no IPMI session could be set up"),
    )
    for needle, reason in checks:
        if needle in text:
            return reason
    lines = [
        line
        for line in output.splitlines()
        if line.strip() and "iana pen registry" not in line.lower()
    ]
    return one_line(lines[-1]) if lines else "ipmitool failed without saying why"


def parse_redfish_power(value: object) -> PowerState:
    """A ComputerSystem's PowerState (DMTF: On, Off, PoweringOn, PoweringOff, Paused): on or off
    only when it says so; a transition or a missing value is unknown."""
    if value == "On":
        return "on"
    if value == "Off":
        return "off"
    return "unknown"


def magic_packet(mac: str) -> bytes:
    """The Wake-on-LAN magic packet for `mac` (aa:bb:cc:dd:ee:ff, already parsed): six 0xff
    bytes, then the MAC sixteen times (102 bytes)."""
    raw = bytes.fromhex(mac.replace(":", "").replace("-", ""))
    if len(raw) != 6:
        raise ValueError(f"{mac!r} is not a MAC address")
    return b"\xff" * 6 + raw * 16


def mac_in_packet(packet: bytes) -> str | None:
    """The MAC a magic packet names (lower case, colons), or None when it is no magic packet.
    The twin's Wake-on-LAN listener reads packets with it."""
    for start in range(len(packet) - 101):
        if packet[start : start + 6] != b"\xff" * 6:
            continue
        mac = packet[start + 6 : start + 12]
        if packet[start + 6 : start + 102] == mac * 16:
            return ":".join(f"{b:02x}" for b in mac)
    return None
