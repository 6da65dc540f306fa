"""The shutdown ledger: what Hecate itself suspended and cordoned, so startup undoes only that.

Kept in `state_dir/ledger.json`, written atomically before a shutdown's changes, so an
interrupted shutdown still knows what to undo, and after a startup's undoing (the Flux resumes:
once, after all of them; one a crash cut short is resumed again, which changes nothing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hecate.adapters.statedir.files import _dumps, load_state
from hecate.adapters.statedir.save import replace_unreadable, save_json
from hecate.errors import StateCorruptError, StateError

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


def _decode(data: object) -> Ledger:
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("suspended", []), list)
        or not isinstance(data.get("cordoned", []), list)
        or not all(_valid_key(k) for k in data.get("suspended", []))
        or not all(isinstance(n, str) for n in data.get("cordoned", []))
        or not isinstance(data.get("run_id"), str | None)
    ):
        raise StateCorruptError("expected {suspended: [Kind/ns/name], cordoned: [node]}")
    return Ledger(
        suspended=[str(k) for k in data.get("suspended", [])],
        cordoned=[str(n) for n in data.get("cordoned", [])],
        run_id=data.get("run_id"),
    )


def load_ledger(state_dir: Path) -> Ledger:
    """The ledger; StateCorruptError (the file set aside) when it cannot be read."""
    return load_state(state_dir / LEDGER_FILE, _decode) or Ledger()


def load_ledger_or_new(state_dir: Path) -> tuple[Ledger, str]:
    """The ledger, or a new one when it was corrupt (set aside); plus the problem, if any.

    A corrupt or unreadable ledger never delays or skips a stage: the flow goes on with a new
    one. An unreadable one (a failing disk) is never written over: it is moved aside first,
    or, when it cannot be, the new one is kept apart
    (hecate.adapters.statedir.save.replace_unreadable).
    """
    problem = ""
    for _ in range(3):  # a corrupt kept copy, then a corrupt file: each set aside
        try:
            return load_ledger(state_dir), problem
        except StateCorruptError as exc:
            problem = str(exc)
        except StateError as exc:  # unreadable: what it says is still to be undone
            replace_unreadable(state_dir / LEDGER_FILE, _dumps(_encode(Ledger())), str(exc))
            return Ledger(), str(exc)
    return Ledger(), problem


def _encode(ledger: Ledger) -> dict[str, object]:
    return {"suspended": ledger.suspended, "cordoned": ledger.cordoned, "run_id": ledger.run_id}


def save_ledger(state_dir: Path, ledger: Ledger) -> None:
    """Written, or kept until the disk allows (hecate.adapters.statedir.save): never stops a
    stage."""
    save_json(state_dir / LEDGER_FILE, _encode(ledger))


def _valid_key(key: object) -> bool:
    return (
        isinstance(key, str)
        and key.count("/") >= 2
        and key.split("/", 1)[0] in {"Kustomization", "HelmRelease", "GitRepository"}
    )


def split_key(key: str) -> tuple[str, str, str]:
    kind, namespace, name = key.split("/", 2)
    return kind, namespace, name
