"""`hecate doctor`'s daemon.reads.* checks, the I/O side: who hecate.service runs as (the state
dir's owner) and the modes of each file it must read and of its directories; the verdict is
hecate.core.doctor.daemon_files'."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from hecate.adapters.ansible.inventory import known_hosts_path
from hecate.config.model import HecateConfig
from hecate.core.doctor.daemon_files import DaemonUser, PathMode, daemon_read_findings
from hecate.core.doctor.findings import Finding


def daemon_user(state_dir: Path) -> DaemonUser | None:
    """hecate.service's user: the owner of the state dir (the installer makes it
    hecate-daemon). None when that is root or whoever runs doctor (nothing to tell apart)."""
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


def daemon_read_checks(cfg: HecateConfig, config_path: str) -> list[Finding]:
    user = daemon_user(cfg.state_dir)
    if user is None:
        return []
    files: dict[str, Path | None] = {
        "config": Path(config_path),
        "kubeconfig": cfg.kubeconfig,
        "ssh_identity_file": cfg.ssh_identity_file,
        "ssh_config_file": cfg.ssh_config_file,
        "ssh_known_hosts": known_hosts_path(cfg),
        **cfg.secret_files(),
    }
    chains = {key: path_chain(path) for key, path in files.items() if path is not None}
    return daemon_read_findings(user, chains)
