"""The pure runner-event mapping (hecate/adapters/ansible/events.py), against events ansible-runner
2.4 really emitted, and against malformed ones.

tests/unit/data/ansible_runner_events.json was recorded once with ansible-runner 2.4.3 /
ansible-core 2.19 (``event_handler`` collecting every event dict as given, plus ``runner.stats``),
running this playbook on hosts ``a`` and ``b`` (local connection) and ``down`` (ssh to
127.0.0.1 port 1, refused)::

    - name: Recorded
      hosts: all
      gather_facts: false
      tasks:
        - {name: Unchanged, ansible.builtin.command: "true", changed_when: false}
        - {name: Changed, ansible.builtin.command: echo hello, changed_when: true}
        - name: Skipped on a
          ansible.builtin.debug: {msg: only b}
          when: inventory_hostname != 'a'
        - name: Ignored failure
          ansible.builtin.command: sh -c 'echo bad >&2; exit 3'
          ignore_errors: true
          changed_when: false
        - {name: Loop, ansible.builtin.debug: {msg: "{{ item }}"}, loop: [1, 2]}
        - name: Fails on b
          ansible.builtin.fail: {msg: "b is broken\\nsecond line"}
          when: inventory_hostname == 'b'
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hecate.adapters.ansible.events import (
    HostStats,
    TaskEvent,
    parse_stats,
    run_status,
    task_event_from_runner,
    timing_from_runner,
)

RECORDED = json.loads((Path(__file__).parent / "data" / "ansible_runner_events.json").read_text())
EVENTS: list[dict[str, Any]] = RECORDED["events"]


def mapped() -> list[tuple[str, str, str, str | None]]:
    """(runner event, host, task, mapped status or None) for every recorded event."""
    out: list[tuple[str, str, str, str | None]] = []
    for event in EVENTS:
        data = event.get("event_data") or {}
        task_event = task_event_from_runner("recorded", event)
        out.append(
            (
                event["event"],
                str(data.get("host")),
                str(data.get("task")),
                task_event.status if task_event else None,
            )
        )
    return out


def test_every_recorded_per_host_final_event_maps_to_its_status() -> None:
    finals = {(h, t): s for kind, h, t, s in mapped() if kind.startswith("runner_on_")}
    assert finals == {
        # the refused connection: the host is unreachable and gets no further task
        ("down", "Unchanged"): "unreachable",
        # changed_when: false -> ok; changed_when: true -> changed (res.changed)
        ("a", "Unchanged"): "ok",
        ("b", "Unchanged"): "ok",
        ("a", "Changed"): "changed",
        ("b", "Changed"): "changed",
        # `when` false -> runner_on_skipped
        ("a", "Skipped on a"): "skipped",
        ("b", "Skipped on a"): "ok",
        # runner_on_failed with ignore_errors: not a failure of the host
        ("a", "Ignored failure"): "ignored",
        ("b", "Ignored failure"): "ignored",
        # a loop's final runner_on_ok (its runner_item_on_ok events are not task results)
        ("a", "Loop"): "ok",
        ("b", "Loop"): "ok",
        ("a", "Fails on b"): "skipped",
        ("b", "Fails on b"): "failed",
    }


def test_recorded_start_events_are_started_and_the_rest_is_not_per_host() -> None:
    for kind, host, _task, status in mapped():
        if kind == "runner_on_start":
            assert status == "started", host
        elif not kind.startswith("runner_on_"):
            # playbook_on_*, runner_item_on_ok: no host-level task result
            assert status is None, kind
    assert sum(1 for kind, *_ in mapped() if kind == "runner_item_on_ok") == 4


def by(kind: str, host: str, task: str) -> dict[str, Any]:
    return next(
        e
        for e in EVENTS
        if e["event"] == kind
        and e["event_data"].get("host") == host
        and e["event_data"].get("task") == task
    )


def test_messages_are_the_last_line_of_the_failure() -> None:
    failed = task_event_from_runner("p", by("runner_on_failed", "b", "Fails on b"))
    assert failed is not None and failed.message == "second line"
    down = task_event_from_runner("p", by("runner_on_unreachable", "down", "Unchanged"))
    assert down is not None and down.message is not None
    assert down.message.endswith("Connection refused")
    ignored = task_event_from_runner("p", by("runner_on_failed", "a", "Ignored failure"))
    assert ignored is not None and ignored.message == "non-zero return code"
    ok = task_event_from_runner("p", by("runner_on_ok", "a", "Changed"))
    # an ok/changed event carries the module result (e.g. the command's stdout), no message
    assert ok is not None and ok.message is None
    assert ok.result is not None and ok.result["stdout"] == "hello"


def test_recorded_timings_are_aware_and_ordered() -> None:
    finals = [e for e in EVENTS if e["event"] in ("runner_on_ok", "runner_on_failed")]
    assert finals
    for event in finals:
        timing = timing_from_runner(event, "ok")
        assert timing is not None
        assert isinstance(timing.start, datetime) and timing.start.tzinfo is not None
        assert timing.end is not None and timing.end >= timing.start
        assert timing.duration_s == pytest.approx(event["event_data"]["duration"])


def test_recorded_stats_map_to_host_counters() -> None:
    assert RECORDED["status"] == "failed"
    assert parse_stats(RECORDED["stats"]) == {
        "a": HostStats(ok=4, changed=1, skipped=2, ignored=1),
        "b": HostStats(ok=5, changed=1, failed=1, ignored=1),
        "down": HostStats(unreachable=1),
    }


def ev(kind: object, data: object) -> dict[str, Any]:
    return {"event": kind, "event_data": data}


# (id, event, expected TaskEvent or None, why)
MALFORMED: list[tuple[str, dict[str, Any], TaskEvent | None, str]] = [
    ("no-event-data", {"event": "runner_on_ok"}, None, "no host: not a per-host event"),
    ("data-not-a-mapping", ev("runner_on_ok", ["h"]), None, "garbage data is ignored"),
    ("empty-host", ev("runner_on_ok", {"host": ""}), None, "an empty host is no host"),
    ("kind-not-a-string", ev(7, {"host": "h"}), None, "unknown kinds map to nothing"),
    ("unknown-kind", ev("runner_on_weird", {"host": "h"}), None, "only the four finals count"),
    (
        "res-not-a-mapping",
        ev("runner_on_failed", {"host": "h", "task": "T", "res": "boom"}),
        TaskEvent("p", "h", "T", "failed"),
        "a failure stays a failure without a readable result",
    ),
    (
        "changed-flag-in-a-non-mapping-res",
        ev("runner_on_ok", {"host": "h", "task": "T", "res": ["changed"]}),
        TaskEvent("p", "h", "T", "ok"),
        "changed is read only from a mapping",
    ),
    (
        "no-task-name",
        ev("runner_on_start", {"host": "h", "task_action": "ansible.builtin.raw"}),
        TaskEvent("p", "h", "ansible.builtin.raw", "started"),
        "the action names a task without a name",
    ),
    (
        "blank-message",
        ev("runner_on_unreachable", {"host": "h", "task": "T", "res": {"msg": "  \n "}}),
        TaskEvent("p", "h", "T", "unreachable"),
        "a blank message is no message",
    ),
]


@pytest.mark.parametrize(
    ("event", "expected"), [(e, x) for _, e, x, _ in MALFORMED], ids=[m[0] for m in MALFORMED]
)
def test_malformed_events(event: dict[str, Any], expected: TaskEvent | None) -> None:
    got = task_event_from_runner("p", event)
    assert got == expected
    if got is not None:
        assert got.message is None and got.duration_s is None


def test_malformed_timing_fields_are_dropped_not_raised() -> None:
    data = {"host": "h", "task": "T", "start": "yesterday", "end": 5, "duration": True}
    timing = timing_from_runner(ev("runner_on_ok", data), "ok")
    assert timing is not None
    assert (timing.start, timing.end, timing.duration_s) == (None, None, None)
    naive = timing_from_runner(
        ev("runner_on_ok", {"host": "h", "start": "2026-01-01T00:00:00"}), "ok"
    )
    assert naive is not None and naive.start is not None and naive.start.utcoffset() is not None


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("successful", "successful"),
        ("failed", "failed"),
        ("timeout", "timeout"),
        ("canceled", "canceled"),
        # runner's other states mean the playbook did not complete: never success
        ("error", "failed"),
        ("unstarted", "failed"),
        ("starting", "failed"),
        ("skipped", "failed"),  # skipped is the port's own verdict (empty limit), not runner's
        (None, "failed"),
        (0, "failed"),
    ],
)
def test_run_status_fails_closed(status: object, expected: str) -> None:
    assert run_status(status) == expected


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(
    kind=st.sampled_from(
        ["runner_on_ok", "runner_on_failed", "runner_on_start", "runner_on_unreachable", "x"]
    )
    | JSON,
    data=st.fixed_dictionaries(
        {"host": st.text(min_size=1, max_size=4)},
        optional={"res": JSON, "duration": JSON, "task": JSON, "ignore_errors": JSON},
    )
    | JSON,
)
def test_mapping_never_raises(kind: object, data: object) -> None:
    event = {"event": kind, "event_data": data}
    got = task_event_from_runner("p", event)
    if got is not None:
        assert got.host and got.status in (
            "started",
            "ok",
            "changed",
            "failed",
            "ignored",
            "unreachable",
            "skipped",
        )
        assert got.message is None or len(got.message) <= 300
    timing_from_runner(event, "ok")
