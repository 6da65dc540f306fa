"""Flows against in-memory ports: stage order, ledger, partial outcomes, aborts, the fallback.

The end-to-end proof is tests/integration/test_flows.py on the twin; these pin the decisions.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml

from hecate.adapters.ansible.events import EventCallback
from hecate.adapters.ansible.protocol import PlaybookRequest, PlaybookResult
from hecate.adapters.kube.manifests import clean_manifest
from hecate.adapters.kube.unavailable import UnavailableKube
from hecate.adapters.statedir.store import StateStore
from hecate.config.model import HecateConfig, parse_config
from hecate.core.intent import IntentState
from hecate.core.plans import ShutdownOptions, StartupOptions
from hecate.core.readings import UpsReading, parse_status
from hecate.core.run_history import Outcome
from hecate.errors import GuardRefusedError, KubeError, UpsError
from hecate.flows.bootstrap_cache import cached_or_configured, refresh_cache
from hecate.flows.context import FlowContext
from hecate.flows.ledger import load_ledger
from hecate.flows.shutdown import run_shutdown
from hecate.flows.startup import run_startup
from tests.fakes import FakeAnsible, FakeKube, write


def _config(tmp_path: Path, **extra: object) -> HecateConfig:
    data: dict[str, object] = {
        "state_dir": str(tmp_path / "state"),
        "nodes": {"servers": ["s1"], "agents": ["a1", "a2"]},
        "ups": {"target": "pyrphoros@localhost"},
        "startup": {
            "flux_ready_timeout_seconds": 2,
            "nodes_ready_timeout_seconds": 2,
            "api_timeout_seconds": 2,
        },
    }
    data.update(extra)
    return parse_config(data)


def _cluster() -> FakeKube:
    kube = FakeKube(nodes_up={"s1": True, "a1": True, "a2": True})
    kube.add_flux("Kustomization", "flux-system", "apps")
    kube.add_flux("Kustomization", "flux-system", "paused-by-operator", suspended=True)
    kube.add_flux("HelmRelease", "apps", "web")
    kube.add_flux("GitRepository", "flux-system", "flux-system")
    return kube


def _ctx(config: HecateConfig, kube: FakeKube, ansible: FakeAnsible) -> FlowContext:
    ansible.cluster = kube
    return FlowContext(
        config=config,
        ansible=ansible,
        kube=kube,
        store=StateStore(config.state_dir),
        read_ups=lambda: UpsReading(parse_status("OL"), 1800, 100),
        sleep=lambda _: None,
    )


def test_shutdown_stages_in_order_and_ledger(tmp_path: Path) -> None:
    config = _config(tmp_path)
    kube, ansible = _cluster(), FakeAnsible()
    report = run_shutdown(_ctx(config, kube, ansible), ShutdownOptions(reason="ups"))
    assert report.outcome is Outcome.SUCCESS, report.to_json()
    assert ansible.playbooks == [
        ("etcd_snapshot", ("s1",)),
        ("stop_agents", ("a1", "a2")),
        ("stop_servers", ("s1",)),
        ("poweroff", ("a1", "a2")),
        ("poweroff", ("s1",)),
    ]
    ledger = load_ledger(config.state_dir)
    assert sorted(ledger.suspended) == ["HelmRelease/apps/web", "Kustomization/flux-system/apps"]
    assert sorted(ledger.cordoned) == ["a1", "a2", "s1"]
    store = StateStore(config.state_dir)
    assert store.read_intent().state is IntentState.SHUTDOWN_COMPLETE
    [run] = store.load_runs()
    assert run.outcome is Outcome.SUCCESS and run.reason == "ups"
    assert [s.name for s in run.stages][:2] == ["flux_suspend", "cordon"]


def test_the_node_stages_of_a_shutdown_run_as_one_batch(tmp_path: Path) -> None:
    """stop_agents, stop_servers and both poweroffs need no decision between them: one
    ansible-playbook (issue 16), each stage still recorded, timed and reported on its own."""
    config = _config(tmp_path)
    kube, ansible = _cluster(), FakeAnsible()
    seen: list[tuple[str, str]] = []
    ctx = _ctx(config, kube, ansible)
    ctx.progress = lambda stage, status, _detail: seen.append((stage, status))
    report = run_shutdown(ctx, ShutdownOptions(reason="ups"))
    assert report.outcome is Outcome.SUCCESS, report.to_json()
    assert ansible.batches == [["stop_agents", "stop_servers", "poweroff", "poweroff"]]
    names = [s.name for s in report.stages]
    assert names[-4:] == ["stop_agents", "stop_servers", "poweroff_agents", "poweroff_servers"]
    assert {s.status.value for s in report.stages[-4:]} == {"ok"}
    assert report.stages[-4].nodes == {"a1": "ok", "a2": "ok"}
    assert report.stages[-1].nodes == {"s1": "ok"}
    # each stage announced and finished, in the plan's order
    order = [stage for stage, status in seen if status in ("running", "ok")]
    batch = ["stop_agents", "stop_servers", "poweroff_agents", "poweroff_servers"]
    assert [n for n in order if n in batch] == [n for n in batch for _ in (0, 1)]


def test_a_skipped_stage_inside_the_batch_keeps_its_place(tmp_path: Path) -> None:
    config = _config(tmp_path, nodes={"servers": ["s1"], "agents": []})
    kube = FakeKube(nodes_up={"s1": True})
    ansible = FakeAnsible()
    report = run_shutdown(_ctx(config, kube, ansible), ShutdownOptions(skip_etcd_snapshot=True))
    assert ansible.batches == [["stop_servers", "poweroff"]]
    tail = [(s.name, s.status.value, s.detail) for s in report.stages][-4:]
    assert tail[0] == ("stop_agents", "skipped", "no agents")
    assert tail[2] == ("poweroff_agents", "skipped", "no managed nodes")
    assert [(n, st) for n, st, _ in tail[1::2]] == [
        ("stop_servers", "ok"),
        ("poweroff_servers", "ok"),
    ]


def test_an_unreachable_node_in_the_batch_is_that_stage_only(tmp_path: Path) -> None:
    config = _config(tmp_path)
    ansible = FakeAnsible(unreachable={"a2"})
    report = run_shutdown(_ctx(config, _cluster(), ansible), ShutdownOptions())
    stages = {s.name: s for s in report.stages}
    assert stages["stop_agents"].status.value == "partial"
    assert stages["stop_servers"].status.value == "ok"
    assert stages["poweroff_agents"].nodes == {"a1": "ok", "a2": "unreachable"}
    assert report.outcome is Outcome.PARTIAL


class CancelledMidBatch(FakeAnsible):
    """The batch is cancelled while its second stage runs: the first finished, the rest did not."""

    def run_batch(
        self,
        requests: Sequence[PlaybookRequest],
        *,
        on_event: EventCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> list[PlaybookResult]:
        results = super().run_batch(requests, on_event=on_event, cancel=cancel)
        return [results[0]] + [
            dataclasses.replace(r, status="canceled", rc=254, hosts={}) for r in results[1:]
        ]


def test_a_batch_cancelled_mid_way_keeps_the_stages_that_finished(tmp_path: Path) -> None:
    config = _config(tmp_path)
    seen: list[tuple[str, str]] = []
    ctx = _ctx(config, _cluster(), CancelledMidBatch())
    ctx.progress = lambda stage, status, _detail: seen.append((stage, status))
    report = run_shutdown(ctx, ShutdownOptions(mode="cluster-only", skip_etcd_snapshot=True))
    assert report.outcome is Outcome.ABORTED
    stages = {s.name: s for s in report.stages}
    assert stages["stop_agents"].status.value == "ok"
    assert stages["stop_agents"].nodes == {"a1": "ok", "a2": "ok"}
    assert stages["stop_servers"].status.value == "failed"
    assert "cancelled" in stages["stop_servers"].detail
    # every stage that was announced also got its final status
    finals = {stage for stage, status in seen if status != "running"}
    assert {stage for stage, status in seen if status == "running"} <= finals


class CancelledDuringRerun(FakeAnsible):
    """poweroff_agents waited for a run again (a host unreachable before) that was cancelled;
    poweroff_servers had finished in the first run."""

    def run_batch(
        self,
        requests: Sequence[PlaybookRequest],
        *,
        on_event: EventCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> list[PlaybookResult]:
        results = super().run_batch(requests, on_event=on_event, cancel=cancel)
        results[2] = dataclasses.replace(results[2], status="canceled", rc=254, hosts={})
        return results


def test_a_stage_that_finished_after_a_cancelled_one_is_still_recorded(tmp_path: Path) -> None:
    config = _config(tmp_path)
    ctx = _ctx(config, _cluster(), CancelledDuringRerun())
    report = run_shutdown(ctx, ShutdownOptions(skip_etcd_snapshot=True))
    assert report.outcome is Outcome.ABORTED
    stages = {s.name: s for s in report.stages}
    assert stages["poweroff_agents"].status.value == "failed"
    assert stages["poweroff_servers"].status.value == "ok"  # the servers really went down
    assert stages["poweroff_servers"].nodes == {"s1": "ok"}


def test_startup_node_stages_are_not_batched(tmp_path: Path) -> None:
    """Python decides between them (the API must answer before the agents start): the one
    batch is start_servers' own run, the servers' etcd reads around their start."""
    config = _config(tmp_path)
    kube, ansible = _cluster(), FakeAnsible()
    kube.api_up = False
    run_startup(_ctx(config, kube, ansible), StartupOptions())
    assert ansible.batches == [["etcd", "start_servers", "etcd"]]
    assert [p for p, _ in ansible.playbooks if p.startswith("start")] == [
        "start_servers",
        "start_agents",
    ]


def test_cluster_only_mode_skips_poweroff_and_snapshot(tmp_path: Path) -> None:
    config = _config(tmp_path)
    kube, ansible = _cluster(), FakeAnsible()
    options = ShutdownOptions(mode="cluster-only", skip_etcd_snapshot=True)
    run_shutdown(_ctx(config, kube, ansible), options)
    assert [p for p, _ in ansible.playbooks] == ["stop_agents", "stop_servers"]


def test_managed_subset_limits_poweroff(tmp_path: Path) -> None:
    config = _config(tmp_path, ssh_managed_nodes=["a2"])
    ansible = FakeAnsible()
    run_shutdown(_ctx(config, _cluster(), ansible), ShutdownOptions())
    assert [limit for p, limit in ansible.playbooks if p == "poweroff"] == [("a2",)]


def test_unreachable_agent_makes_partial_and_others_continue(tmp_path: Path) -> None:
    config = _config(tmp_path)
    kube, ansible = _cluster(), FakeAnsible(unreachable={"a2"})
    report = run_shutdown(_ctx(config, kube, ansible), ShutdownOptions())
    assert report.outcome is Outcome.PARTIAL
    stage = next(s for s in report.stages if s.name == "stop_agents")
    assert stage.nodes == {"a1": "ok", "a2": "unreachable"}
    assert ("stop_servers", ("s1",)) in ansible.playbooks  # the servers were still stopped
    assert report.to_json()["nodes"]["a2"]["stop_agents"] == "unreachable"
    # partial runs never teach the budget
    assert StateStore(config.state_dir).load_runs()[0].outcome is Outcome.PARTIAL


def test_shutdown_with_api_down_still_stops_nodes(tmp_path: Path) -> None:
    config = _config(tmp_path)
    kube, ansible = _cluster(), FakeAnsible()
    kube.api_up = False
    report = run_shutdown(_ctx(config, kube, ansible), ShutdownOptions())
    statuses = {s.name: s.status for s in report.stages}
    assert statuses["flux_suspend"] == "skipped"
    assert statuses["stop_servers"] == "ok"


def test_round_trip_resumes_only_what_hecate_suspended(tmp_path: Path) -> None:
    config = _config(tmp_path)
    kube, ansible = _cluster(), FakeAnsible()
    ctx = _ctx(config, kube, ansible)
    run_shutdown(ctx, ShutdownOptions(mode="cluster-only"))
    kube.cordoned.add("a1")  # (already cordoned by Hecate)
    report = run_startup(ctx, StartupOptions(force_flux_branch="recovery"))
    assert report.outcome is Outcome.SUCCESS, report.to_json()
    assert [p for p, _ in ansible.playbooks][-2:] == ["start_servers", "start_agents"]
    assert not kube.flux["Kustomization/flux-system/apps"].suspended
    assert not kube.flux["HelmRelease/apps/web"].suspended
    assert kube.flux["Kustomization/flux-system/paused-by-operator"].suspended
    assert kube.cordoned == set()
    assert "branch recovery" in kube.calls
    assert StateStore(config.state_dir).read_intent().state is IntentState.NORMAL
    assert load_ledger(config.state_dir).suspended == []
    assert report.fallbacks == []


def test_operator_cordon_survives_a_round_trip(tmp_path: Path) -> None:
    config = _config(tmp_path)
    kube, ansible = _cluster(), FakeAnsible()
    kube.cordoned.add("a2")  # an operator's maintenance cordon
    ctx = _ctx(config, kube, ansible)
    run_shutdown(ctx, ShutdownOptions(mode="cluster-only"))
    run_startup(ctx, StartupOptions())
    assert kube.cordoned == {"a2"}


def test_gitea_deadlock_fallback_scales_gitea(tmp_path: Path) -> None:
    config = _config(tmp_path)
    kube, ansible = _cluster(), FakeAnsible()
    kube.gitea_replicas = 0
    report = run_startup(_ctx(config, kube, ansible), StartupOptions())
    assert report.outcome is Outcome.SUCCESS, report.to_json()
    assert report.fallbacks == ["gitea_scale"]
    assert "scale gitea/gitea 1" in kube.calls


def test_gitea_fallback_applies_bootstrap_manifests(tmp_path: Path) -> None:
    manifest = write(
        tmp_path / "gitea.yaml",
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: data, namespace: gitea}\n"
        "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: gitea, namespace: gitea}\n",
    )
    config = _config(
        tmp_path,
        startup={
            "gitea_bootstrap_manifests": [str(manifest)],
            "flux_ready_timeout_seconds": 2,
            "nodes_ready_timeout_seconds": 2,
        },
    )
    kube, ansible = _cluster(), FakeAnsible()
    kube.gitea_replicas, kube.gitea_scalable = 0, False
    report = run_startup(_ctx(config, kube, ansible), StartupOptions())
    assert kube.applied == ["PersistentVolumeClaim/data", "Deployment/gitea"]
    assert report.fallbacks == ["gitea_scale", "gitea_bootstrap_manifests"]
    assert report.outcome is Outcome.SUCCESS


def test_startup_refused_by_guards_records_nothing(tmp_path: Path) -> None:
    config = _config(tmp_path)
    kube, ansible = _cluster(), FakeAnsible()
    ctx = _ctx(config, kube, ansible)
    ctx.read_ups = lambda: UpsReading(parse_status("OB DISCHRG"), 900, 80)
    with pytest.raises(GuardRefusedError, match="battery"):
        run_startup(ctx, StartupOptions())
    assert ansible.requests == []
    assert StateStore(config.state_dir).load_runs() == []


def test_cancelled_startup_is_aborted_and_shutdown_takes_over(tmp_path: Path) -> None:
    config = _config(tmp_path)
    kube, ansible = _cluster(), FakeAnsible()
    ctx = _ctx(config, kube, ansible)
    run_shutdown(ctx, ShutdownOptions(mode="cluster-only"))
    ctx.cancel.set()
    report = run_startup(ctx, StartupOptions())
    assert report.outcome is Outcome.ABORTED
    store = StateStore(config.state_dir)
    assert store.read_intent().state is IntentState.STARTUP_IN_PROGRESS
    ctx.cancel.clear()
    again = run_shutdown(ctx, ShutdownOptions(mode="cluster-only"))
    assert again.outcome is Outcome.SUCCESS
    assert store.read_intent().state is IntentState.SHUTDOWN_COMPLETE


def test_rerun_after_a_crash_records_the_interrupted_run(tmp_path: Path) -> None:
    config = _config(tmp_path)
    store = StateStore(config.state_dir)
    store.set_intent(IntentState.SHUTTING_DOWN, reason="ups", run_id="shutdown-crashed")
    report = run_shutdown(_ctx(config, _cluster(), FakeAnsible()), ShutdownOptions())
    runs = store.load_runs()
    assert [(r.run_id, r.outcome) for r in runs] == [
        ("shutdown-crashed", Outcome.INTERRUPTED),
        (report.run_id, Outcome.SUCCESS),
    ]
    assert json.loads((config.state_dir / "intent.json").read_text())["state"] == (
        "shutdown_complete"
    )


def test_bootstrap_cache_keeps_live_copies_and_is_used_by_the_fallback(tmp_path: Path) -> None:
    manifest = write(
        tmp_path / "gitea.yaml",
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: data, namespace: gitea}\n"
        "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: gitea, namespace: gitea}\n",
    )
    broken = write(
        tmp_path / "broken.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: missing, namespace: gitea}\n",
    )
    config = _config(
        tmp_path,
        startup={
            "gitea_bootstrap_manifests": [str(manifest), str(broken)],
            "flux_ready_timeout_seconds": 2,
            "nodes_ready_timeout_seconds": 2,
        },
    )
    kube = _cluster()
    problems = refresh_cache(kube, config)
    assert len(problems) == 1 and "broken.yaml" in problems[0]
    cached = config.state_dir / "bootstrap-cache" / "gitea.yaml"
    docs = list(yaml.safe_load_all(cached.read_text()))
    assert [d["kind"] for d in docs] == ["PersistentVolumeClaim", "Deployment"]
    assert docs[0]["spec"] == {"live": True}
    assert not (config.state_dir / "bootstrap-cache" / "broken.yaml").exists()
    assert cached_or_configured(config, manifest) == cached
    assert cached_or_configured(config, broken) == broken


def test_clean_manifest_drops_server_fields() -> None:
    live = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "gitea",
            "namespace": "gitea",
            "uid": "u",
            "resourceVersion": "7",
            "managedFields": [{}],
            "creationTimestamp": "t",
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "keep": "me"},
        },
        "spec": {"replicas": 1},
        "status": {"readyReplicas": 1},
    }
    assert clean_manifest(live) == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "gitea", "namespace": "gitea", "annotations": {"keep": "me"}},
        "spec": {"replicas": 1},
    }


def test_ups_kill_power_and_local_poweroff_come_last(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        shutdown={"ups_kill_power": True, "poweroff_local_host": True, "etcd_snapshot": False},
    )
    kube, ansible = _cluster(), FakeAnsible()
    ctx = _ctx(config, kube, ansible)
    calls: list[str] = []

    def local_poweroff() -> None:
        # the run is already recorded when this host goes down
        assert StateStore(config.state_dir).read_intent().state is IntentState.SHUTDOWN_COMPLETE
        calls.append("local poweroff")

    ctx.ups_command = lambda command: calls.append(f"ups {command}")
    ctx.poweroff_local = local_poweroff
    report = run_shutdown(ctx, ShutdownOptions(mode="poweroff"))
    assert report.outcome is Outcome.SUCCESS
    assert calls == ["ups shutdown.return", "local poweroff"]
    assert [s.name for s in report.stages][-1] == "ups_kill_power"
    assert ansible.playbooks[-1] == ("poweroff", ("s1",))


def test_failed_ups_kill_power_is_a_warning_and_cluster_only_never_powers_off(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path, shutdown={"ups_kill_power": True, "poweroff_local_host": True})
    ctx = _ctx(config, _cluster(), FakeAnsible())

    def refuse(command: str) -> None:
        raise UpsError(f"upsd refused {command}")

    powered: list[bool] = []
    ctx.ups_command = refuse
    ctx.poweroff_local = lambda: powered.append(True)
    report = run_shutdown(ctx, ShutdownOptions(mode="poweroff"))
    stage = next(s for s in report.stages if s.name == "ups_kill_power")
    assert stage.status == "warning" and "refused" in stage.detail
    assert report.outcome is Outcome.SUCCESS
    powered.clear()
    run_shutdown(ctx, ShutdownOptions(mode="cluster-only"))
    assert powered == []


def test_startup_without_an_api_client_fails_fast_and_changes_nothing(tmp_path: Path) -> None:
    config = _config(tmp_path)
    ansible = FakeAnsible()
    ctx = _ctx(config, _cluster(), ansible)
    ctx.kube = UnavailableKube("cannot load kubeconfig /etc/hecate/kubeconfig.yaml")
    with pytest.raises(KubeError, match="fix `kubeconfig`"):
        run_startup(ctx, StartupOptions())
    assert ansible.requests == []
    assert StateStore(config.state_dir).read_intent().state is IntentState.NORMAL


def test_shutdown_without_an_api_client_still_stops_the_nodes(tmp_path: Path) -> None:
    config = _config(tmp_path)
    ansible = FakeAnsible()
    ctx = _ctx(config, _cluster(), ansible)
    ctx.kube = UnavailableKube("cannot load kubeconfig")
    report = run_shutdown(ctx, ShutdownOptions(mode="cluster-only"))
    assert [p for p, _ in ansible.playbooks] == ["etcd_snapshot", "stop_agents", "stop_servers"]
    assert {s.name: s.status for s in report.stages}["flux_suspend"] == "skipped"
