"""`hecate doctor`'s daemon.reads.* checks, the I/O side: who hecate.service runs as (the state
dir's owner) and the modes of each file it must read and of its directories; the verdict is
hecate.core.doctor.daemon_files'."""

from __future__ import annotations

from pathlib import Path

from hecate.adapters.ansible.inventory import known_hosts_path
from hecate.cli.config_files import daemon_user, path_chain
from hecate.config.model import HecateConfig
from hecate.core.doctor.daemon_files import daemon_read_findings
from hecate.core.doctor.findings import Finding


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
