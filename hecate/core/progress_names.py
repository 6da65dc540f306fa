"""Human names for the stages and node steps that progress lines show (pure, no I/O).

Stage names (`stop_agents`) stay the keys of reports, runs and logs; a person watching a run
reads `stop k3s on agents`. Ansible task names are written for the playbook's reader, some
with the role's mechanics in them ("Read, change and confirm in one step k3s-agent"): a
progress line says what happened to the node instead ("k3s-agent stopped").
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

STAGE_LABELS: Final[dict[str, str]] = {
    # shutdown
    "intent": "record the intent",
    "flux_suspend": "suspend Flux",
    "cordon": "cordon the nodes",
    "drain": "drain the agents",
    "etcd_snapshot": "etcd snapshot",
    "stop_agents": "stop k3s on agents",
    "stop_servers": "stop k3s on servers",
    "poweroff_agents": "power off agents",
    "poweroff_servers": "power off servers",
    "power_confirm": "confirm nodes off",
    "ups_kill_power": "UPS power cut",
    "record": "record the run",
    # startup
    "guards": "startup guards",
    "power_on": "power on the nodes",
    "time_sync": "check the clocks",
    "start_servers": "start k3s on servers",
    "etcd_quorum": "wait for etcd quorum",
    "wait_api": "wait for the API",
    "start_agents": "start k3s on agents",
    "nodes_ready": "wait for Nodes Ready",
    "storage": "wait for storage",
    "foundation": "bring back the foundation",
    "flux_resume": "resume Flux",
    "flux_ready": "wait for Flux",
    "shed_restore": "restore what was shed",
    "probes": "probes",
    "soak": "soak",
    # set-up notes (hecate/flows/open_context.py)
    "kube": "Kubernetes API",
    "inventory": "inventory",
    "startup": "startup",
    # hecate recover etcd, the etcd drills (hecate/flows/recover_etcd.py, hecate/drills)
    "recover": "recover etcd",
    "drill": "drill",
}


def stage_label(name: str) -> str:
    """A stage's name as a person reads it; an unknown name with its underscores as spaces."""
    return STAGE_LABELS.get(name, name.replace("_", " "))


_PAST = {"start": "started", "stop": "stopped", "restart": "restarted"}


def _unit_step(stage: str, status: str, unit: str) -> str:
    verb = stage.split("_", 1)[0] if stage.split("_", 1)[0] in _PAST else "change"
    if verb == "change":
        return f"{unit} changed" if status == "changed" else f"{unit} checked"
    if status == "changed":
        return f"{unit} {_PAST[verb]}"
    if status == "ok":
        return f"{unit} already {_PAST[verb]}"
    return f"could not {verb} {unit}"


def _power_step(stage: str, status: str, marker: bool) -> str:
    del stage
    what = "poweroff marker written" if marker else "poweroff started"
    if status == "changed":
        return what
    if status == "ok":
        return "nothing to power off" if not marker else "poweroff marker already there"
    return "could not write the poweroff marker" if marker else "could not power off"


# (task name pattern, step text from (stage, status, match)); the first match wins.
_STEPS: Final[list[tuple[re.Pattern[str], Callable[[str, str, re.Match[str]], str]]]] = [
    (
        re.compile(r"Read, change and confirm in one step (?P<unit>\S+)"),
        lambda stage, status, m: _unit_step(stage, status, m["unit"]),
    ),
    (
        re.compile(r"Change with become (?P<action>\w+) (?P<unit>\S+)"),
        lambda stage, status, m: _unit_step(f"{m['action']}_", status, m["unit"]),
    ),
    (
        re.compile(r"Read the state of the unit (?P<unit>\S+)"),
        lambda stage, status, m: f"read the state of {m['unit']}",
    ),
    (
        re.compile(r"Wait until the unit has settled (?P<unit>\S+)"),
        lambda stage, status, m: f"{m['unit']} settled",
    ),
    (
        re.compile(r"Power off, or write the marker, in one step|Power off with become"),
        lambda stage, status, m: _power_step(stage, status, marker=False),
    ),
    (
        re.compile(r"Write the poweroff marker.*"),
        lambda stage, status, m: _power_step(stage, status, marker=True),
    ),
    (
        re.compile(r"Power off \(fire and forget\)"),
        lambda stage, status, m: _power_step(stage, status, marker=False),
    ),
    (
        re.compile(r"Validate the \w+ arguments once"),
        lambda stage, status, m: "arguments checked",
    ),
    (re.compile(r"Gathering Facts"), lambda stage, status, m: "facts gathered"),
]


def step_label(stage: str, task: str, status: str) -> str:
    """What a node task did, for a progress line: a known step in plain words, any other
    task by its own name (the roles name tasks as sentences), first letter lower-cased."""
    for pattern, text in _STEPS:
        match = pattern.fullmatch(task)
        if match is not None:
            return text(stage, status, match)
    return task[:1].lower() + task[1:] if task[:2] != task[:2].upper() else task


def node_line(stage: str, host: str, task: str, status: str) -> str:
    """The detail of a node's progress line: `HOST: step`."""
    return f"{host}: {step_label(stage, task, status)}"
