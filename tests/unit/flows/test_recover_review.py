"""Review findings (issue 26): an interrupted recovery is resumed only under the guards that
still matter: a quorum that came back before anything was reset is never thrown away, and a
corrupt record fails closed with a HecateError (never a traceback, never a guessed plan)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hecate.core.etcd_recover import RecoverRequest
from hecate.errors import HecateError
from hecate.flows.recover_etcd import (
    record_path,
    recover_etcd,
)
from tests.unit.flows.test_etcd_flows import _ctx, _shutdown_then_lose


@pytest.mark.parametrize(
    "plan",
    [
        {},  # no steps
        {"server": "s1", "snapshot": "/x", "moved_to": "/y", "steps": [{"kind": "reset"}]},
        {"server": "s1", "snapshot": "/x", "moved_to": "/y", "steps": "reset"},
        {
            "server": "s1",
            "snapshot": "/x",
            "moved_to": "",
            "steps": [{"kind": "move_aside", "nodes": ["s2"], "text": "t"}],
        },
        {
            "server": "s1",
            "snapshot": "/x",
            "moved_to": "/y",
            "steps": [{"kind": "rm", "nodes": ["s2"], "text": "t"}],
        },
        {
            "server": "s1",
            "snapshot": "/x",
            "moved_to": "/y",
            "steps": [{"kind": "reset", "nodes": "s1", "text": "t"}],
        },
    ],
)
def test_a_corrupt_recovery_record_fails_closed(tmp_path: Path, plan: object) -> None:
    config, ansible = _shutdown_then_lose(tmp_path, {"s2", "s3"})
    path = record_path(config.state_dir)
    path.write_text(json.dumps({"plan": plan, "started_at": 1.0, "outcome": "stopped"}))
    with pytest.raises(HecateError, match=r"etcd-recovery\.json"):
        recover_etcd(_ctx(config, ansible), RecoverRequest("latest", None), execute=True)
    assert not [a for a, _ in ansible.etcd_actions if a in ("reset", "move_aside")]
    assert path.exists()  # never moved or removed by Hecate: the operator reads it
