"""Real files for a config that `hecate config check` accepts: the kubeconfig, the SSH key and
the NUT password the example names, made in a test's tmp_path (mode 0600, owned by the test)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

EXAMPLE = Path(__file__).resolve().parents[1] / "configs" / "hecate.example.yaml"
EXAMPLE_DATA: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())


def secret(path: Path, text: str) -> str:
    path.write_text(text)
    path.chmod(0o600)
    return str(path)


def with_files(data: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """`data` with every file the example names made real under tmp_path (a state dir too)."""
    data = copy.deepcopy(data)
    data["kubeconfig"] = secret(tmp_path / "kubeconfig.yaml", "apiVersion: v1\nkind: Config\n")
    data["ssh_identity_file"] = secret(tmp_path / "id_ed25519", "-----BEGIN KEY-----\n")
    ups = data.setdefault("ups", {})
    if ups.get("password_file") is not None:
        ups["password_file"] = secret(tmp_path / "nut-password", "s3cret\n")
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    data["state_dir"] = str(state)
    return data


def usable(tmp_path: Path) -> dict[str, Any]:
    """The example config with real files: `config check` says valid."""
    return with_files(EXAMPLE_DATA, tmp_path)
