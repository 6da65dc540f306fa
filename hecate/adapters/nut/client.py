"""The NUT protocol client: one short upsd session per call, every failure a `UpsError`.

`NutClient.read()` opens one session (connect, authenticate, check access, `LIST VAR`,
`LOGOUT`) and always closes its socket. Every failure becomes a `UpsError` subclass:

- `UpsUnreachableError`: connection refused, no route, unknown host, connection dropped;
- `UpsDriverDownError`: upsd answers but the driver is gone (`ERR DRIVER-NOT-CONNECTED`,
  `ERR DATA-STALE`);
- `UpsAuthError`: upsd rejected the credentials (`ERR ACCESS-DENIED`, `USERNAME/PASSWORD` errors);
- `UpsTimeoutError`: no complete answer within `timeout_s` (one budget for the whole read);
- `UpsUnknownError`: upsd does not serve a UPS of that name;
- `UpsProtocolError`: the peer answered something that is not the NUT protocol, or an answer
  that breaks its grammar for this request (a line naming another UPS or another variable, bad
  quoting, a list that never ends, ...: see `hecate.adapters.nut.protocol`). Such an answer is
  never a
  reading, not even in part.

upsd accepts any `USERNAME`/`PASSWORD` and only checks them on privileged commands, so when
credentials are given, `read()` proves them with a side-effect-free `PRIMARY <ups>` (the access
check upsmon primaries use; the user needs `upsmon primary` in upsd.users), or with `LOGIN <ups>`
(`auth_check="login"`, any upsmon user, but upsd logs every login), or not at all (`"none"`).
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
from typing import Final, Literal

from hecate.adapters.nut.protocol import ErrAnswer, ProtocolViolation, as_text, cut
from hecate.adapters.nut.session import PeerClosedError, UpsdSession
from hecate.config.addresses import UpsTarget
from hecate.core.readings import UpsReading, parse_reading
from hecate.errors import (
    ConfigError,
    UpsAuthError,
    UpsDriverDownError,
    UpsError,
    UpsTimeoutError,
    UpsUnreachableError,
)

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S: Final = 5.0

AuthCheck = Literal["primary", "login", "none"]

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
    """The peer answered, but not as upsd would (not a NUT server, or an unexpected error).

    `reason` is a short fixed phrase, for counting rejected answers by cause."""

    def __init__(self, message: str, reason: str = "unexpected answer") -> None:
        super().__init__(message)
        self.reason = reason


def reading_from_vars(variables: Mapping[str, str | bytes]) -> UpsReading:
    """Turn upsd's variables into an UpsReading with the one shared parser
    (`hecate.core.readings.parse_reading`: sane numbers, sentinels as unknown, a value that is not
    UTF-8 as unknown). Never raises. Every other variable lands in `extra`."""
    return parse_reading(variables)


_INSTCMD = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_VAR_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


class NutClient:
    """Reads one UPS from upsd. One short session per `read()`; nothing stays open between reads.

    `timeout_s` bounds the whole read (connect, authenticate, list variables), except host name
    resolution, which follows the system resolver's own timeouts: use an IP address to avoid it.
    """

    def __init__(
        self,
        target: UpsTarget,
        user: str | None = None,
        password: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        *,
        auth_check: AuthCheck = "primary",
    ) -> None:
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
    def target(self) -> UpsTarget:
        return self._target

    @property
    def user(self) -> str | None:
        return self._user

    @property
    def timeout_s(self) -> float:
        return self._timeout_s

    def __repr__(self) -> str:
        return (
            f"NutClient(target={self._target.canonical!r}, user={self._user!r},"
            f" timeout_s={self._timeout_s!r}, auth_check={self._auth_check!r})"
        )

    def read(self) -> UpsReading:
        """Read the UPS. Raises a UpsError subclass (see the module doc) on any failure."""
        return reading_from_vars(self.read_vars())

    def read_vars(self) -> dict[str, bytes]:
        """All variables of the UPS, values as upsd serves them (unescaped bytes)."""
        target = self._target
        log.debug("reading %s as %s", target.canonical, self._user or "(anonymous)")
        try:
            with self._session() as session:
                self._check_access(session)
                return session.list_vars(target.ups)
        except UpsUnknownError as exc:
            raise UpsUnknownError(f"{exc}{self._served_hint()}") from None

    def get_var(self, name: str) -> bytes:
        """One variable (`GET VAR`), its value as upsd serves it (unescaped bytes)."""
        if not _VAR_NAME.fullmatch(name):
            raise ConfigError(f"invalid NUT variable name {name!r}")
        try:
            with self._session() as session:
                self._check_access(session)
                return session.get_var(self._target.ups, name)
        except UpsUnknownError as exc:
            raise UpsUnknownError(f"{exc}{self._served_hint()}") from None

    def _check_access(self, session: UpsdSession) -> None:
        if self._user is not None and self._auth_check == "primary":
            session.check_primary(self._target.ups)
        elif self._user is not None and self._auth_check == "login":
            session.device_login(self._target.ups)

    def _served_hint(self) -> str:
        """`; it serves: a, b` (what `upsc -l` would list), for a wrong UPS name."""
        try:
            names = sorted(self.ups_names())
        except UpsError:
            return ""
        return f"; it serves: {', '.join(names)}" if names else "; it serves no UPS at all"

    def ups_names(self) -> dict[str, str]:
        """The UPSes this upsd serves (name -> description), as `upsc -l` lists them.

        Anonymous: needs no user. Raises a UpsError subclass on any failure. A description is
        for people only: bytes that are not UTF-8 show as U+FFFD."""
        with self._session(authenticate=False) as session:
            listed = session.list_ups()
        return {name: desc.decode("utf-8", "replace") for name, desc in listed.items()}

    def instant_command(self, command: str) -> None:
        """Run an instant command on the UPS, e.g. `shutdown.return` (cut the output after the
        UPS's shutdown delay, restore it when mains returns)."""
        if self._user is None:
            raise ConfigError("an instant command needs ups.user and ups.password_file")
        if not _INSTCMD.fullmatch(command):
            raise ConfigError(f"invalid NUT instant command {command!r}")
        log.info("sending instant command %s to %s", command, self._target.canonical)
        with self._session() as session:
            session.instant_command(self._target.ups, command)

    @contextlib.contextmanager
    def _session(self, *, authenticate: bool = True) -> Iterator[UpsdSession]:
        """One connection (authenticated when there is a user), closed at the end; every
        failure becomes a UpsError."""
        target = self._target
        deadline = time.monotonic() + self._timeout_s
        session: UpsdSession | None = None
        try:
            session = UpsdSession(target.host, target.port, deadline)
            if authenticate and self._user is not None and self._password is not None:
                session.authenticate(self._user, self._password)
            yield session
        except Exception as exc:
            error = self._translate(exc)
            if self._leaks_secret(exc) or isinstance(exc, ErrAnswer | ProtocolViolation):
                raise error from None  # the error says all; the chain could hold a secret
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
        where = self._target.canonical
        if isinstance(exc, ErrAnswer):
            return self._translate_answer(exc.code, self._redact(exc.text))
        if isinstance(exc, ProtocolViolation):
            # redacted before it is cut: a cut could split the password past recognition
            at = f": {cut(self._redact(as_text(exc.line)))!r}" if exc.line else ""
            return UpsProtocolError(
                f"{where}: answer rejected, {exc.reason}{at} (not what upsd sends for this"
                " request; is this a NUT server?)",
                reason=exc.reason,
            )
        if isinstance(exc, TimeoutError):
            return UpsTimeoutError(f"{where}: no answer from upsd within {self._timeout_s:g} s")
        if isinstance(exc, OSError):
            return UpsUnreachableError(f"{where}: {self._network_problem(exc)}")
        raise exc

    def _network_problem(self, exc: OSError) -> str:
        if isinstance(exc, socket.gaierror):
            return f"cannot resolve host {self._target.host!r} ({exc.strerror})"
        if isinstance(exc, ConnectionRefusedError):
            return "connection refused (is upsd running?)"
        if isinstance(exc, PeerClosedError):
            return "upsd closed the connection before answering"
        if isinstance(exc, ConnectionError):  # reset, aborted, broken pipe
            return f"upsd closed the connection before answering ({exc.strerror})"
        return f"cannot reach upsd ({exc.strerror or type(exc).__name__})"

    def _translate_answer(self, code: str, answer: str) -> UpsError:
        where = self._target.canonical
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
        return UpsProtocolError(f"{where}: upsd refused the request ({answer})", f"ERR {code}")
