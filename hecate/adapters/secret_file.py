"""Reading a secret file: the NUT password, the coordination token, and every secret to come.

One rule for all of them (what makes a file loose is `hecate.config.checks.loose_reason`, which
`hecate config check` applies too):

- it must open (a FIFO or a device does not block the read: opened non-blocking), be a regular
  file and not be empty; otherwise it is refused (ConfigError naming the file, never its
  content);
- it is *loose* when its owner is neither root nor the user reading it, or when others have any
  access or its group may write or execute it (a group that only reads is how the installed,
  unprivileged daemon reads root:hecate-daemon 0640 files).

A loose file is refused where a secret is only ever written by Hecate's installer and an
operator's mistake cannot take protection away (the coordination token: peers would otherwise
sign with a token others can read). The NUT password, which installs before Hecate already have,
is read with a warning instead: refusing it would stop the daemon from reading the UPS at all.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Literal

from hecate.config.checks import LOOSE_FILE_ADVICE, loose_reason
from hecate.errors import ConfigError

log = logging.getLogger(__name__)

MAX_SECRET_BYTES = 64 * 1024  # far above a password or a token; a bounded read
LoosePolicy = Literal["refuse", "warn"]


def read_secret_file(
    path: str | os.PathLike[str], what: str, *, loose: LoosePolicy, min_bytes: int = 1
) -> bytes:
    """The bytes of the secret file at `path` (`what` names it in errors: "NUT password file").

    Raises ConfigError when it cannot be read, is not a regular file, is empty or holds fewer
    than `min_bytes` bytes (surrounding blanks aside), and, with
    ``loose="refuse"``, when it is loose (see the module doc); ``loose="warn"`` logs instead.
    """
    file = Path(path)
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {file}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{what} {file} is not a regular file")
        data = os.read(fd, MAX_SECRET_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {file}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_SECRET_BYTES:
        raise ConfigError(f"{what} {file} is larger than {MAX_SECRET_BYTES} bytes")
    if not data.strip():
        raise ConfigError(f"{what} {file} is empty")
    if len(data.strip()) < min_bytes:
        raise ConfigError(f"{what} {file} is shorter than {min_bytes} bytes")
    reason = loose_reason(st.st_mode, st.st_uid, os.geteuid())
    if reason is not None:
        advice = LOOSE_FILE_ADVICE.format(path=file)
        if loose == "refuse":
            raise ConfigError(f"{what} {file} {reason}: refused; run: {advice}")
        log.warning("%s %s %s (%s)", what, file, reason, advice)
    return data
