"""Load shedding's pure core (issue 28, item 3): when it is due; the record round-trips and a
corrupt one is refused (never restored from half a file)."""

from __future__ import annotations

import pytest

from hecate.config.feeds import ShedConfig
from hecate.core.shed import ShedBlocked, ShedRecord, ShedWorkload, parse_shed_file, shed_due
from hecate.core.shed_plan import (
    Autoscaler,
    Candidate,
    PriorityClassInfo,
    ShedPlan,
    plan_restore,
    plan_shed,
    shed_move,
)
from hecate.errors import StateCorruptError

SEL = "hecate.dev/shed=true"


def test_nothing_to_shed_is_never_due() -> None:
    assert shed_due(ShedConfig(after_seconds=1), 100, 10) is None


def test_due_after_time_on_battery_or_below_runtime() -> None:
    shed = ShedConfig(after_seconds=60, below_runtime_seconds=600, label_selector=SEL)
    assert shed_due(shed, None, 10) is None  # on mains
    assert shed_due(shed, 30, 900) is None
    assert shed_due(shed, 30, None) is None  # an unknown runtime never triggers
    assert "after_seconds" in (shed_due(shed, 60, 900) or "")
    assert "below_runtime_seconds" in (shed_due(shed, 5, 599) or "")
    assert shed_due(ShedConfig(agents=["a1"], below_runtime_seconds=600), 1, 100) is not None


def test_the_record_round_trips() -> None:
    record = ShedRecord(
        1.0,
        "runtime",
        (ShedWorkload("deployment", "apps", "web", 3),),
        ("HelmRelease/apps/web",),
        ("apps/web",),
        ("a3",),
    )
    assert ShedRecord.from_json(record.to_json()) == record


@pytest.mark.parametrize(
    "data",
    [
        [],
        {"reason": "x"},
        {"since": 1, "workloads": [{"kind": "pod", "namespace": "a", "name": "b", "replicas": 1}]},
        {"since": 1, "workloads": [{"kind": "deployment", "namespace": "a", "name": "b"}]},
        {
            "since": 1,
            "workloads": [{"kind": "deployment", "namespace": "a", "name": "b", "replicas": -1}],
        },
        {"since": 1, "agents": "a3"},
    ],
)
def test_a_corrupt_record_is_refused(data: object) -> None:
    with pytest.raises(StateCorruptError):
        ShedRecord.from_json(data)


# --- the decisions (hecate.core.shed_plan) ---------------------------------------------------

KS = (
    ("kustomize.toolkit.fluxcd.io/name", "apps"),
    ("kustomize.toolkit.fluxcd.io/namespace", "flux-system"),
)
HR = (("helm.toolkit.fluxcd.io/name", "cache"), ("helm.toolkit.fluxcd.io/namespace", "apps"))


def _c(name: str, replicas: int = 2, **kw: object) -> Candidate:
    return Candidate("deployment", "apps", name, replicas, **kw)  # type: ignore[arg-type]


def _plan(shed: ShedConfig, *cands: Candidate, **kw: object) -> ShedPlan:
    args: dict[str, object] = {
        "classes": [],
        "autoscalers": [],
        "suspended": frozenset(),
        "cordoned": frozenset(),
    }
    args.update(kw)
    return plan_shed(shed, list(cands), now=5.0, reason="why", **args)  # type: ignore[arg-type]


def test_a_selector_matching_nothing_records_nothing_but_the_agents() -> None:
    plan = _plan(ShedConfig(label_selector=SEL, agents=["a3"]))
    assert plan.record.workloads == () and plan.record.flux_suspended == ()
    assert plan.record.agents == ("a3",) and plan.record.cordoned == ("a3",)
    assert any("no workload" in n for n in plan.notes)
    assert plan.record.complete is False  # written before the changes


def test_a_workload_already_at_zero_is_never_recorded() -> None:
    """Recorded at 0 it would be scaled to 0 on restore at best; not recorded, the restore
    never touches it (nothing Hecate did to undo)."""
    plan = _plan(ShedConfig(label_selector=SEL), _c("idle", 0), _c("web", 3))
    assert [(w.name, w.replicas) for w in plan.record.workloads] == [("web", 3)]
    assert any("idle" in n and "already at 0" in n for n in plan.notes)


def test_flux_owners_are_suspended_unless_already_suspended() -> None:
    plan = _plan(
        ShedConfig(label_selector=SEL),
        _c("web", labels=KS),
        _c("api", labels=KS),
        _c("cache", labels=HR),
        suspended=frozenset({"HelmRelease/apps/cache"}),
    )
    assert plan.record.flux_suspended == ("Kustomization/flux-system/apps",)
    assert any("HelmRelease/apps/cache" in n and "left suspended" in n for n in plan.notes)


def test_autoscalers_targeting_shed_workloads_are_named() -> None:
    hpas = [
        Autoscaler("apps", "web", "Deployment", "web"),
        Autoscaler("apps", "other", "Deployment", "other"),
        Autoscaler("db", "web", "Deployment", "web"),  # another namespace
        Autoscaler("apps", "sts", "StatefulSet", "web"),  # another kind
    ]
    plan = _plan(ShedConfig(label_selector=SEL), _c("web"), autoscalers=hpas)
    assert plan.record.autoscalers == ("apps/web -> deployment/apps/web",)


def test_priority_below_keeps_high_and_unknown_priorities() -> None:
    classes = [PriorityClassInfo("low", 10), PriorityClassInfo("high", 1000)]
    shed = ShedConfig(label_selector=SEL, priority_below=100)
    plan = _plan(
        shed,
        _c("a", priority_class="low"),
        _c("b", priority_class="high"),
        _c("c", priority_class="gone"),
        _c("d"),  # no class, no global default: 0
        _c("e", priority=500),  # the template's own priority wins
        classes=classes,
    )
    assert [w.name for w in plan.record.workloads] == ["a", "d"]
    with_default = [*classes, PriorityClassInfo("default", 200, global_default=True)]
    plan = _plan(shed, _c("d"), classes=with_default)
    assert plan.record.workloads == ()


def test_an_agent_already_cordoned_is_not_recorded_as_cordoned() -> None:
    plan = _plan(ShedConfig(agents=["a2", "a3"]), cordoned=frozenset({"a2"}))
    assert plan.record.agents == ("a2", "a3") and plan.record.cordoned == ("a3",)


def _record(**kw: object) -> ShedRecord:
    base: dict[str, object] = {
        "since": 1.0,
        "reason": "r",
        "workloads": (
            ShedWorkload("deployment", "apps", "web", 3),
            ShedWorkload("deployment", "apps", "gone", 2),
            ShedWorkload("deployment", "apps", "bumped", 2),
            ShedWorkload("statefulset", "apps", "zero", 0),
        ),
        "flux_suspended": ("Kustomization/flux-system/apps",),
        "agents": ("a3",),
        "cordoned": ("a3",),
        "complete": True,
    }
    base.update(kw)
    return ShedRecord(**base)  # type: ignore[arg-type]


def test_restore_scales_back_only_what_is_still_at_zero() -> None:
    current = {
        "deployment/apps/web": 0,
        "deployment/apps/gone": None,  # deleted meanwhile: not made again
        "deployment/apps/bumped": 4,  # someone scaled it since: theirs stands
        "statefulset/apps/zero": 0,  # recorded at 0 (an old record): never scaled up
    }
    plan = plan_restore(_record(), current)
    assert [(w.name, w.replicas) for w in plan.scale] == [("web", 3)]
    assert plan.resume == ("Kustomization/flux-system/apps",)
    assert plan.agents == ("a3",) and plan.uncordon == ("a3",)
    text = " ".join(plan.notes)
    assert "gone: deleted" in text and "bumped: at 4" in text and "zero: recorded at 0" in text


def test_restore_tries_a_workload_it_could_not_read() -> None:
    plan = plan_restore(_record(workloads=(ShedWorkload("deployment", "a", "w", 2),)), {})
    assert [w.name for w in plan.scale] == ["w"]


def _move(
    record: ShedRecord | ShedBlocked | None,
    on_battery_s: float | None,
    *,
    stable: bool = False,
    pending: bool = False,
    running: bool = False,
    partial: bool = False,
) -> str | None:
    shed = ShedConfig(label_selector=SEL, after_seconds=60)
    found = shed_move(
        shed,
        record,
        on_battery_s=on_battery_s,
        runtime_s=900.0,
        mains_stable=stable,
        startup_pending=pending,
        flow_running=running,
        partial_in_force=partial,
    )
    return None if found is None else found[0]


def test_the_moves() -> None:
    assert _move(None, 30) is None
    assert _move(None, 61) == "shed"
    done = _record()
    assert _move(done, 3000) is None  # never twice in one outage
    assert _move(done, None) is None  # a flicker: mains not stable yet
    assert _move(done, None, stable=True) == "restore"
    cut = _record(complete=False)  # a restart mid-shed, still on battery
    assert _move(cut, 100) == "carry_on"
    assert _move(cut, None, stable=True) == "restore"


def test_no_move_while_a_flow_runs_or_a_startup_is_pending() -> None:
    assert _move(_record(), None, stable=True, running=True) is None
    assert _move(None, 1000, running=True) is None  # a shutdown runs: no shed beside it
    # the outage ended in a shutdown: the startup restores (its shed_restore stage)
    assert _move(_record(), None, stable=True, pending=True) is None
    assert _move(_record(complete=False), 100, pending=True) is None


def test_a_blocked_record_fails_closed() -> None:
    """A record that could not be read: no new shed (it would record the shed workloads at 0
    and never restore them), no restore (of what?)."""
    shed = ShedConfig(label_selector=SEL, after_seconds=60)
    blocked = ShedBlocked(1.0, "/x/shed.json.corrupt-1", "not JSON")
    for on_battery, stable in ((1000.0, False), (None, True)):
        assert (
            shed_move(
                shed,
                blocked,
                on_battery_s=on_battery,
                runtime_s=1.0,
                mains_stable=stable,
                startup_pending=False,
                flow_running=False,
            )
            is None
        )
    assert parse_shed_file(blocked.to_json()) == blocked
    assert parse_shed_file(_record().to_json()) == _record()


def test_an_unlisted_flux_kind_is_not_suspended_and_unlisted_nodes_shed_no_agent() -> None:
    """Review: what is unknown is not recorded as Hecate's, so the restore never undoes
    an operator's suspension or cordon."""
    shed = ShedConfig(label_selector=SEL, agents=["a3"])
    plan = _plan(
        shed, _c("web", labels=HR), cordoned=None, unlisted_flux=frozenset({"HelmRelease"})
    )
    assert plan.record.flux_suspended == ()
    assert [w.name for w in plan.record.workloads] == ["web"]
    assert plan.record.agents == () and plan.record.cordoned == ()
    assert any("HelmRelease/apps/cache" in n for n in plan.notes)


def test_no_restore_while_a_partial_shutdown_is_in_force() -> None:
    record = ShedRecord(since=1.0, reason="r", agents=("a2",), complete=True)
    assert _move(record, None, stable=True, partial=True) is None
    assert _move(record, None, stable=True) == "restore"


def test_no_shed_once_the_outage_ended_in_a_shutdown() -> None:
    assert _move(None, 100.0) == "shed"
    assert _move(None, 100.0, pending=True) is None


def test_an_agent_not_ready_is_left_alone() -> None:
    shed = ShedConfig(agents=["a2", "a3"])
    plan = _plan(shed, not_ready=frozenset({"a3"}))
    assert plan.record.agents == ("a2",) and plan.record.cordoned == ("a2",)
    assert any("a3" in n for n in plan.notes)
