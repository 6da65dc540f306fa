"""`config check`'s look at the files a config names: each exists, is a regular file, holds
something when it is a secret, and the daemon's user can read it (judged by the file's modes as
`hecate doctor` does, hecate.core.doctor.daemon_files). Parsing a config never looks at files:
this is I/O, for the commands that check (`config check`, `config init`, `doctor`)."""

from __future__ import annotations

import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from hecate.core.doctor.daemon_files import DaemonUser, PathMode, daemon_read_findings

if TYPE_CHECKING:
    from hecate.config.view import ConfigLike

# --------------------------------------------------------------------------- files named

# What to run to make each file (the README's After install steps); {path} is the file.
MAKE: Final = {
    "kubeconfig": "copy /etc/rancher/k3s/k3s.yaml from a server to {path}, with its server: line "
    "set to that server's address (chgrp hecate-daemon {path} && chmod 640 {path})",
    "ssh_identity_file": "ssh-keygen -t ed25519 -N '' -C hecate -f {path} && "
    "chown hecate-daemon: {path} (or set ssh_identity_file: null to use ssh-agent)",
    "ssh_config_file": "write the ssh_config there, or set ssh_config_file: null",
    # read -s: the password never reaches the shell's history or the process list
    "ups.password_file": "(umask 027; read -rsp 'password of ups.user in upsd.users: ' P && "
    "printf '%s\\n' \"$P\" > {path}) && chgrp hecate-daemon {path}, or set "
    "ups.password_file: null for anonymous reads",
    "coordination.token_file": "(umask 027; head -c 32 /dev/urandom | base64 > {path}) && chgrp "
    "hecate-daemon {path}, the same token on every instance (or set token_file: null)",
    "notify.urls_file": "(umask 027; printf '%s\\n' 'NAME URL' > {path}) && chgrp hecate-daemon "
    "{path}, one target a line (docs/operating/notifications.md), or set urls_file: null",
    "startup.gitea_bootstrap_manifests": "put the manifest there, or drop it from the list",
    "power.password_file": "(umask 027; read -rsp 'password of the BMC user: ' P && "
    "printf '%s\\n' \"$P\" > {path}) && chgrp hecate-daemon {path}",
}
# Files that hold a secret or credentials: empty is as good as missing.
MUST_HOLD_SOMETHING: Final = frozenset(
    {
        "kubeconfig",
        "ssh_identity_file",
        "ups.password_file",
        "coordination.token_file",
        "notify.urls_file",
        "power.password_file",
    }
)


@dataclass(frozen=True)
class NamedFile:
    key: str  # the config key (a list item's index included)
    path: Path
    kind: str  # the key MAKE and MUST_HOLD_SOMETHING know it by


def named_files(config: ConfigLike) -> list[NamedFile]:
    """Every file the config names, with the key that names it."""
    found = [NamedFile("kubeconfig", config.kubeconfig, "kubeconfig")]
    for key, path in (
        ("ssh_identity_file", config.ssh_identity_file),
        ("ssh_config_file", config.ssh_config_file),
        ("ups.password_file", config.ups.password_file),
        ("coordination.token_file", config.coordination.token_file),
        ("notify.urls_file", config.notify.urls_file),
    ):
        if path is not None:
            found.append(NamedFile(key, path, key))
    for index, manifest in enumerate(config.startup.gitea_bootstrap_manifests):
        kind = "startup.gitea_bootstrap_manifests"
        found.append(NamedFile(f"{kind}.{index}", manifest, kind))
    for key, path in config.power.password_files().items():  # power.nodes.NODE.password_file
        found.append(NamedFile(key, path, "power.password_file"))
    return found


def daemon_user(state_dir: Path) -> DaemonUser | None:
    """hecate.service's user: the owner of the state dir (the installer makes it
    hecate-daemon). None when that is root or whoever runs the check (nothing to tell apart)."""
    try:
        uid = state_dir.stat().st_uid
    except OSError:
        return None
    if uid in (0, os.geteuid()):
        return None
    try:
        entry = pwd.getpwuid(uid)
    except KeyError:
        return None
    gids = frozenset(os.getgrouplist(entry.pw_name, entry.pw_gid))
    return DaemonUser(entry.pw_name, uid, gids)


def path_chain(path: Path) -> list[PathMode]:
    """The modes of `path`'s directories from / down, then of the file; [] when it is missing
    (the checks of that file say so)."""
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return []
    chain = []
    for step in [*reversed(target.parents), target]:
        try:
            info = step.stat()
        except OSError:
            return []
        chain.append(PathMode(str(step), info.st_uid, info.st_gid, info.st_mode))
    return chain


def _holds_nothing(path: Path, kind: str) -> bool:
    """Whether a file that must hold a secret holds nothing usable (read by this process)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(4096)
    except OSError:
        return False  # the readability check reports it
    if kind == "ups.password_file":  # the daemon uses the first line (hecate.adapters.nut)
        return not head.split(b"\n", 1)[0].rstrip(b"\r")
    return not head.strip()


def _what_it_is(key: str, path: Path, make: str) -> str | None:
    """Why `path` is not a regular file (missing, a directory, a device), or None."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return f"{key}: {path} does not exist; create it: {make}"
    except OSError as exc:
        return f"{key}: {path} cannot be checked: {exc.strerror}"
    if stat.S_ISDIR(mode):
        return f"{key}: {path} is a directory, not a file; name the file itself"
    if not stat.S_ISREG(mode):
        return f"{key}: {path} is not a regular file (a FIFO, socket or device?)"
    return None


def _unreadable(key: str, path: Path, user: DaemonUser | None) -> str | None:
    if user is not None:  # run as root: judge the daemon's user by the modes, as doctor does
        for finding in daemon_read_findings(user, {key: path_chain(path)}):
            if finding.status == "fail":
                return f"{key}: {finding.detail}; run: {finding.fix}"
        return None
    if not os.access(path, os.R_OK):
        return f"{key}: {path} cannot be read by this user ({pwd.getpwuid(os.geteuid()).pw_name})"
    return None


def _one_file(named: NamedFile, user: DaemonUser | None) -> str | None:
    key, path = named.key, named.path
    make = MAKE[named.kind].format(path=path)
    problem = _what_it_is(key, path, make) or _unreadable(key, path, user)
    if problem is None and named.kind in MUST_HOLD_SOMETHING and _holds_nothing(path, named.kind):
        problem = f"{key}: {path} is empty; {make}"
    if problem is None and named.kind == "notify.urls_file":
        problem = _urls_problem(key, path)
    return problem


def _urls_problem(key: str, path: Path) -> str | None:
    """The URLs file's lines checked as the daemon reads them (the error names the line and
    the target, never the URL)."""
    try:
        with path.open("rb") as handle:
            text = handle.read(64 * 1024).decode("utf-8")
        # pydantic (the targets are models): only when the config names a URLs file
        from hecate.config.notify import parse_urls_text  # noqa: PLC0415

        parse_urls_text(text, str(path))
    except OSError:
        return None  # the readability check reports it
    except UnicodeDecodeError:
        return f"{key}: {path} is not UTF-8 text"
    except ValueError as exc:
        return f"{key}: {exc}"
    return None


def file_use_problems(config: ConfigLike, *, as_user: DaemonUser | None = None) -> list[str]:
    """Every file the config names, checked for its use: it exists, is a regular file, holds
    something when it is a secret or credentials, and the daemon's user can read it. Run as
    root, that user is the state dir's owner (`daemon_user`) and is judged by the modes of the
    file and its directories (root itself reads anything); otherwise it is this process.
    `config check` reports these as errors; parsing never looks at files."""
    user = as_user or (daemon_user(config.state_dir) if os.geteuid() == 0 else None)
    problems = [p for named in named_files(config) if (p := _one_file(named, user))]
    try:
        state_mode = config.state_dir.stat().st_mode
    except OSError:
        state_mode = None  # the daemon creates it
    if state_mode is not None and not stat.S_ISDIR(state_mode):
        problems.append(f"state_dir: {config.state_dir} exists and is not a directory")
    return problems
