"""The shutdown ledger: what Hecate itself suspended and cordoned, so startup undoes only that.

Kept in `state_dir/ledger.json`, written atomically after every change so an interrupted
shutdown still knows what to undo.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hecate.errors import StateCorruptError
from hecate.statefiles import atomic_write_json, read_json, set_aside

LEDGER_FILE = "ledger.json"


@dataclass
class Ledger:
    suspended: list[str] = field(default_factory=list)  # FluxObject.key: Kind/namespace/name
    cordoned: list[str] = field(default_factory=list)
    run_id: str | None = None

    def add_suspended(self, key: str) -> None:
        if key not in self.suspended:
            self.suspended.append(key)

    def add_cordoned(self, node: str) -> None:
        if node not in self.cordoned:
            self.cordoned.append(node)


def load_ledger(state_dir: Path) -> Ledger:
    path = state_dir / LEDGER_FILE
    data = read_json(path)
    if data is None:
        return Ledger()
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("suspended", []), list)
        or not isinstance(data.get("cordoned", []), list)
        or not all(_valid_key(k) for k in data.get("suspended", []))
    ):
        kept = set_aside(path)
        raise StateCorruptError(f"{path} has an invalid shape; it was moved to {kept}")
    return Ledger(
        suspended=[str(k) for k in data.get("suspended", [])],
        cordoned=[str(n) for n in data.get("cordoned", [])],
        run_id=data.get("run_id"),
    )


def save_ledger(state_dir: Path, ledger: Ledger) -> None:
    atomic_write_json(
        state_dir / LEDGER_FILE,
        {"suspended": ledger.suspended, "cordoned": ledger.cordoned, "run_id": ledger.run_id},
    )


def _valid_key(key: object) -> bool:
    return (
        isinstance(key, str)
        and key.count("/") >= 2
        and key.split("/", 1)[0] in {"Kustomization", "HelmRelease", "GitRepository"}
    )


def split_key(key: str) -> tuple[str, str, str]:
    kind, namespace, name = key.split("/", 2)
    return kind, namespace, name
