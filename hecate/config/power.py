"""The `power` section: how each node is powered on and off out of band (issue 25).

A node not listed under `power.nodes` relies on its BIOS ("restore on AC loss"): method `none`.
Passwords are never in the config: `password_file` names a file read by the power adapters.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Discriminator, Field, Tag, ValidationInfo, field_validator

from hecate.config.addresses import HostPort, parse_host
from hecate.config.feeds import Feed, FeedName, PartialPolicy, ShedConfig, own_problems
from hecate.config.strict import FilePath, Node, UserName, at
from hecate.config.strict import StrictModel as _Strict

IPMI_PORT = 623  # RMCP+
WOL_PORT = 9  # discard; 7 (echo) is the other common one
_MAC = re.compile(r"[0-9a-f]{2}([:-])[0-9a-f]{2}(\1[0-9a-f]{2}){4}")


def parse_mac(text: str) -> str:
    """A MAC address, ``aa:bb:cc:dd:ee:ff`` or with dashes, any case; returned lower case with
    colons. A multicast MAC (first octet odd) is no network card's."""
    value = text.strip().lower()
    if not _MAC.fullmatch(value):
        raise ValueError(f"{text!r} is not a MAC address (aa:bb:cc:dd:ee:ff)")
    value = value.replace("-", ":")
    if int(value[:2], 16) & 1:
        raise ValueError(f"{text!r} is a multicast MAC address, not a network card's")
    if value in ("00:00:00:00:00:00",):
        raise ValueError(f"{text!r} is the null MAC address")
    return value


def _parse_ipv4(text: str) -> str:
    parts = text.split(".")
    if len(parts) != 4 or not all(p.isdigit() and int(p) < 256 for p in parts):
        raise ValueError(f"{text!r} is not an IPv4 address (Wake-on-LAN is sent over IPv4)")
    return text


def _parse_redfish_url(text: str) -> str:
    parts = urlsplit(text.strip())
    if parts.scheme not in ("https", "http"):
        raise ValueError(f"{text!r}: a Redfish URL starts with https:// (or http://)")
    if not parts.hostname:
        raise ValueError(f"{text!r}: no host in the URL")
    parse_host(parts.hostname)
    if parts.username or parts.password:
        raise ValueError("a Redfish URL carries no credentials: use user and password_file")
    if parts.query or parts.fragment or parts.path not in ("", "/"):
        raise ValueError(f"{text!r}: give the BMC's base URL only (the service root is found)")
    return f"{parts.scheme}://{parts.netloc}"


Mac = Annotated[str, AfterValidator(parse_mac)]
Ipv4 = Annotated[str, AfterValidator(_parse_ipv4)]
RedfishUrl = Annotated[str, AfterValidator(_parse_redfish_url)]


class NoPower(_Strict):
    """No out-of-band power: the node's BIOS brings it back (restore on AC loss)."""

    method: Literal["none"] = Field(description="none: the BIOS powers the node on.")


class WolPower(_Strict):
    """Wake-on-LAN: a magic packet powers the node on; it cannot read a state or power off."""

    method: Literal["wol"] = Field(description="wol: Wake-on-LAN.")
    mac: Mac = Field(description="The MAC address of the node's network card.")
    broadcast: Ipv4 = Field(
        "255.255.255.255",
        description="Where the magic packet is sent (the node's subnet broadcast address).",
    )
    port: int = Field(WOL_PORT, gt=0, lt=65536, description="UDP port of the magic packet.")


class IpmiPower(_Strict):
    """IPMI 2.0 over LAN (lanplus) to the node's BMC."""

    method: Literal["ipmi"] = Field(description="ipmi: IPMI 2.0 over LAN.")
    address: HostPort = Field(description="HOST[:PORT] of the BMC (port 623 unless given).")
    user: UserName = Field(description="The BMC user.")
    password_file: FilePath = Field(description="File holding the BMC password (mode 0600).")
    cipher_suite: int = Field(17, ge=0, le=17, description="RMCP+ cipher suite (17: SHA-256).")

    @property
    def port(self) -> int:
        return self.address.port if self.address.port is not None else IPMI_PORT


class RedfishPower(_Strict):
    """Redfish (DMTF) over HTTPS to the node's BMC."""

    method: Literal["redfish"] = Field(description="redfish: a Redfish BMC.")
    url: RedfishUrl = Field(description="Base URL of the BMC (https://HOST[:PORT]).")
    user: UserName = Field(description="The BMC user.")
    password_file: FilePath = Field(description="File holding the BMC password (mode 0600).")
    system: str = Field(
        "1", min_length=1, max_length=128, description="The ComputerSystem's id under /Systems."
    )
    verify_tls: bool = Field(True, description="Verify the BMC's TLS certificate.")
    ca_file: FilePath | None = Field(
        None, description="CA bundle for a BMC's self-signed certificate (null: the system's)."
    )

    @field_validator("system")
    @classmethod
    def _plain_id(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9._-]+", value):
            raise ValueError(f"{value!r}: a system id is letters, digits, '.', '_' and '-'")
        return value


def _method(value: object) -> str | None:
    # A callable discriminator: StrictModel's catch-all "before" validator rules out a field one.
    if isinstance(value, dict):
        method = value.get("method")
        return method if isinstance(method, str) else None
    return getattr(value, "method", None)


NodePower = Annotated[
    Annotated[NoPower, Tag("none")]
    | Annotated[WolPower, Tag("wol")]
    | Annotated[IpmiPower, Tag("ipmi")]
    | Annotated[RedfishPower, Tag("redfish")],
    Discriminator(
        _method,
        custom_error_type="power_method",
        custom_error_message="method must be one of none, wol, ipmi, redfish",
    ),
]


class PowerConfig(_Strict):
    """Out-of-band power per node (Wake-on-LAN, IPMI, Redfish)."""

    nodes: dict[Node, NodePower] = Field(
        default_factory=dict,
        description="Node name -> how it is powered on and off out of band; a node not listed "
        "relies on its BIOS (method none).",
    )
    # Feeds (issue 28, hecate/config/feeds.py): without `feeds`, every trigger is the cluster's.
    feeds: dict[FeedName, Feed] = Field(
        default_factory=dict,
        description="Feed name -> the instance watching its UPS; with feeds, a trigger shuts "
        "down only the nodes whose every feed is critical (power.partial_policy).",
    )
    node_feeds: dict[Node, list[FeedName]] = Field(
        default_factory=dict,
        description="Node name -> the feeds that power it (two for a dual-PSU node); every "
        "node needs one when power.feeds is set.",
    )
    partial_policy: PartialPolicy = Field(
        "quorum_safe",
        description="never: any trigger shuts the whole cluster down; quorum_safe: only the "
        "nodes that lose power, unless that leaves etcd without quorum or fewer than "
        "power.min_agents agents (then the whole cluster, in order); always: only those nodes.",
    )
    min_agents: int = Field(
        1,
        ge=0,
        description="Agents that must keep power for a partial shutdown under quorum_safe "
        "(at most the number of agents).",
    )
    shed: ShedConfig = Field(default_factory=ShedConfig, description=ShedConfig.__doc__)

    @field_validator("node_feeds")
    @classmethod
    def _known_feeds(
        cls, value: dict[str, list[str]], info: ValidationInfo
    ) -> dict[str, list[str]]:
        if "feeds" not in info.data:
            return value  # feeds invalid: its own error says so
        for message, path in own_problems(info.data["feeds"], value):
            raise at(message, f"power.{path}", absolute=True)
        return value

    def method_of(self, node: str) -> str:
        entry = self.nodes.get(node)
        return entry.method if entry is not None else "none"

    def password_files(self) -> dict[str, Path]:
        """Config key -> BMC password file, for the permission checks."""
        return {
            f"power.nodes.{name}.password_file": entry.password_file
            for name, entry in self.nodes.items()
            if isinstance(entry, IpmiPower | RedfishPower)
        }

    def exposure_warnings(self) -> list[str]:
        """BMCs whose password can be read on the wire: a Redfish URL over plain http, or TLS
        not verified (anyone in the middle gets it). `config check` warns; not an error, as
        some BMCs ship that way."""
        warnings = []
        for name, entry in self.nodes.items():
            if not isinstance(entry, RedfishPower):
                continue
            key = f"power.nodes.{name}"
            if entry.url.startswith("http://"):
                warnings.append(
                    f"{key}.url: {entry.url} sends the BMC password in clear text; use https://"
                )
            elif not entry.verify_tls:
                warnings.append(
                    f"{key}.verify_tls: false: the BMC password goes to whoever answers at "
                    f"{entry.url}; set ca_file to the BMC's certificate instead"
                )
        return warnings
