"""The one NUT port: `Ups`, built once with its credentials, reads the UPS and runs instant
commands. The daemon, the CLI and the flows reach NUT only through it (or the thin wrappers
below, kept for their callers).

`Ups.poll()` is the daemon's read: an `UpsReading`, or a `CommError` instead of raising.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from os import PathLike
from typing import TYPE_CHECKING, Final, Protocol

from hecate.adapters.nut.client import NutClient, UpsProtocolError, UpsUnknownError
from hecate.adapters.secret_file import read_secret_file
from hecate.config.addresses import UpsTarget
from hecate.core.readings import CommError, Poll, UpsReading
from hecate.errors import (
    ConfigError,
    UpsAuthError,
    UpsDriverDownError,
    UpsError,
    UpsTimeoutError,
)

if TYPE_CHECKING:
    from hecate.config.view import ConfigLike

log = logging.getLogger(__name__)

# CommError.kind values poll() produces.
KIND_UNREACHABLE: Final = "unreachable"
KIND_DRIVER_DOWN: Final = "driver_down"
KIND_AUTH: Final = "auth"
KIND_TIMEOUT: Final = "timeout"
KIND_UNKNOWN_UPS: Final = "unknown_ups"
KIND_PROTOCOL: Final = "protocol"

# A upsd that keeps sending a malformed answer is logged at its first poll, then this seldom.
REJECTED_LOG_EVERY: Final = 100


class UpsReader(Protocol):
    """Anything that reads a UPS the way NutClient does (fakes in tests, for instance)."""

    def read(self) -> UpsReading: ...


class UpsPort(Protocol):
    """What the rest of Hecate needs of a UPS: a poll that never raises a UpsError, and an
    instant command (`shutdown.return`) that raises one when it fails."""

    def poll(self) -> Poll: ...

    def instant_command(self, command: str) -> None: ...


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

    Read by the one secret-file rule (hecate/adapters/secret_file.py): refused (ConfigError
    naming the file, never its content) when unreadable, not a regular file or empty; a loose
    file (open to others, writable by its group, someone else's) is read with a warning.
    """
    data = read_secret_file(path, "NUT password file", loose="warn")
    try:
        text = data.decode("utf-8")
    except UnicodeError:
        raise ConfigError(f"cannot read NUT password file {path}: not UTF-8 text") from None
    password = text.split("\n", 1)[0].rstrip("\r")
    if not password:
        raise ConfigError(f"NUT password file {path} is empty")
    return password


class Ups:
    """The NUT port for one UPS: read it, poll it, send it an instant command.

    Built once (`Ups.from_config`), with the password read from `ups.password_file` at that
    moment: reads and instant commands reuse the same client, nothing re-reads the file.
    Each call is still one short upsd session (see `NutClient`).
    """

    def __init__(self, client: NutClient) -> None:
        self._client = client
        self._rejected: Counter[str] = Counter()

    @classmethod
    def from_config(cls, config: ConfigLike) -> Ups:
        """The UPS a config names: the one way to reach it from a config (the daemon, the CLI
        and the flows all build it here). Without `ups.password_file` the read is anonymous.
        Raises ConfigError for an unreadable password file."""
        ups = config.ups
        if ups.password_file is None:
            return cls(NutClient(ups.target, timeout_s=ups.timeout_seconds, auth_check="none"))
        password = read_password_file(ups.password_file)
        return cls(
            NutClient(
                ups.target,
                ups.user,
                password,
                timeout_s=ups.timeout_seconds,
                auth_check=ups.auth_check,
            )
        )

    @property
    def client(self) -> NutClient:
        return self._client

    @property
    def target(self) -> UpsTarget:
        return self._client.target

    def __repr__(self) -> str:
        return f"Ups({self._client!r})"

    def read(self) -> UpsReading:
        """Read the UPS; raises a UpsError subclass on any failure."""
        return self._client.read()

    def poll(self) -> Poll:
        """Read the UPS; a CommError instead of raising (the daemon's and the guards' read).

        An answer that breaks the protocol is a failed poll of kind `protocol` (counted by kind
        in the metrics); here it is also counted by reason (`rejected_answers`), and logged as
        a warning the first time a reason occurs and every `REJECTED_LOG_EVERY` times after."""
        try:
            return self._client.read()
        except UpsError as exc:
            if isinstance(exc, UpsProtocolError):
                self._note_rejected(exc)
            else:
                log.debug("UPS poll failed: %s", exc)
            return CommError(message=str(exc), kind=comm_error_kind(exc))

    @property
    def rejected_answers(self) -> Mapping[str, int]:
        """How many answers were refused, by reason (a short fixed phrase), since start."""
        return dict(self._rejected)

    def _note_rejected(self, exc: UpsProtocolError) -> None:
        self._rejected[exc.reason] += 1
        count = self._rejected[exc.reason]
        if count == 1 or count % REJECTED_LOG_EVERY == 0:
            log.warning("UPS answer rejected (%d so far for this reason): %s", count, exc)

    def instant_command(self, command: str) -> None:
        """Run an instant command, e.g. `shutdown.return`. Raises ConfigError without a user,
        a UpsError when upsd refuses or cannot be reached."""
        self._client.instant_command(command)

    def ups_names(self) -> dict[str, str]:
        """The UPSes the same upsd serves (name -> description)."""
        return self._client.ups_names()
