"""Where a UPS is: `ups@host[:port]`, parsed and validated (pure, no I/O)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from hecate.config.addresses import NUT_DEFAULT_PORT, AddressError, UpsTarget, parse_host
from hecate.errors import ConfigError

DEFAULT_PORT: Final = NUT_DEFAULT_PORT

# NUT names go verbatim into protocol lines: keep them to characters that cannot break a line.
UPS_NAME: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")


@dataclass(frozen=True)
class NutTarget:
    """One UPS on one upsd: `ups@host:port`. Validated on construction."""

    ups: str
    host: str
    port: int = DEFAULT_PORT

    def __post_init__(self) -> None:
        if not UPS_NAME.fullmatch(self.ups):
            raise ConfigError(
                f"invalid UPS name {self.ups!r}: use letters, digits and . _ + - only"
            )
        if not _valid_host(self.host):
            raise ConfigError(f"invalid host {self.host!r}: expected a host name or IP address")
        if isinstance(self.port, bool) or not 0 < self.port < 65536:
            raise ConfigError(f"invalid port {self.port!r}: expected 1-65535")

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.ups}@{host}:{self.port}"


def _valid_host(host: str) -> bool:
    try:
        parse_host(host)
    except AddressError:
        return False
    return True


def parse_target(text: str) -> NutTarget:
    """Parse `ups@host[:port]` (IPv6 as `ups@[::1]:3493`); the port defaults to 3493.

    The grammar is :class:`hecate.config.addresses.UpsTarget`'s. Raises ConfigError naming what is
    wrong.
    """
    try:
        target = UpsTarget.parse(text)
    except AddressError as exc:
        raise ConfigError(f"invalid UPS target {text!r}: {exc}") from None
    return NutTarget(ups=target.ups, host=target.host, port=target.port)
