"""What a dry run's probes mean for each stage (issue 23, item 8): pure, no I/O. The marks
annotate the plan; they never change it."""

from __future__ import annotations

from typing import Any

import pytest

from hecate.cli.plan_text import plan_json, plan_lines
from hecate.config.model import HecateConfig, parse_config
from hecate.core.plan_marks import (
    ApiProbe,
    MarkKind,
    Probes,
    Reach,
    plan_marks,
    ssh_problems,
    would_fail,
)
from hecate.core.plans import ShutdownOptions, StartupOptions, shutdown_plan, startup_plan

UP = ApiProbe("up", "API https://10.0.0.1:6443 ready")
DOWN = ApiProbe("down", "API https://127.0.0.1:6443 refused connection")
NO_CLIENT = ApiProbe("no_client", "cannot load kubeconfig /nope: not found")
OPEN = Reach(True, "ssh answers")


def closed(node: str) -> Reach:
    return Reach(False, f"ssh port 22 closed on {node} (connection refused)")


def config(**extra: Any) -> HecateConfig:
    data: dict[str, Any] = {
        "nodes": {"servers": ["s1", "s2"], "agents": ["a1", "a2"]},
        "shutdown": {"drain": True, "etcd_snapshot": True, "ups_kill_power": True},
        "ups": {"target": "pyrphoros@localhost"},
    }
    for key, value in extra.items():
        data[key] = {**data.get(key, {}), **value}
    return parse_config(data)


def all_open(cfg: HecateConfig) -> dict[str, Reach]:
    return dict.fromkeys(cfg.nodes.all, OPEN)


def test_a_healthy_cluster_marks_nothing() -> None:
    cfg = config()
    probes = Probes(api=UP, nodes=all_open(cfg), ups=Reach(True, "UPS answers"))
    for plan in (shutdown_plan(cfg, ShutdownOptions()), startup_plan(cfg, StartupOptions())):
        assert plan_marks(cfg, plan, probes) == {}


def test_shutdown_with_the_api_down_skips_the_api_stages_and_still_succeeds() -> None:
    cfg = config()
    marks = plan_marks(cfg, shutdown_plan(cfg, ShutdownOptions()), Probes(DOWN, all_open(cfg)))
    assert set(marks) == {"flux_suspend", "cordon", "drain"}
    assert all(m.kind is MarkKind.SKIP for m in marks.values())
    assert marks["cordon"].text == "would be skipped: API https://127.0.0.1:6443 refused connection"
    assert not would_fail(marks)  # a shutdown goes on without the API: the run succeeds


def test_shutdown_without_a_client_skips_the_api_stages_too() -> None:
    cfg = config()
    marks = plan_marks(cfg, shutdown_plan(cfg, ShutdownOptions()), Probes(NO_CLIENT, all_open(cfg)))
    assert {n for n, m in marks.items() if m.kind is MarkKind.SKIP} == {
        "flux_suspend",
        "cordon",
        "drain",
    }
    assert "cannot load kubeconfig" in marks["flux_suspend"].reason


def test_an_unreachable_agent_fails_the_agent_stages_and_names_it() -> None:
    cfg = config()
    nodes = all_open(cfg) | {"a2": closed("a2")}
    marks = plan_marks(cfg, shutdown_plan(cfg, ShutdownOptions()), Probes(UP, nodes))
    assert set(marks) == {"stop_agents", "poweroff_agents"}
    assert marks["stop_agents"].kind is MarkKind.FAIL
    assert marks["stop_agents"].text == (
        "would fail: a2: ssh port 22 closed on a2 (connection refused)"
    )
    assert "a1" not in marks["stop_agents"].reason
    assert would_fail(marks)


def test_the_snapshot_and_the_ups_command_warn_they_never_fail() -> None:
    cfg = config()
    nodes = all_open(cfg) | {"s1": closed("s1")}
    probes = Probes(UP, nodes, ups=Reach(False, "UPS ups@h: connection refused"))
    marks = plan_marks(cfg, shutdown_plan(cfg, ShutdownOptions()), probes)
    assert marks["etcd_snapshot"].kind is MarkKind.WARN
    assert marks["ups_kill_power"].kind is MarkKind.WARN
    assert "connection refused" in marks["ups_kill_power"].reason
    assert marks["stop_servers"].kind is MarkKind.FAIL  # s1 is a server: its stop fails


def test_cluster_only_has_no_poweroff_to_mark() -> None:
    cfg = config()
    nodes = dict.fromkeys(cfg.nodes.all, closed("x"))
    marks = plan_marks(
        cfg, shutdown_plan(cfg, ShutdownOptions(mode="cluster-only")), Probes(UP, nodes)
    )
    assert not any(name.startswith("poweroff") or name == "ups_kill_power" for name in marks)


def test_a_stage_the_plan_already_skips_keeps_its_own_reason() -> None:
    cfg = config(nodes={"agents": []})
    plan = shutdown_plan(cfg, ShutdownOptions())
    marks = plan_marks(cfg, plan, Probes(DOWN, dict.fromkeys(cfg.nodes.all, closed("x"))))
    assert "stop_agents" not in marks  # "no agents": skipped by the plan, not by a probe


def test_a_probe_that_could_not_tell_marks_nothing() -> None:
    cfg = config()
    nodes = dict.fromkeys(cfg.nodes.all, Reach(None, "placeholder: not probed"))
    assert plan_marks(cfg, shutdown_plan(cfg, ShutdownOptions()), Probes(UP, nodes)) == {}


def test_behind_a_jump_host_that_answers_direct_failures_mean_nothing() -> None:
    cfg = config()
    nodes = dict.fromkeys(cfg.nodes.all, closed("x"))
    up = Probes(UP, nodes, jump=Reach(True, "ssh answers on bastion:22"))
    assert ssh_problems(up, tuple(cfg.nodes.all)) == {}
    down = Probes(UP, nodes, jump=Reach(False, "no answer from bastion:22 within 2s"))
    problems = ssh_problems(down, ("a1",))
    # the inventory falls back to direct SSH: what this host sees is what the run gets
    assert "closed" in problems["a1"] and "bastion:22" in problems["a1"]


def test_a_silent_jump_host_with_nodes_not_probed_warns_each_ssh_stage() -> None:
    cfg = config()
    nodes = dict.fromkeys(cfg.nodes.all, Reach(None, "not probed (reached through the jump host)"))
    down = Probes(UP, nodes, jump=Reach(False, "ssh port 22 closed on bastion"))
    marks = plan_marks(cfg, shutdown_plan(cfg, ShutdownOptions()), down)
    assert {m.kind for m in marks.values()} == {MarkKind.WARN}
    assert "stop_agents" in marks and "falls back to direct SSH" in marks["stop_agents"].reason
    assert not would_fail(marks)
    up = Probes(UP, nodes, jump=Reach(True, "ssh answers on bastion:22"))
    assert plan_marks(cfg, shutdown_plan(cfg, ShutdownOptions()), up) == {}


def test_a_node_left_out_of_the_inventory_fails_even_through_a_jump_host() -> None:
    cfg = config()
    probes = Probes(
        UP, all_open(cfg), jump=Reach(True, "ok"), left_out={"a1": "same SSH address as a2"}
    )
    marks = plan_marks(cfg, shutdown_plan(cfg, ShutdownOptions()), probes)
    assert marks["stop_agents"].kind is MarkKind.FAIL
    assert "left out of the inventory: same SSH address as a2" in marks["stop_agents"].reason


def test_startup_without_a_client_fails_before_its_first_stage() -> None:
    cfg = config()
    plan = startup_plan(cfg, StartupOptions())
    marks = plan_marks(cfg, plan, Probes(NO_CLIENT, all_open(cfg)))
    assert set(marks) == set(plan.stage_names)
    first = plan.stage_names[0]
    assert "cannot load kubeconfig" in marks[first].reason
    assert all("not reached" in m.reason for n, m in marks.items() if n != first)
    assert would_fail(marks)


START_ANYWAY = {"time_sync_unsynced": "start_anyway"}  # time_sync warns and the run goes on


def test_startup_with_the_api_down_is_normal_while_a_server_can_start() -> None:
    # an external datastore: one server brings the API up (embedded etcd: test_etcd_quorum_marks)
    cfg = config(startup=START_ANYWAY, cluster={"datastore": "external"})
    plan = startup_plan(cfg, StartupOptions())
    nodes = all_open(cfg) | {"s1": closed("s1")}
    marks = plan_marks(cfg, plan, Probes(DOWN, nodes))
    # s2 answers: k3s starts there and brings the API up; only s1's start fails
    assert set(marks) == {"time_sync", "start_servers"}
    nodes |= {"s2": closed("s2")}
    marks = plan_marks(cfg, plan, Probes(DOWN, nodes))
    assert marks["wait_api"].kind is MarkKind.FAIL
    assert "SSH reaches no server" in marks["wait_api"].reason
    assert {"nodes_ready", "flux_resume", "flux_ready"} <= set(marks)


def test_startup_with_the_api_up_and_no_server_reachable_waits_for_nothing() -> None:
    cfg = config(startup=START_ANYWAY)
    nodes = all_open(cfg) | {"s1": closed("s1"), "s2": closed("s2")}
    marks = plan_marks(cfg, startup_plan(cfg, StartupOptions()), Probes(UP, nodes))
    assert "wait_api" not in marks  # already up


@pytest.mark.parametrize(("policy", "kind"), [("wait", MarkKind.FAIL),
                                              ("start_anyway", MarkKind.WARN)])  # fmt: skip
def test_time_sync_marks_follow_the_unsynced_policy(policy: str, kind: MarkKind) -> None:
    cfg = config(startup={"time_sync_check": True, "time_sync_unsynced": policy})
    nodes = all_open(cfg) | {"a1": closed("a1")}
    marks = plan_marks(cfg, startup_plan(cfg, StartupOptions()), Probes(UP, nodes))
    assert marks["time_sync"].kind is kind


def test_marks_annotate_the_plan_and_never_change_it() -> None:
    cfg = config()
    plan = shutdown_plan(cfg, ShutdownOptions())
    nodes = dict.fromkeys(cfg.nodes.all, closed("x"))
    marks = plan_marks(cfg, plan, Probes(DOWN, nodes, ups=Reach(False, "down")))
    bare, marked = plan_lines("t", plan), plan_lines("t", plan, marks)
    assert [line for line in marked if not line.lstrip().startswith("! ")] == bare
    assert sum(1 for line in marked if line.lstrip().startswith("! ")) == len(marks)
    bare_json, marked_json = plan_json(plan), plan_json(plan, marks)
    assert [{k: v for k, v in e.items() if k != "mark"} for e in marked_json] == [
        {k: v for k, v in e.items() if k != "mark"} for e in bare_json
    ]
    by_name = {e["name"]: e["mark"] for e in marked_json}
    assert by_name["cordon"] == {"kind": "would_skip", "reason": DOWN.detail}
    assert by_name["intent"] is None


def test_an_api_probe_that_could_not_tell_marks_nothing() -> None:
    cfg = config(startup=START_ANYWAY, cluster={"datastore": "external"})
    unknown = ApiProbe("unknown", "API https://10.0.0.1:6443: no answer within 3s: could not tell")
    nodes = dict.fromkeys(cfg.nodes.all, OPEN)
    assert plan_marks(cfg, shutdown_plan(cfg, ShutdownOptions()), Probes(unknown, nodes)) == {}
    servers_down = {n: closed(n) if n.startswith("s") else OPEN for n in cfg.nodes.all}
    marks = plan_marks(cfg, startup_plan(cfg, StartupOptions()), Probes(unknown, servers_down))
    assert "wait_api" not in marks  # only an API seen down fails the stages after k3s starts


def test_a_time_sync_that_would_stop_the_startup_leaves_every_later_stage_not_reached() -> None:
    # the time_sync gate raises and the startup stops there (hecate/flows/startup_gates.py): the
    # later
    # stages would not run, whatever their own probes say
    cfg = config(startup={"time_sync_check": True, "time_sync_unsynced": "wait"})
    plan = startup_plan(cfg, StartupOptions())
    marks = plan_marks(cfg, plan, Probes(UP, all_open(cfg) | {"a1": closed("a1")}))
    runnable = [s.name for s in plan.stages if s.skip is None]
    later = runnable[runnable.index("time_sync") + 1 :]
    assert later and marks["time_sync"].kind is MarkKind.FAIL
    assert all(marks[n].reason == "not reached: time_sync would stop the startup" for n in later)


def test_etcd_quorum_marks() -> None:
    """A server SSH cannot reach counts against etcd's quorum, unless the API answers."""
    cfg = config(startup=START_ANYWAY, nodes={"servers": ["s1", "s2", "s3"]})
    plan = startup_plan(cfg, StartupOptions())
    one = all_open(cfg) | {"s3": closed("s3")}
    assert plan_marks(cfg, plan, Probes(DOWN, one))["etcd_quorum"].kind is MarkKind.WARN
    two = one | {"s2": closed("s2")}
    marks = plan_marks(cfg, plan, Probes(DOWN, two))
    assert marks["etcd_quorum"].kind is MarkKind.FAIL
    assert marks["wait_api"].reason == "not reached: etcd_quorum would stop the startup"
    assert plan_marks(cfg, plan, Probes(UP, two))["etcd_quorum"].kind is MarkKind.WARN
