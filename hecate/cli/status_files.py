"""What `hecate status` reads of the state directory besides the intent and the runs: an
unfinished etcd recovery, the files the disk refused, and what load shedding has shed
(`shed.json`, issue 28). Read-only: a corrupt file is reported, never moved."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from hecate.adapters.statedir.files import read_json
from hecate.adapters.statedir.shed_file import SHED_FILE, load_shed
from hecate.adapters.statedir.unsaved import unsaved_files
from hecate.core.shed import ShedBlocked, shed_configured
from hecate.errors import StateError

if TYPE_CHECKING:
    from hecate.config.view import ConfigLike


def recovery_problem(state_dir: Path) -> list[str]:
    """An unfinished `hecate recover etcd` (state_dir/etcd-recovery.json), from the file only."""
    try:
        recovery = read_json(state_dir / "etcd-recovery.json", move=False)
    except StateError as exc:
        return [str(exc)]
    if not isinstance(recovery, dict) or recovery.get("outcome") in (None, "success"):
        return []
    why = recovery.get("detail") or recovery.get("outcome")
    return [
        f"an etcd recovery is unfinished ({why}): `hecate recover etcd` says where it "
        "stopped, --execute finishes it"
    ]


def unsaved_json(state_dir: Path) -> list[dict[str, Any]]:
    """The state files the disk refused and that are kept until it allows
    (hecate.adapters.statedir.unsaved)."""
    return [
        {
            "file": f.name,
            "error": f.error,
            "since": f.since,
            "kept_in": str(f.copy) if f.copy is not None else None,
        }
        for f in unsaved_files(state_dir)
    ]


def unsaved_problem(unsaved: list[dict[str, Any]]) -> str:
    names = ", ".join(str(u["file"]) for u in unsaved)
    kept = next((u["kept_in"] for u in unsaved if u["kept_in"]), None)
    where = f"kept in {Path(kept).parent}" if kept else "kept in memory"
    return (
        f"state files not saved: {names} ({unsaved[0]['error']}); {where} and written when "
        "the state disk allows (flows still run; a startup is refused until it can write)"
    )


def shed_status(config: ConfigLike, stamp: float) -> dict[str, Any] | None:
    """`status --json`'s `shed` (None: power.shed sets nothing to shed and nothing is shed):
    `state` none | shed | shedding (a shed cut short, carried on while on battery) |
    unreadable (fail closed: nothing is shed or restored until an operator clears it)."""
    try:
        found = load_shed(config.state_dir, move=False, now=stamp)
    except StateError as exc:
        found = ShedBlocked(stamp, "", str(exc))
    if found is None:
        return {"state": "none"} if shed_configured(config.power.shed) else None
    path = str(config.state_dir / SHED_FILE)
    if isinstance(found, ShedBlocked):
        return {"state": "unreadable", "problem": found.problem, "kept": found.kept, "file": path}
    return {
        "state": "shed" if found.complete else "shedding",
        "since": found.since,
        "for_s": round(max(0.0, stamp - found.since), 1),
        "reason": found.reason,
        **{k: v for k, v in found.to_json().items() if k not in ("since", "reason", "complete")},
        "file": path,
    }


def shed_status_lines(shed: dict[str, Any] | None) -> list[str]:
    if shed is None:
        return []
    state = shed["state"]
    if state == "none":
        return ["shed:    nothing shed"]
    if state == "unreadable" and not shed["kept"]:  # the disk, not the content
        return [
            f"shed:    RECORD CANNOT BE READ ({shed['problem']}): nothing is shed or restored "
            "automatically until it reads again (check the state disk; the daemon reads it "
            "again by itself); shutdowns are not affected"
        ]
    if state == "unreadable":
        return [
            f"shed:    RECORD UNREADABLE ({shed['problem']}): nothing is shed or restored "
            f"automatically; restore by hand from {shed['kept']}, then remove {shed['file']} "
            "(the daemon sees it within a minute); shutdowns are not affected"
        ]
    minutes = shed["for_s"] / 60
    lines = [
        f"shed:    {'shedding (cut short)' if state == 'shedding' else 'shed'} for "
        f"{minutes:.0f} min ({shed['reason']}); restored once mains is stable"
    ]
    lines += [
        f"  {w['kind']}/{w['namespace']}/{w['name']} at 0 (was {w['replicas']})"
        for w in shed["workloads"]
    ]
    if shed["flux_suspended"]:
        lines.append(f"  Flux suspended by Hecate: {', '.join(shed['flux_suspended'])}")
    if shed["autoscalers"]:
        lines.append(f"  HPAs (left alone, idle at 0): {', '.join(shed['autoscalers'])}")
    if shed["agents"]:
        lines.append(f"  agents powered off: {', '.join(shed['agents'])}")
    if on := [n for n in shed["cordoned"] if n not in shed["agents"]]:
        lines.append(f"  agents left on, cordoned (not drained): {', '.join(on)}")
    return lines
