"""The one grammar of addresses and names in Hecate (pure: no I/O).

Every config field that names a host, a port or a node is one of the typed values below, parsed
once when the config is loaded. Adapters (inventory, NUT client, coordination, metrics) read the
parsed parts (``.host``, ``.port``, ``.ups``) and never split a string again, so an address the
config check let through cannot fail later.

Grammar::

    node name     RFC 1123 host name, lower case (a Kubernetes node name): titan-0, n1.lab
    host          host name (RFC 1123, any case, `_` allowed) | IPv4 dotted quad | IPv6
    host[:port]   HOST | HOST:PORT | [IPV6] | [IPV6]:PORT | IPV6 (bare, then without a port)
    host:port     the same with the port required (PORT 1..65535)
    ups@host      UPS@HOST[:PORT] (the port defaults to 3493), UPS = [A-Za-z0-9_][A-Za-z0-9_.+-]*
    listen        [HOST]:PORT, PORT 0..65535 (0 picks a free port), an empty HOST = every interface

Names that reach a protocol, a command line or an API path (``parse_*`` below; no control
character in any of them, nor in any config value)::

    Kubernetes    namespace: RFC 1123 label (a-z, 0-9, '-', at most 63); object: RFC 1123 subdomain
    NUT user      letters, digits and _ . @ + - (one protocol token, an upsd.users section)
    NUT command   dot-separated words of letters, digits, _ and - (shutdown.return)
    Linux user    letters, digits, _ . - (not starting with '-' or '.'), at most 32
    git branch    git check-ref-format's rules

A host name whose last label is all digits must be a valid IPv4 address (RFC 1123 2.1), so
``999.1.1.1`` is refused instead of being looked up as a name.

Each type is a ``str`` subclass holding the text as written (surrounding blanks removed), so it
prints, compares and serialises as the operator wrote it. ``parse`` raises :class:`AddressError`
(a ``ValueError``, which pydantic reports under the field's path).
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Any, ClassVar, Final, Self

from hecate.errors import ConfigError

if TYPE_CHECKING:
    from pydantic import GetCoreSchemaHandler
    from pydantic_core import core_schema

NUT_DEFAULT_PORT: Final = 3493
MAX_HOST_NAME: Final = 253

_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOST_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")
_NODE_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_NODE_NAME = re.compile(rf"{_NODE_LABEL}(?:\.{_NODE_LABEL})*")
_UPS_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")
_DIGITS = re.compile(r"[0-9]{1,5}")


class AddressError(ConfigError, ValueError):
    """A host, port, address or name that does not follow the grammar: a ConfigError for Hecate,
    a ValueError for pydantic (which reports it under the field's path)."""


def parse_host(text: str) -> str:
    """A host name, an IPv4 or an IPv6 address (no brackets); raises AddressError."""
    if not text:
        raise AddressError("empty host")
    if ":" in text:
        try:
            ipaddress.IPv6Address(text)
        except ValueError:
            raise AddressError(f"{text!r} is not an IPv6 address") from None
        return text
    last = text.rstrip(".").rsplit(".", 1)[-1]
    if last.isascii() and last.isdigit():
        try:
            ipaddress.IPv4Address(text)
        except ValueError:
            raise AddressError(f"{text!r} is not a valid IPv4 address") from None
        return text
    if len(text) > MAX_HOST_NAME or not text.isascii() or not _HOST_NAME.fullmatch(text):
        raise AddressError(
            f"{text!r} is not a host name (letters, digits, '-', '_' and dots; "
            "no label starts or ends with '-')"
        )
    return text


def parse_port(text: str, *, allow_zero: bool = False) -> int:
    """A decimal port 1..65535 (0 too with allow_zero); raises AddressError."""
    low = 0 if allow_zero else 1
    if not _DIGITS.fullmatch(text) or not low <= int(text) <= 65535:
        raise AddressError(f"port {text!r} must be a number {low}..65535")
    return int(text)


def split_host_port(text: str, *, allow_empty_host: bool = False) -> tuple[str, str | None]:
    """``HOST``, ``HOST:PORT``, ``[V6]``, ``[V6]:PORT`` or a bare IPv6 -> (host, port text)."""
    if text.startswith("["):
        host, bracket, tail = text[1:].partition("]")
        if not bracket:
            raise AddressError(f"{text!r}: unclosed '[' around the address")
        if not host:
            raise AddressError(f"{text!r}: empty address between '[' and ']'")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise AddressError(f"{text!r}: [{host}] is not an IPv6 address") from None
        if not tail:
            return host, None
        if not tail.startswith(":"):
            raise AddressError(f"{text!r}: unexpected {tail!r} after ']'")
        return host, tail[1:]
    if text.count(":") > 1:
        return text, None  # a bare IPv6 address cannot carry a port
    host, colon, port = text.partition(":")
    if not host and not allow_empty_host:
        raise AddressError(f"{text!r}: empty host")
    return host, (port if colon else None)


def _clean(value: str) -> str:
    text = value.strip()
    if "\x00" in text:
        raise AddressError("contains a NUL byte")
    if not text:
        raise AddressError("must not be empty")
    return text


class ParsedStr(str):
    """Base of the typed values: a str that was parsed by ``_parse`` on construction."""

    __slots__ = ()
    example: ClassVar[str] = ""

    @classmethod
    def _parse(cls, text: str) -> Self:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    @classmethod
    def parse(cls, value: str) -> Self:
        """Parse text into this type; raises AddressError naming what is wrong."""
        if isinstance(value, cls):
            return value
        if not isinstance(value, str):
            raise AddressError(f"must be a string like {cls.example!r}")
        return cls._parse(_clean(value))

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        # pydantic only when a model is built: the read commands' kept configs use these
        # values without pydantic (hecate.config.view)
        from pydantic_core import core_schema  # noqa: PLC0415

        return core_schema.no_info_after_validator_function(
            cls.parse,
            core_schema.str_schema(strict=True),
            serialization=core_schema.to_string_ser_schema(),
        )


class NodeName(ParsedStr):
    """A node name: an RFC 1123 host name in lower case, as Kubernetes names nodes."""

    __slots__ = ()
    example = "titan-0"

    @classmethod
    def _parse(cls, text: str) -> Self:
        if len(text) > MAX_HOST_NAME or not text.isascii() or not _NODE_NAME.fullmatch(text):
            raise AddressError(
                f"{text!r} is not a node name: use lower-case letters, digits, '-' and dots "
                "(RFC 1123; no label starts or ends with '-')"
            )
        return cls(text)


class HostPort(ParsedStr):
    """``HOST[:PORT]`` (``[IPV6]:PORT``); ``.port`` is None when not given."""

    __slots__ = ("host", "port")
    example = "10.0.0.1:22"
    host: str
    port: int | None

    @classmethod
    def _parse(cls, text: str) -> Self:
        host, port = split_host_port(text)
        made = cls(text)
        made.host = parse_host(host)
        made.port = None if port is None else parse_port(port)
        return made


class Address(ParsedStr):
    """``HOST:PORT`` (``[IPV6]:PORT``) with the port required."""

    __slots__ = ("host", "port")
    example = "10.0.0.5:9561"
    host: str
    port: int

    @classmethod
    def _parse(cls, text: str) -> Self:
        host, port = split_host_port(text)
        if port is None:
            raise AddressError(f"{text!r}: expected HOST:PORT (IPv6 as [ADDR]:PORT)")
        made = cls(text)
        made.host = parse_host(host)
        made.port = parse_port(port)
        return made


class UpsTarget(ParsedStr):
    """``UPS@HOST[:PORT]`` as upsc takes it; the port defaults to 3493. The one UPS address type:
    the config holds it, the NUT client is given it.

    Two targets are equal when they name the same UPS on the same upsd, however written
    (``ups@host`` is ``ups@host:3493``); compared with a plain string, the text counts."""

    __slots__ = ("host", "port", "ups")
    example = "pyrphoros@localhost"
    ups: str
    host: str
    port: int

    @classmethod
    def _parse(cls, text: str) -> Self:
        ups, sep, rest = text.partition("@")
        if not sep or not ups or not rest:
            raise AddressError(f"{text!r}: expected UPS@HOST or UPS@HOST:PORT")
        if "@" in rest:
            raise AddressError(f"{text!r}: more than one '@'")
        if not _UPS_NAME.fullmatch(ups):
            raise AddressError(
                f"{text!r}: UPS name {ups!r} may use letters, digits and . _ + - only"
            )
        host, port = split_host_port(rest)
        made = cls(text)
        made.ups = ups
        made.host = parse_host(host)
        made.port = NUT_DEFAULT_PORT if port is None else parse_port(port)
        return made

    @classmethod
    def at(cls, ups: str, host: str, port: int = NUT_DEFAULT_PORT) -> UpsTarget:
        """The target of a UPS on a host and port, validated by the same grammar (AddressError)."""
        if isinstance(port, bool) or not isinstance(port, int):
            raise AddressError(f"port {port!r} must be a number 1..65535")
        where = f"[{host}]" if ":" in host else host
        return cls.parse(f"{ups}@{where}:{port}")

    @property
    def canonical(self) -> str:
        """``ups@host:port``, the port always written (IPv6 in brackets): how NUT's messages
        name it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.ups}@{host}:{self.port}"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, UpsTarget):
            return (self.ups, self.host, self.port) == (other.ups, other.host, other.port)
        return str.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash(self.canonical)


class ListenAddress(ParsedStr):
    """``[HOST]:PORT`` to listen on; an empty host is every interface, port 0 a free one."""

    __slots__ = ("host", "port")
    example = "127.0.0.1:9560"
    host: str
    port: int

    @classmethod
    def _parse(cls, text: str) -> Self:
        host, port = split_host_port(text, allow_empty_host=True)
        if port is None:
            raise AddressError(f"{text!r}: expected [HOST]:PORT, e.g. :9560 or 127.0.0.1:9560")
        made = cls(text)
        made.host = "" if not host else parse_host(host)
        made.port = parse_port(port, allow_zero=True)
        return made

    @property
    def bind_host(self) -> str:
        """The host to bind: every IPv4 interface for an empty host."""
        return self.host or "0.0.0.0"  # noqa: S104 - an empty host means every interface

    def overlaps(self, other: ListenAddress) -> bool:
        """Whether both would bind the same port on a shared interface (port 0 never clashes)."""
        if self.port == 0 or self.port != other.port:
            return False
        wildcard = {"", "0.0.0.0", "::"}  # noqa: S104 - compared, not bound
        return self.host in wildcard or other.host in wildcard or self.host == other.host


# --------------------------------------------------------------------------- names

# C0 and C1 control characters, DEL and the Unicode line separators: a newline in a value that
# reaches the NUT protocol (one command a line), a command line or an inventory smuggles in more.
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_KUBE_LABEL: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_KUBE_NAME: Final = re.compile(rf"{_NODE_LABEL}(?:\.{_NODE_LABEL})*")
_NUT_USER: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@+-]{0,63}")
_NUT_COMMAND: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9][A-Za-z0-9_-]*)*")
_USER_NAME: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,30}\$?")
_GIT_REF_BAD: Final = re.compile(r"[\s~^:?*\[\\]|\.\.|@\{|//|^[-/.]|[/.]$|\.lock$|/\.")


def control_problem(text: str) -> str | None:
    """Why `text` cannot be a config value (a control character), or None."""
    found = _CONTROL.search(text)
    if found:
        return f"contains a control character ({found.group()!a}); none is allowed"
    return None


def _named(text: str, pattern: re.Pattern[str], what: str) -> str:
    problem = control_problem(text)
    if problem:
        raise AddressError(problem)
    if not pattern.fullmatch(text):
        raise AddressError(f"{text!r} is not {what}")
    return text


def parse_kube_label(text: str) -> str:
    """A Kubernetes namespace: an RFC 1123 label (lower case, digits, '-'; at most 63)."""
    return _named(
        text, _KUBE_LABEL, "a Kubernetes namespace (RFC 1123 label: a-z, 0-9, '-', at most 63)"
    )


def parse_kube_name(text: str) -> str:
    """A Kubernetes object name: an RFC 1123 subdomain (labels joined by dots, at most 253)."""
    if len(text) > MAX_HOST_NAME:
        raise AddressError(f"longer than {MAX_HOST_NAME} characters")
    return _named(
        text,
        _KUBE_NAME,
        "a Kubernetes name (RFC 1123: a-z, 0-9, '-' and '.', no label starts or ends with '-')",
    )


def parse_nut_user(text: str) -> str:
    """A upsd user name (a section of upsd.users, sent as one protocol token)."""
    return _named(text, _NUT_USER, "a NUT user name (letters, digits and _ . @ + -)")


def parse_nut_command(text: str) -> str:
    """A NUT instant command name (`shutdown.return`, `load.off.delay`)."""
    return _named(
        text, _NUT_COMMAND, "a NUT command name (dot-separated words of letters, digits, _ -)"
    )


def parse_user_name(text: str) -> str:
    """A Linux user name as SSH logs in with it (never starting with '-': not an option)."""
    return _named(
        text,
        _USER_NAME,
        "a Linux user name (letters, digits, _ . -, not starting with '-' or '.', at most 32)",
    )


def parse_git_branch(text: str) -> str:
    """A git branch name (git check-ref-format's rules)."""
    problem = control_problem(text)
    if problem:
        raise AddressError(problem)
    if _GIT_REF_BAD.search(text):
        raise AddressError(
            f"{text!r} is not a git branch name (no spaces, ~ ^ : ? * [ \\, '..', '@{{', '//'; "
            "not starting with '-', '/' or '.', not ending with '/', '.' or '.lock')"
        )
    return text
