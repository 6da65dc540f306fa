"""Checks of a valid config against this machine (`hecate config check`): listen hosts that can be
bound, and every file the config names fit for its use (exists, a regular file, not empty when
it holds a secret or credentials, readable by the daemon's user).

Parsing (`hecate.config`) stays pure: commands that must work without these files (`status`,
`replay`) never look at them; `config check` runs these, and each command that uses a file
still fails on it when it does.
"""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hecate.config.model import HecateConfig
    from hecate.config.view import ConfigLike

Resolver = Callable[[str, int], None]


def _bind_check(host: str, _port: int) -> None:
    """Resolve `host` and bind it on a free port: raises OSError when it is not local."""
    infos = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)
    family, kind, proto, _, sockaddr = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.bind((sockaddr[0], 0, *sockaddr[2:]))


def resolve_problems(config: ConfigLike, check: Resolver = _bind_check) -> list[str]:
    """`config check --resolve`: listen hosts must resolve to an address of this machine."""
    problems = []
    listens = [("metrics.listen", config.metrics.listen)]
    if config.coordination.role == "coordinator":
        listens.append(("coordination.listen", config.coordination.listen))
    for key, listen in listens:
        if not listen.host:
            continue
        try:
            check(listen.host, listen.port)
        except (OSError, UnicodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            problems.append(f"{key}: {listen.host!r} cannot be bound here ({reason})")
    return problems


# A secret file may be read by its group: the installer makes them root:hecate-daemon 0640, and
# the unprivileged daemon reads them through that group (0600 root would lock it out). Access by
# others, or a group that may write or execute it, is what is warned about.
LOOSE_FILE_BITS = stat.S_IRWXO | stat.S_IWGRP | stat.S_IXGRP
LOOSE_FILE_ADVICE = "chmod 600 {path}, or chmod 640 with the daemon's group (chgrp hecate-daemon)"


def loose_reason(mode: int, owner: int, reader_uid: int) -> str | None:
    """Why a secret file with this mode and owner, read by `reader_uid`, is loose (None: it is
    not): someone else owns it, or others have any access or its group may write or run it.
    The one rule of hecate/adapters/secret_file.py. Pure."""
    if owner not in (0, reader_uid):
        return f"is owned by uid {owner}, neither root nor the reading user ({reader_uid})"
    if mode & LOOSE_FILE_BITS:
        return f"is accessible by others or writable by its group (mode {stat.S_IMODE(mode):04o})"
    return None


def secret_file_warnings(config: ConfigLike) -> list[str]:
    """Warnings for secret files that are missing, or open to others or to a group's writes
    (a group that only reads is how the installed daemon reads them)."""
    warnings = []
    for key, path in config.secret_files().items():
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            warnings.append(f"{key}: {path} does not exist")
            continue
        except OSError as exc:
            warnings.append(f"{key}: {path} cannot be checked: {exc.strerror}")
            continue
        if not stat.S_ISREG(mode):
            continue  # not a file at all: file_use_problems says so (no chmod advice)
        if mode & LOOSE_FILE_BITS:
            warnings.append(
                f"{key}: {path} is accessible by others or writable by its group "
                f"(mode {stat.S_IMODE(mode):04o}); run: {LOOSE_FILE_ADVICE.format(path=path)}"
            )
    return warnings


def secret_file_errors(config: HecateConfig) -> list[str]:
    """Secret files the daemon cannot start without: a missing ups.password_file (the daemon
    reads it once at start and exits), a loose coordination.token_file (refused: see
    hecate/adapters/secret_file.py). `config check` reports these as errors."""
    errors = []
    path = config.ups.password_file
    if path is not None and not path.exists():
        errors.append(
            f"ups.password_file: {path} does not exist; write the upsd user's password there "
            f"(chmod 600 {path}), or set ups.password_file: null for anonymous reads"
        )
    token = config.coordination.token_file
    try:
        st = token.stat() if token is not None else None
    except OSError:
        st = None  # missing or unreadable: secret_file_warnings says so
    reason = None if st is None else loose_reason(st.st_mode, st.st_uid, os.geteuid())
    if token is not None and reason is not None:
        errors.append(
            f"coordination.token_file: {token} {reason}: the daemon refuses it; run: "
            f"{LOOSE_FILE_ADVICE.format(path=token)}"
        )
    return errors
