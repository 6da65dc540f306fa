"""Can the unprivileged daemon read what its config names? (`hecate doctor`'s daemon.reads.*)

Pure: judged from the mode bits of each file and of its directories (no ACLs), as stat gave
them, for the user hecate.service runs as. doctor itself runs as root, so its own probes would
read a file the daemon cannot open; this is what tells the two apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from hecate.core.doctor.findings import Finding, fail, ok


@dataclass(frozen=True)
class PathMode:
    """What stat says of one path: its owner, group and permission bits."""

    path: str
    uid: int
    gid: int
    mode: int


@dataclass(frozen=True)
class DaemonUser:
    """The user hecate.service runs as (the owner of state_dir) and its groups."""

    name: str
    uid: int
    gids: frozenset[int]


# Files the daemon's user must own (mode 0600) rather than read through its group.
OWNER_ONLY_FILES: Final = frozenset({"ssh_identity_file"})


def _may(user: DaemonUser, entry: PathMode, bit: int) -> bool:
    """Whether the mode bits give `user` the permission `bit` (4 read, 1 search): the owner's
    bits for the owner, the group's for a member, the others' for anyone else (no ACLs)."""
    if user.uid == 0:
        return True
    if entry.uid == user.uid:
        return bool(entry.mode & (bit << 6))
    if entry.gid in user.gids:
        return bool(entry.mode & (bit << 3))
    return bool(entry.mode & bit)


def daemon_read_findings(
    user: DaemonUser, files: Mapping[str, Sequence[PathMode]]
) -> list[Finding]:
    """Can the unprivileged daemon read what its config names? `files` maps a config key to
    the chain of one file: its directories from / down, then the file. A file root made with
    root's group (`umask 077`, `ssh-keygen`, a copied kubeconfig) passes every other check when
    doctor runs as root, while hecate.service, running as `user`, cannot open it: its shutdown
    would fail at the first SSH connection."""
    findings = []
    for key, chain in sorted(files.items()):
        if not chain:
            continue
        *parents, leaf = chain
        closed = [p for p in parents if not _may(user, p, 1)]
        if closed:
            where = closed[0]
            findings.append(
                fail(
                    f"daemon.reads.{key}",
                    f"{user.name} (hecate.service) cannot reach {leaf.path}: directory "
                    f"{where.path} is {where.mode & 0o7777:04o} {where.uid}:{where.gid}",
                    f"chgrp {user.name} {where.path} && chmod g+x {where.path} (or move the file "
                    "under /etc/hecate)",
                )
            )
        elif not _may(user, leaf, 4):
            # ssh refuses a private key its group may read when its owner runs ssh (root, for
            # doctor): the key becomes the daemon's own, 0600; root still reads it
            fix = (
                f"chown {user.name}: {leaf.path} && chmod 600 {leaf.path}"
                if key in OWNER_ONLY_FILES
                else f"chgrp {user.name} {leaf.path} && chmod 640 {leaf.path}"
            )
            findings.append(
                fail(
                    f"daemon.reads.{key}",
                    f"{user.name} (hecate.service) cannot read {leaf.path} (mode "
                    f"{leaf.mode & 0o7777:04o}, owner {leaf.uid}, group {leaf.gid})",
                    fix,
                )
            )
    if not findings:
        names = ", ".join(sorted(k for k, chain in files.items() if chain))
        findings.append(ok("daemon.reads", f"{user.name} (hecate.service) can read {names}"))
    return findings
