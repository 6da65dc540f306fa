"""Review findings (issue 26): an interrupted recovery is resumed only under the guards that
still matter: a quorum that came back before anything was reset is never thrown away, and a
corrupt record fails closed with a HecateError (never a traceback, never a guessed plan)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hecate.core.etcd_recover import RecoverRequest
from hecate.errors import HecateError
from hecate.flows.etcd import etcd_action
from hecate.flows.recover_etcd import (
    RecoverFailedError,
    RecoverRefusedError,
    load_record,
    record_path,
    recover_etcd,
)
from tests.unit.flows.test_etcd_flows import _ctx, _shutdown_then_lose, _snapshot_ok


def test_a_resume_before_the_reset_is_refused_once_quorum_is_back(tmp_path: Path) -> None:
    config, ansible = _shutdown_then_lose(tmp_path, {"s2", "s3"})
    ansible.etcd_stdout = {"s1": _snapshot_ok()}
    ctx = _ctx(config, ansible)
    ansible.unreachable = {"s3"}
    with pytest.raises(RecoverFailedError):
        recover_etcd(ctx, RecoverRequest("latest", None), execute=True)
    # it was a partition, not lost data: every server is back and etcd has its quorum again
    ansible.unreachable, ansible.etcd_stdout = set(), {}
    ansible.etcd_data_lost, ansible.etcd_quorum = set(), True
    with pytest.raises(RecoverRefusedError, match="healthy quorum"):
        recover_etcd(ctx, RecoverRequest("latest", None), execute=True)
    assert not [a for a, _ in ansible.etcd_actions if a in ("reset", "move_aside")]
    record = load_record(config.state_dir)
    assert record is not None and record.done == []  # kept, to be read and moved away


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


def test_a_snapshot_path_with_a_template_is_refused_and_never_reaches_ansible(
    tmp_path: Path,
) -> None:
    # Ansible templates extra vars: "{{ lookup('pipe', ...) }}" would run on this host
    config, ansible = _shutdown_then_lose(tmp_path, {"s2", "s3"})
    ansible.requests.clear()
    evil = "/x{{ lookup('pipe', 'touch /tmp/pwned') }}.db"
    with pytest.raises(RecoverRefusedError, match="Ansible would run it"):
        recover_etcd(_ctx(config, ansible), RecoverRequest(evil, "s1", True), execute=True)
    assert not [r for r in ansible.requests if evil in r.extravars.get("etcd_args", [])]
    with pytest.raises(HecateError, match="template"):
        etcd_action(_ctx(config, ansible), ["s1"], "snapshot", [evil, "/t"])
