"""hecate_gate: hold a run Hecate started ahead until Hecate says what it runs on.

Hecate starts the next stage's ``ansible-playbook`` while the current stage runs, so the next
stage does not pay the process start-up (0.7-1.0 s) after Python's decision
(hecate/adapters/ansible/held.py). The run's first play is this task, on the controller: it
waits for the decision file, then returns the hosts each stage group gets (``pairs``: [group,
host]; an ``add_host`` loop puts them in), or none when Hecate said "no" or the hold ran out.

The decision file is made whole by Python with a hard link (never half written). When the hold
runs out this task claims the same path with ``O_EXCL`` first, so a decision that arrives just
then cannot be taken by Python for one that ran: exactly one side creates the file.
No module is sent anywhere; the task only reads a local file.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from ansible.plugins.action import ActionBase

POLL_S = 0.02  # 20 ms: the gate's whole latency; the worker sleeps in between


class ActionModule(ActionBase):  # the name Ansible looks for in an action plugin
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("path", "timeout_s"))

    def run(self, tmp: Any = None, task_vars: Any = None) -> dict[str, Any]:
        result: dict[str, Any] = super().run(tmp, task_vars)
        path = str(self._task.args["path"])
        deadline = time.monotonic() + float(self._task.args["timeout_s"])
        decision = _wait(path, deadline)
        go = decision.get("go") is True
        groups = decision.get("groups") if go else None
        pairs = []
        if isinstance(groups, dict):
            pairs = [[str(g), str(h)] for g, hosts in groups.items() for h in hosts]
        result.update(changed=False, go=go, pairs=pairs, expired=decision.get("expired", False))
        return result


def _wait(path: str, deadline: float) -> dict[str, Any]:
    while True:
        try:
            with open(path, "rb") as handle:  # noqa: PTH123 - plain file read, Ansible side
                return dict(json.loads(handle.read()))
        except FileNotFoundError:
            pass
        except ValueError:
            return {"go": False}  # never half written (a hard link), so: not a decision
        if time.monotonic() >= deadline:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                continue  # the decision came just now: read it
            with os.fdopen(fd, "wb") as handle:
                handle.write(b'{"go": false, "expired": true}')
            return {"go": False, "expired": True}
        time.sleep(POLL_S)
