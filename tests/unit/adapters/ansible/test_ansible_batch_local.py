"""Several stages in one ansible-playbook, for real: the port's `run_batch` on localhost (local
connection) against the recording stand-ins of test_node_roles_local. Each stage must come out
as if it had run alone (its own hosts, its own result), in one process when nothing fails, and a
host that fails a stage must still get the later stages (ansible drops it from later plays of
the same run; the port runs those again for it)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hecate.adapters.ansible.assets import PlaybookError
from hecate.adapters.ansible.protocol import PlaybookRequest
from hecate.adapters.ansible.rundir import ARTIFACTS_DIRNAME
from tests.unit.adapters.ansible.test_node_roles_local import Node, make_port, power, wait_for_call

STOP = {"k3s_service_timeout_s": 5}


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return Node(tmp_path / "node")


def run_dirs(tmp_path: Path) -> list[str]:
    root = tmp_path / "state" / ARTIFACTS_DIRNAME
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


def test_two_stages_run_in_one_process_each_judged_on_its_own_hosts(
    tmp_path: Path, node: Node
) -> None:
    node.set_unit("k3s-agent", "active")
    node.set_unit("k3s", "active")
    events: list[tuple[int | None, str, str]] = []
    with make_port(tmp_path, node) as port:
        agents, servers = port.run_batch(
            [
                PlaybookRequest("stop_agents", limit=["a1", "a2"], extravars=STOP),
                PlaybookRequest("stop_servers", limit=["s1"], extravars=STOP),
            ],
            on_event=lambda e: events.append((e.stage, e.host, e.status)),
        )
    assert (agents.playbook, servers.playbook) == ("stop_agents", "stop_servers")
    assert agents.ok and servers.ok, (agents.summary(), servers.summary())
    assert sorted(agents.hosts) == ["a1", "a2"]  # the agents' play never touched s1
    assert sorted(servers.hosts) == ["s1"]
    assert node.unit("k3s-agent") == node.unit("k3s") == "inactive"
    assert len(run_dirs(tmp_path)) == 1  # one ansible-playbook for both stages
    # every event names its stage, so progress goes to the right one
    assert {(stage, host) for stage, host, _ in events} == {(0, "a1"), (0, "a2"), (1, "s1")}
    # each stage's own timings and span, not the run's
    assert {t.host for t in agents.tasks} == {"a1", "a2"}
    assert {t.host for t in servers.tasks} == {"s1"}
    assert agents.duration_s > 0 and servers.duration_s > 0


def test_a_host_that_fails_a_stage_still_gets_the_later_stages(tmp_path: Path, node: Node) -> None:
    """a1's k3s-agent stop fails (its unit is not loaded): ansible would leave a1 out of the
    poweroff play; a1 must still be powered off, as separate runs would have done."""
    node.set_unit("k3s-agent", "active")
    with make_port(tmp_path, node, host_vars={"a1": {"k3s_service_unit": "missing-unit"}}) as port:
        stop, poweroff = port.run_batch(
            [
                PlaybookRequest("stop_agents", limit=["a1", "a2"], extravars=STOP),
                PlaybookRequest("poweroff", limit=["a1"], extravars=power(node)),
            ]
        )
    assert stop.failed_hosts == ["a1"] and stop.succeeded_hosts == ["a2"], stop.summary()
    assert not stop.ok  # judged as a run of its own would be
    assert poweroff.ok and poweroff.succeeded_hosts == ["a1"], poweroff.summary()
    wait_for_call(node, "systemctl poweroff")
    # in the same run, in the plan's order: the play after each stage clears its host errors
    assert len(run_dirs(tmp_path)) == 1


def test_when_every_host_of_a_stage_fails_the_next_stages_still_run(
    tmp_path: Path, node: Node
) -> None:
    """Ansible ends the whole run when every host of a play failed; the servers' stage must
    run regardless (a separate run per stage would have run it)."""
    node.set_unit("k3s", "active")
    broken = {"k3s_service_unit": "missing-unit"}
    with make_port(tmp_path, node, host_vars={"a1": broken, "a2": broken}) as port:
        agents, servers = port.run_batch(
            [
                PlaybookRequest("stop_agents", limit=["a1", "a2"], extravars=STOP),
                PlaybookRequest("stop_servers", limit=["s1"], extravars=STOP),
            ]
        )
    assert agents.failed_hosts == ["a1", "a2"]
    assert servers.ok and servers.succeeded_hosts == ["s1"], servers.summary()
    assert node.unit("k3s") == "inactive"


def test_an_empty_stage_is_skipped_and_one_left_runs_alone(tmp_path: Path, node: Node) -> None:
    node.set_unit("k3s", "active")
    stages: set[int | None] = set()
    with make_port(tmp_path, node) as port:
        none, servers = port.run_batch(
            [
                PlaybookRequest("stop_agents", limit=[], extravars=STOP),
                PlaybookRequest("stop_servers", limit=["s1"], extravars=STOP),
            ],
            on_event=lambda e: stages.add(e.stage),
        )
    assert stages == {1}  # its events still name the stage they belong to
    assert none.status == "skipped" and none.hosts == {}
    assert servers.ok and sorted(servers.hosts) == ["s1"]
    assert "-stop_servers-" in run_dirs(tmp_path)[0]  # the plain run, not a batch


@pytest.mark.parametrize(
    ("request_", "why"),
    [
        (PlaybookRequest("stop_agents"), "a batched stage names its hosts"),
        (PlaybookRequest("ping", limit=["s1"]), "ping's hosts take no stage group"),
        (PlaybookRequest("stop_agents", limit=["a1"], check=True), "check mode is not batched"),
        (PlaybookRequest("stop_agents", limit=["nope"]), "a host not in the inventory"),
        (
            PlaybookRequest("/work/any/playbook.yml", limit=["a1"]),
            "a playbook by path may not intersect its hosts with its stage's",
        ),
    ],
    ids=["no-limit", "not-batchable", "check", "unknown-host", "by-path"],
)
def test_a_batch_it_cannot_run_as_asked_is_refused_before_anything_runs(
    tmp_path: Path, node: Node, request_: PlaybookRequest, why: str
) -> None:
    with make_port(tmp_path, node) as port, pytest.raises(PlaybookError):
        port.run_batch([PlaybookRequest("stop_servers", limit=["s1"]), request_])
    assert node.calls() == [], why
    assert run_dirs(tmp_path) == []


def test_a_cancelled_batch_runs_nothing(tmp_path: Path, node: Node) -> None:
    cancel = threading.Event()
    cancel.set()
    with make_port(tmp_path, node) as port:
        results = port.run_batch(
            [
                PlaybookRequest("stop_agents", limit=["a1"], extravars=STOP),
                PlaybookRequest("stop_servers", limit=["s1"], extravars=STOP),
            ],
            cancel=cancel,
        )
    assert [r.status for r in results] == ["canceled", "canceled"]
    assert node.calls() == []


# A stuck unit stop: `systemctl stop hang-*` hangs until the test lets it go (or HANG_CAP_S).
# The shared stand-in's 20 s sleep is too short once the bounds below grow with the load, and the
# port's stop ends ansible-playbook, not the module's children: the finalizer lets the hang go,
# so no stand-in outlives its test.
HANG_CAP_S = 600
HANGING_SYSTEMCTL = """#!/bin/sh
case "$1" in stop) case "$2" in hang-*)
  echo "systemctl $*" >> "$FAKE_STATE/calls"
  n=0
  while [ ! -e "$FAKE_STATE/release" ] && [ $n -lt {polls} ]; do sleep 0.2; n=$((n + 1)); done
  echo inactive > "$FAKE_STATE/$2"
  exit 0 ;;
esac ;; esac
exec {shared} "$@"
"""


@pytest.fixture
def hanging(node: Node) -> Iterator[Node]:
    shared = node.bin / "systemctl.shared"
    (node.bin / "systemctl").rename(shared)
    script = HANGING_SYSTEMCTL.format(polls=HANG_CAP_S * 5, shared=shared)
    (node.bin / "systemctl").write_text(script)
    (node.bin / "systemctl").chmod(0o755)
    try:
        yield node
    finally:
        (node.state / "release").touch()


def startup_s(tmp_path: Path) -> float:
    """How long one plain stop_agents run takes on this machine now (ansible-playbook's start-up
    and the stop play's tasks): 1-2 s idle, 5-6 s or more when the 2 cores are shared by a few
    test runs. The first stage's bound covers the start-up, so a fixed few-second bound was
    eaten by it under load and the hung task was never reached."""
    calm = Node(tmp_path / "calibration-node")
    calm.set_unit("k3s-agent", "active")
    with make_port(tmp_path / "calibration", calm) as port:
        result = port.run(PlaybookRequest("stop_agents", limit=["a1"], extravars=STOP))
    assert result.ok, result.summary()
    return result.duration_s


def test_a_stage_over_its_own_bound_does_not_eat_the_next_stages(
    tmp_path: Path, hanging: Node
) -> None:
    """a1's k3s-agent stop hangs: the stop stage times out at its own bound and a1 is still
    powered off, as a separate run per stage would do; the batch's summed bound would have let
    the stop eat the poweroff's time. The bound is measured, not fixed: about three plain runs'
    time, so the hung task is reached well inside it however loaded the machine is."""
    node = hanging
    bound_s = max(4, math.ceil(3 * startup_s(tmp_path) + 2))
    node.set_unit("hang-unit", "active")
    hang = {"a1": {"k3s_service_unit": "hang-unit"}}
    hung_at: list[float] = []  # when the stuck stop was first seen running (monotonic)

    def watch() -> None:
        while not hung_at and not done.is_set():
            if "systemctl stop hang-unit" in node.calls():
                hung_at.append(time.monotonic())
            done.wait(0.05)

    done = threading.Event()
    watcher = threading.Thread(target=watch, daemon=True)
    started = time.monotonic()
    watcher.start()
    try:
        with make_port(tmp_path, node, host_vars=hang) as port:
            stop, poweroff = port.run_batch(
                [
                    PlaybookRequest("stop_agents", limit=["a1"], extravars=STOP, timeout_s=bound_s),
                    PlaybookRequest(
                        "poweroff", limit=["a1"], extravars=power(node), timeout_s=30 + bound_s
                    ),
                ]
            )
    finally:
        done.set()
        watcher.join()
    detail = f"timed out after {bound_s}s"
    assert stop.status == "timeout" and stop.detail == detail, stop.summary()
    # the stop was stopped in its hung task, not in ansible-playbook's start-up
    assert hung_at and hung_at[0] - started < bound_s, (bound_s, hung_at and hung_at[0] - started)
    assert node.unit("hang-unit") == "active"  # and the hang was not waited out
    assert stop.hosts == {}  # as a run of its own killed before its stats: nodes unknown
    # the hung task counts (its play ran until the stop; the start-up before it is the first
    # stage's too, added by the flow): not the span of finished tasks alone. The play began
    # before the hang was seen, and the port stopped the run no sooner than `bound_s` after
    # `started`.
    assert stop.duration_s >= started + bound_s - hung_at[0], (stop.duration_s, bound_s)
    assert poweroff.ok and poweroff.succeeded_hosts == ["a1"], poweroff.summary()
    wait_for_call(node, "systemctl poweroff")


def test_a_stage_that_cannot_start_fails_with_the_reason_and_the_next_still_run(
    tmp_path: Path, node: Node
) -> None:
    """stop_agents' arguments are invalid, so its validation (once, any_errors_fatal) ends the
    whole run; the poweroff still runs, and the stop says why it did not."""
    bad = {"k3s_service_timeout_s": "soon"}
    with make_port(tmp_path, node) as port:
        stop, poweroff = port.run_batch(
            [
                PlaybookRequest("stop_agents", limit=["a1", "a2"], extravars=bad),
                PlaybookRequest("poweroff", limit=["a1"], extravars=power(node)),
            ]
        )
    assert not stop.ok and "k3s_service_timeout_s" in stop.summary() + stop.detail, stop
    assert poweroff.ok and poweroff.succeeded_hosts == ["a1"], poweroff.summary()
    wait_for_call(node, "systemctl poweroff")
    assert not any("systemctl stop" in c for c in node.calls())


def test_the_servers_reads_around_their_start_are_one_process_in_order(
    tmp_path: Path, node: Node
) -> None:
    """The startup's start_servers (issue 29): the etcd probe while k3s is stopped, the start,
    then etcd_quorum's first probe, as the plays of one ansible-playbook, in that order, each
    with its own result and its own events (the etcd playbook takes its stage's group)."""
    probe = {"etcd_action": "probe", "etcd_args": [], "etcd_timeout_s": 10}
    events: list[tuple[int | None, str, str]] = []
    with make_port(tmp_path, node) as port:
        before, start, after = port.run_batch(
            [
                PlaybookRequest("etcd", limit=["s1"], extravars=probe),
                PlaybookRequest("start_servers", limit=["s1"], extravars=STOP),
                PlaybookRequest("etcd", limit=["s1"], extravars=probe),
            ],
            on_event=lambda e: events.append((e.stage, e.host, e.task)),
        )
    assert before.ok and start.ok and after.ok, (before.summary(), after.summary())
    assert sorted(before.hosts) == sorted(start.hosts) == sorted(after.hosts) == ["s1"]
    assert len(run_dirs(tmp_path)) == 1  # one ansible-playbook for the three
    reads = [stage for stage, _, task in events if task == "Run the etcd action"]
    assert set(reads) == {0, 2}  # each probe's answer goes to its own stage
    calls = node.calls()
    started = calls.index("sudo -n systemctl start k3s")
    probes = [i for i, c in enumerate(calls) if c == "systemctl is-active k3s"]
    assert len(probes) == 2 and probes[0] < started < probes[1], calls
    assert node.unit("k3s") == "active"
