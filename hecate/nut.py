"""The NUT adapter: read one UPS from upsd through pynutclient and return a typed reading.

Pure parts (no I/O): `parse_target` turns `ups@host[:port]` into a `NutTarget`, and
`reading_from_vars` turns upsd's variables into an `UpsReading`.

`NutClient.read()` opens one short session per call (connect, authenticate, check access, `LIST
VAR`, `LOGOUT`) and always closes its socket. Every failure becomes a `UpsError` subclass:

- `UpsUnreachableError`: connection refused, no route, unknown host, connection dropped;
- `UpsDriverDownError`: upsd answers but the driver is gone (`ERR DRIVER-NOT-CONNECTED`,
  `ERR DATA-STALE`);
- `UpsAuthError`: upsd rejected the credentials (`ERR ACCESS-DENIED`, `USERNAME/PASSWORD` errors);
- `UpsTimeoutError`: no complete answer within `timeout_s` (one budget for the whole read);
- `UpsUnknownError`: upsd does not serve a UPS of that name;
- `UpsProtocolError`: the peer answered something that is not the NUT protocol.

upsd accepts any `USERNAME`/`PASSWORD` and only checks them on privileged commands, so when
credentials are given, `read()` proves them with a side-effect-free `PRIMARY <ups>` (the access
check upsmon primaries use; the user needs `upsmon primary` in upsd.users), or with `LOGIN <ups>`
(`auth_check="login"`, any upsmon user, but upsd logs every login), or not at all (`"none"`).

`poll()` is the daemon's entry point: the same read, returning `CommError` instead of raising.
The password never appears in a repr, a log line or an exception message.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import socket
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal, Protocol

from PyNUTClient.PyNUT import PyNUTClient, PyNUTError

from hecate.addresses import NUT_DEFAULT_PORT, AddressError, UpsTarget, parse_host
from hecate.config import LOOSE_FILE_ADVICE, LOOSE_FILE_BITS
from hecate.errors import (
    ConfigError,
    HecateError,
    UpsAuthError,
    UpsDriverDownError,
    UpsError,
    UpsTimeoutError,
    UpsUnreachableError,
)
from hecate.readings import (
    CommError,
    Poll,
    UpsReading,
    parse_reading,
)

if TYPE_CHECKING:
    from hecate.config import HecateConfig

log = logging.getLogger(__name__)

DEFAULT_PORT: Final = NUT_DEFAULT_PORT
DEFAULT_TIMEOUT_S: Final = 5.0


# CommError.kind values poll() produces.
KIND_UNREACHABLE: Final = "unreachable"
KIND_DRIVER_DOWN: Final = "driver_down"
KIND_AUTH: Final = "auth"
KIND_TIMEOUT: Final = "timeout"
KIND_UNKNOWN_UPS: Final = "unknown_ups"
KIND_PROTOCOL: Final = "protocol"

AuthCheck = Literal["primary", "login", "none"]

# A whole LIST VAR answer is a few kB; anything far larger is not upsd.
_MAX_ANSWER_BYTES: Final = 1 << 20

# NUT names go verbatim into protocol lines: keep them to characters that cannot break a line.
_UPS_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")
_USER_NAME = re.compile(r"[!-~]+")  # printable ASCII, no space
_PASSWORD_CHARS = re.compile(r"[ !#-\[\]-~]+")  # printable ASCII except '"' and '\'

_DRIVER_DOWN_ERRORS: Final = frozenset({"DRIVER-NOT-CONNECTED", "DATA-STALE"})
_AUTH_ERRORS: Final = frozenset(
    {
        "ACCESS-DENIED",
        "USERNAME-REQUIRED",
        "PASSWORD-REQUIRED",
        "INVALID-USERNAME",
        "INVALID-PASSWORD",
        "ALREADY-SET-USERNAME",
        "ALREADY-SET-PASSWORD",
    }
)


class UpsUnknownError(UpsError):
    """upsd answers but serves no UPS of that name."""


class UpsProtocolError(UpsError):
    """The peer answered, but not as upsd would (not a NUT server, or an unexpected error)."""


# --------------------------------------------------------------------------------------------
# Targets


@dataclass(frozen=True)
class NutTarget:
    """One UPS on one upsd: `ups@host:port`. Validated on construction."""

    ups: str
    host: str
    port: int = DEFAULT_PORT

    def __post_init__(self) -> None:
        if not _UPS_NAME.fullmatch(self.ups):
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

    The grammar is :class:`hecate.addresses.UpsTarget`'s. Raises ConfigError naming what is wrong.
    """
    try:
        target = UpsTarget.parse(text)
    except AddressError as exc:
        raise ConfigError(f"invalid UPS target {text!r}: {exc}") from None
    return NutTarget(ups=target.ups, host=target.host, port=target.port)


# --------------------------------------------------------------------------------------------
# Variables -> reading (pure)


def reading_from_vars(variables: Mapping[str, str]) -> UpsReading:
    """Turn upsd's variables into an UpsReading with the one shared parser
    (`hecate.readings.parse_reading`: sane numbers, sentinels as unknown). Never raises.
    Every other variable lands in `extra`."""
    return parse_reading(variables)


def _unescape(value: str) -> str:
    r"""Undo upsd's escaping of `\` and `"` in quoted values (pynutclient keeps it)."""
    return re.sub(r"\\(.)", r"\1", value)


def _decode(raw: object) -> str:
    if isinstance(raw, bytes):
        return raw.decode("utf-8", "replace")
    return str(raw)


# --------------------------------------------------------------------------------------------
# pynutclient, hardened


class _PeerClosedError(ConnectionError):
    """The server closed the connection before a complete answer."""


class _AnswerTooLongError(Exception):
    """The server sent more than any NUT answer could hold."""


_INSTCMD = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


class _GuardedPyNUT(PyNUTClient):  # type: ignore[misc]  # pynutclient ships no type information
    """PyNUTClient with the three guarantees the adapter needs.

    pynutclient 2.8.5 reads with `recv` in a loop: a server that closes the connection makes it
    spin forever (recv returns b"" at once), and its socket timeout applies per recv, so a
    server that trickles bytes is never timed out. It also never closes its socket, not even when
    its constructor fails. This subclass replaces its private read loop (same contract, plus an
    end-of-stream check and one deadline for the whole session) and adds `close()`.
    """

    def __init__(
        self, host: str, port: int, login: str | None, password: str | None, deadline: float
    ) -> None:
        self._hecate_deadline = deadline
        try:
            super().__init__(
                host=host,
                port=port,
                login=login,
                password=password,
                timeout=max(deadline - time.monotonic(), 0.001),
            )
        except BaseException:
            self.close()
            raise

    def _socket(self) -> socket.socket | None:
        sock = getattr(self, "_PyNUTClient__srv_handler", None)
        return sock if isinstance(sock, socket.socket) else None

    def _read_until_guarded(self, marker: bytes) -> bytes:
        sock = self._socket()
        if sock is None:
            raise _PeerClosedError("not connected")
        data = bytes(getattr(self, "_PyNUTClient__recv_leftover", b""))
        while (end := data.find(marker)) == -1:
            if len(data) > _MAX_ANSWER_BYTES:
                raise _AnswerTooLongError
            remaining = self._hecate_deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no complete answer before the deadline")
            sock.settimeout(remaining)
            chunk = sock.recv(4096)
            if not chunk:
                raise _PeerClosedError("the server closed the connection")
            data += chunk
        end += len(marker)
        self._PyNUTClient__recv_leftover = data[end:]
        return data[:end]

    # Name-mangled hook: PyNUTClient's methods call `self.__read_until`.
    _PyNUTClient__read_until = _read_until_guarded

    def _command(self, line: str) -> str:
        sock = self._socket()
        if sock is None:
            raise _PeerClosedError("not connected")
        sock.settimeout(max(self._hecate_deadline - time.monotonic(), 0.001))
        sock.sendall(f"{line}\n".encode("ascii"))
        return self._read_until_guarded(b"\n").decode("ascii").rstrip("\r\n")

    def check_primary(self, ups: str) -> None:
        """upsd's `PRIMARY` access check (no side effect); `MASTER` for upsd before 2.8."""
        answer = self._command(f"PRIMARY {ups}")
        if answer.startswith(("ERR UNKNOWN-COMMAND", "ERR INVALID-ARGUMENT")):
            answer = self._command(f"MASTER {ups}")
        if not answer.startswith("OK"):
            raise PyNUTError(answer)

    def instant_command(self, ups: str, command: str) -> None:
        """NUT's INSTCMD (e.g. `shutdown.return`); needs a user with `instcmds` rights."""
        answer = self._command(f"INSTCMD {ups} {command}")
        if not answer.startswith("OK"):
            raise PyNUTError(answer)

    def list_vars(self, ups: str) -> dict[str, str]:
        raw = self.GetUPSVars(ups)
        if not isinstance(raw, dict):
            raise PyNUTError("LIST VAR gave no variables")
        return {_decode(key): _unescape(_decode(value)) for key, value in raw.items()}

    def list_ups(self) -> dict[str, str]:
        """`LIST UPS` (what `upsc -l` shows): UPS name -> description."""
        raw = self.GetUPSList()
        if not isinstance(raw, dict):
            raise PyNUTError("LIST UPS gave no list")
        return {_decode(key): _unescape(_decode(value)) for key, value in raw.items()}

    def close(self) -> None:
        sock = self._socket()
        if sock is None:
            return
        with contextlib.suppress(OSError):
            sock.setblocking(False)
            sock.send(b"LOGOUT\n")
        sock.close()
        self._PyNUTClient__srv_handler = None


def _pynut_supported() -> bool:
    """The private names _GuardedPyNUT relies on exist in the installed pynutclient."""
    return all(
        hasattr(PyNUTClient, name)
        for name in ("_PyNUTClient__read_until", "_PyNUTClient__srv_handler", "GetUPSVars")
    )


# --------------------------------------------------------------------------------------------
# The client


class NutClient:
    """Reads one UPS from upsd. One short session per `read()`; nothing stays open between reads.

    `timeout_s` bounds the whole read (connect, authenticate, list variables), except host name
    resolution, which follows the system resolver's own timeouts: use an IP address to avoid it.
    """

    def __init__(
        self,
        target: NutTarget,
        user: str | None = None,
        password: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        *,
        auth_check: AuthCheck = "primary",
    ) -> None:
        if not _pynut_supported():
            raise HecateError("the installed pynutclient is not supported (expected 2.8.x)")
        if (user is None) != (password is None):
            raise ConfigError("NUT user and password go together: give both or neither")
        if user is not None and not _USER_NAME.fullmatch(user):
            raise ConfigError(f"invalid NUT user name {user!r}: printable ASCII without spaces")
        if password is not None and not _PASSWORD_CHARS.fullmatch(password):
            raise ConfigError(
                "invalid NUT password: it must be non-empty printable ASCII without"
                " '\"' or '\\' (the NUT protocol cannot carry it otherwise)"
            )
        if not isinstance(timeout_s, int | float) or not 0 < timeout_s < math.inf:
            raise ConfigError(f"invalid NUT timeout {timeout_s!r}: expected seconds > 0")
        if auth_check not in ("primary", "login", "none"):
            raise ConfigError(f"invalid auth_check {auth_check!r}")
        self._target = target
        self._user = user
        self._password = password
        self._timeout_s = float(timeout_s)
        self._auth_check: AuthCheck = auth_check

    @property
    def target(self) -> NutTarget:
        return self._target

    @property
    def user(self) -> str | None:
        return self._user

    @property
    def timeout_s(self) -> float:
        return self._timeout_s

    def __repr__(self) -> str:
        return (
            f"NutClient(target={str(self._target)!r}, user={self._user!r},"
            f" timeout_s={self._timeout_s!r}, auth_check={self._auth_check!r})"
        )

    def read(self) -> UpsReading:
        """Read the UPS. Raises a UpsError subclass (see the module doc) on any failure."""
        return reading_from_vars(self.read_vars())

    def read_vars(self) -> dict[str, str]:
        """All variables of the UPS as text, as upsd serves them."""
        target = self._target
        log.debug("reading %s as %s", target, self._user or "(anonymous)")
        try:
            with self._session() as session:
                if self._user is not None and self._auth_check == "primary":
                    session.check_primary(target.ups)
                elif self._user is not None and self._auth_check == "login":
                    session.DeviceLogin(target.ups)
                return session.list_vars(target.ups)
        except UpsUnknownError as exc:
            raise UpsUnknownError(f"{exc}{self._served_hint()}") from None

    def _served_hint(self) -> str:
        """`; it serves: a, b` (what `upsc -l` would list), for a wrong UPS name."""
        try:
            names = sorted(self.ups_names())
        except UpsError:
            return ""
        return f"; it serves: {', '.join(names)}" if names else "; it serves no UPS at all"

    def ups_names(self) -> dict[str, str]:
        """The UPSes this upsd serves (name -> description), as `upsc -l` lists them.

        Anonymous: needs no user. Raises a UpsError subclass on any failure."""
        with self._session() as session:
            return session.list_ups()

    def instant_command(self, command: str) -> None:
        """Run an instant command on the UPS, e.g. `shutdown.return` (cut the output after the
        UPS's shutdown delay, restore it when mains returns)."""
        if self._user is None:
            raise ConfigError("an instant command needs ups.user and ups.password_file")
        if not _INSTCMD.fullmatch(command):
            raise ConfigError(f"invalid NUT instant command {command!r}")
        log.info("sending instant command %s to %s", command, self._target)
        with self._session() as session:
            session.instant_command(self._target.ups, command)

    @contextlib.contextmanager
    def _session(self) -> Iterator[_GuardedPyNUT]:
        """One connection, closed at the end; every failure becomes a UpsError."""
        target = self._target
        deadline = time.monotonic() + self._timeout_s
        session: _GuardedPyNUT | None = None
        try:
            session = _GuardedPyNUT(target.host, target.port, self._user, self._password, deadline)
            yield session
        except Exception as exc:
            error = self._translate(exc)
            if self._leaks_secret(exc):
                raise error from None
            raise error from exc
        finally:
            if session is not None:
                session.close()

    # ----------------------------------------------------------------------------------------

    def _leaks_secret(self, exc: BaseException) -> bool:
        return self._password is not None and self._password in str(exc)

    def _redact(self, text: str) -> str:
        return text.replace(self._password, "***") if self._password else text

    def _translate(self, exc: Exception) -> UpsError:
        where = str(self._target)
        if isinstance(exc, PyNUTError):
            return self._translate_answer(self._redact(_decode(exc.args[0] if exc.args else "")))
        if isinstance(exc, TimeoutError):
            return UpsTimeoutError(f"{where}: no answer from upsd within {self._timeout_s:g} s")
        if isinstance(exc, OSError):
            return UpsUnreachableError(f"{where}: {self._network_problem(exc)}")
        if isinstance(exc, _AnswerTooLongError | UnicodeError | IndexError | ValueError):
            return UpsProtocolError(f"{where}: unreadable answer; is this a NUT server?")
        raise exc

    def _network_problem(self, exc: OSError) -> str:
        if isinstance(exc, socket.gaierror):
            return f"cannot resolve host {self._target.host!r} ({exc.strerror})"
        if isinstance(exc, ConnectionRefusedError):
            return "connection refused (is upsd running?)"
        if isinstance(exc, _PeerClosedError):
            return "upsd closed the connection before answering"
        if isinstance(exc, ConnectionError):  # reset, aborted, broken pipe
            return f"upsd closed the connection before answering ({exc.strerror})"
        return f"cannot reach upsd ({exc.strerror or type(exc).__name__})"

    def _translate_answer(self, answer: str) -> UpsError:
        where = str(self._target)
        words = answer.split()
        code = words[1] if len(words) >= 2 and words[0] == "ERR" else None
        if code in _DRIVER_DOWN_ERRORS:
            return UpsDriverDownError(f"{where}: upsd has no data from the UPS driver ({answer})")
        if code in _AUTH_ERRORS:
            hint = ""
            if self._auth_check == "primary":
                hint = "; the user needs 'upsmon primary' in upsd.users"
            return UpsAuthError(
                f"{where}: upsd rejected user {self._user!r} ({answer}): wrong user or"
                f" password{hint}"
            )
        if code == "UNKNOWN-UPS":
            return UpsUnknownError(f"{where}: upsd serves no UPS named {self._target.ups!r}")
        if code is not None:
            return UpsProtocolError(f"{where}: upsd refused the request ({answer})")
        shown = answer if len(answer) <= 80 else answer[:77] + "..."
        return UpsProtocolError(f"{where}: unexpected answer {shown!r}; is this a NUT server?")


# --------------------------------------------------------------------------------------------
# Daemon / CLI entry points


class UpsReader(Protocol):
    """Anything that reads a UPS the way NutClient does (fakes in tests, for instance)."""

    def read(self) -> UpsReading: ...


def comm_error_kind(error: UpsError) -> str:
    """The CommError kind for a UpsError."""
    kinds: tuple[tuple[type[UpsError], str], ...] = (
        (UpsDriverDownError, KIND_DRIVER_DOWN),
        (UpsAuthError, KIND_AUTH),
        (UpsTimeoutError, KIND_TIMEOUT),
        (UpsUnknownError, KIND_UNKNOWN_UPS),
        (UpsProtocolError, KIND_PROTOCOL),
    )
    for error_type, kind in kinds:
        if isinstance(error, error_type):
            return kind
    return KIND_UNREACHABLE


def poll(client: UpsReader) -> Poll:
    """One read for the daemon: an UpsReading, or a CommError (never raises a UpsError)."""
    try:
        return client.read()
    except UpsError as exc:
        log.debug("UPS poll failed: %s", exc)
        return CommError(message=str(exc), kind=comm_error_kind(exc))


def read_password_file(path: str | PathLike[str]) -> str:
    """The password in `path`: the first line, without its line ending.

    Raises ConfigError (naming the file, never its content) when it is unreadable or empty.
    Warns when the file is open to others or writable by its group (LOOSE_FILE_BITS).
    """
    file = Path(path)
    try:
        mode = file.stat().st_mode
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"cannot read NUT password file {file}: {reason}") from None
    if mode & LOOSE_FILE_BITS:
        log.warning(
            "NUT password file %s is accessible to others or writable by its group (%s)",
            file,
            LOOSE_FILE_ADVICE.format(path=file),
        )
    password = text.split("\n", 1)[0].rstrip("\r")
    if not password:
        raise ConfigError(f"NUT password file {file} is empty")
    return password


def client_from_config(config: HecateConfig) -> NutClient:
    """The NutClient a config describes. Without `ups.password_file` the read is anonymous."""
    ups = config.ups
    target = NutTarget(ups=ups.target.ups, host=ups.target.host, port=ups.target.port)
    if ups.password_file is None:
        return NutClient(target, timeout_s=ups.timeout_seconds, auth_check="none")
    password = read_password_file(ups.password_file)
    return NutClient(
        target, ups.user, password, timeout_s=ups.timeout_seconds, auth_check=ups.auth_check
    )


def poll_config(config: HecateConfig) -> Poll:
    """poll() the UPS the config names. Config problems raise ConfigError, not a CommError."""
    return poll(client_from_config(config))
