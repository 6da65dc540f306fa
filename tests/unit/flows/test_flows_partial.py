"""Flows when part of the cluster misbehaves: cordon and uncordon go to every node at once
and one node's API error stays that node's (the ledger records exactly what Hecate cordoned);
one failed pod listing does not rush the drain to deletes; a startup forced past the peer_ups
guard clears the peers it waited for."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from hecate.adapters.kube.types import FluxKind, PodRef
from hecate.adapters.statedir.awaiting import load_awaiting, save_awaiting
from hecate.core.plans import ShutdownOptions, StartupOptions
from hecate.core.run_history import Outcome
from hecate.core.startup_refusals import StartupOverrides
from hecate.errors import GuardRefusedError, KubeError
from hecate.flows.context import Stage
from hecate.flows.drain import drain
from hecate.flows.each_node import for_each_node
from hecate.flows.ledger import load_ledger
from hecate.flows.shutdown import run_shutdown
from hecate.flows.startup import run_startup
from tests.fakes import FakeAnsible, FakeKube
from tests.unit.flows.test_flows import _cluster, _config, _ctx


def test_every_node_is_called_once_and_errors_stay_per_node() -> None:
    called: list[str] = []
    lock = threading.Lock()

    def action(node: str) -> None:
        with lock:
            called.append(node)
        if node == "a2":
            raise KubeError("a2: 500 from the API")

    errors = for_each_node(["s1", "a1", "a2", "a3"], action)
    assert sorted(called) == ["a1", "a2", "a3", "s1"]
    assert list(errors) == ["s1", "a1", "a2", "a3"]  # the caller's order
    assert [n for n, e in errors.items() if e is not None] == ["a2"]
    assert for_each_node([], action) == {}


def test_slow_calls_overlap() -> None:
    start = time.monotonic()
    for_each_node([f"n{i}" for i in range(8)], lambda _: time.sleep(0.3))
    assert time.monotonic() - start < 0.3 * 4  # one after another would take 2.4 s


class PatchFails(FakeKube):
    """The API refuses to patch one node (a webhook, a conflict)."""

    def set_unschedulable(self, node: str, value: bool) -> None:
        if node == "a1" and value:
            raise KubeError("a1: admission webhook denied the patch")
        super().set_unschedulable(node, value)


def test_a_node_that_cannot_be_cordoned_is_partial_and_not_recorded(tmp_path: Path) -> None:
    config = _config(tmp_path)
    kube, ansible = PatchFails(nodes_up={"s1": True, "a1": True, "a2": True}), FakeAnsible()
    base = _cluster()
    kube.flux = base.flux
    kube.cordoned.add("a2")  # an operator's cordon: never recorded, never undone
    ctx = _ctx(config, kube, ansible)
    report = run_shutdown(ctx, ShutdownOptions(mode="cluster-only", skip_drain=True))
    cordon = next(s for s in report.stages if s.name == "cordon")
    assert cordon.status == "partial", cordon.to_json()
    assert cordon.nodes == {"s1": "ok", "a1": "failed", "a2": "ok"}
    assert load_ledger(config.state_dir).cordoned == ["s1"]
    assert report.outcome is Outcome.PARTIAL  # and the node stages still ran
    assert run_startup(ctx, StartupOptions()).outcome is Outcome.SUCCESS
    assert load_ledger(config.state_dir).cordoned == []  # uncordoned what it cordoned
    assert kube.cordoned == {"a2"}  # and only that


class SuspendFails(FakeKube):
    """The API refuses to suspend one HelmRelease; every suspend is recorded with the ledger
    as it was on disk at that moment (recorded before the patches, as cordon does)."""

    ledger_at_patch: list[list[str]]
    state_dir: Path

    def set_suspend(self, kind: FluxKind, namespace: str, name: str, suspend: bool) -> None:
        if suspend:
            self.ledger_at_patch.append(sorted(load_ledger(self.state_dir).suspended))
        if kind == "HelmRelease" and suspend:
            raise KubeError("HelmRelease/apps/web: 409 conflict")
        super().set_suspend(kind, namespace, name, suspend)


def test_flux_suspends_go_out_together_and_a_refused_one_stays_recorded(
    tmp_path: Path,
) -> None:
    """An error does not prove the suspend did not land (a timeout after the server applied
    it): the ledger keeps it, so the next startup resumes it (a resume too many is harmless)."""
    config = _config(tmp_path)
    base = _cluster()
    kube = SuspendFails(nodes_up=dict(base.nodes_up))
    kube.flux, kube.ledger_at_patch, kube.state_dir = base.flux, [], config.state_dir
    ctx = _ctx(config, kube, FakeAnsible())
    report = run_shutdown(ctx, ShutdownOptions(mode="cluster-only", skip_drain=True))
    stage = next(s for s in report.stages if s.name == "flux_suspend")
    assert stage.status == "partial" and "HelmRelease/apps/web: 409" in stage.detail
    both = ["HelmRelease/apps/web", "Kustomization/flux-system/apps"]
    # a crash during the patches would still have them resumed by the next startup
    assert kube.ledger_at_patch == [both, both]
    assert sorted(load_ledger(config.state_dir).suspended) == both
    assert kube.flux["Kustomization/flux-system/paused-by-operator"].suspended  # untouched
    assert run_startup(ctx, StartupOptions()).outcome is Outcome.SUCCESS
    assert not kube.flux["Kustomization/flux-system/apps"].suspended
    assert not kube.flux["HelmRelease/apps/web"].suspended  # its resume changed nothing
    assert kube.flux["Kustomization/flux-system/paused-by-operator"].suspended


class ListingHiccup(FakeKube):
    """One pod on a1 that leaves after its eviction; one pod listing fails on the way."""

    pods: dict[str, list[PodRef]]
    listings: int
    deleted: list[str]

    def pods_on_node(self, node: str) -> list[PodRef]:
        self.listings += 1
        if self.listings == 3:  # the first wait's second look: the API blinks
            raise KubeError("a1: connection reset")
        return list(self.pods.get(node, []))

    def evict(self, pod: PodRef) -> None:
        pass  # accepted; the pod leaves a little later (the timer in the test)

    def delete_pod(self, pod: PodRef, *, grace_s: int = 0) -> None:
        self.deleted.append(f"{pod.name} grace={grace_s}")


def test_one_failed_pod_listing_does_not_rush_the_drain_to_deletes(tmp_path: Path) -> None:
    config = _config(tmp_path, shutdown={"drain": True, "drain_timeout_seconds": 30})
    kube = ListingHiccup(nodes_up={"s1": True, "a1": True, "a2": True})
    kube.pods, kube.listings, kube.deleted = {"a1": [PodRef("apps", "web-0")]}, 0, []
    ctx = _ctx(config, kube, FakeAnsible())
    stage = Stage("drain")
    # the pod leaves (its eviction went through) once the listing has failed once
    gone = threading.Timer(0.5, kube.pods.clear)
    gone.start()
    try:
        drain(ctx, stage, ["a1"])
    finally:
        gone.cancel()
    assert kube.deleted == [], "a transient listing error must not escalate to deletes"
    assert stage.nodes == {"a1": "ok"}, stage
    assert "a1: evicted" in stage.detail


def test_a_startup_past_the_peer_ups_guard_clears_the_awaited_peers(tmp_path: Path) -> None:
    """Started by hand with --allow-peer-ups-down: the cluster is up, so the next outage (this
    host's own) must not wait for the old peer's UPS."""
    config = _config(tmp_path)
    kube, ansible = _cluster(), FakeAnsible()
    ctx = _ctx(config, kube, ansible)
    run_shutdown(ctx, ShutdownOptions(mode="cluster-only"))
    save_awaiting(config.state_dir, frozenset({"peer-a"}))
    held = StartupOptions()
    with pytest.raises(GuardRefusedError, match="peer_ups"):
        run_startup(ctx, held)
    forced = StartupOptions(overrides=StartupOverrides(allow_peer_ups_down=True))
    assert run_startup(ctx, forced).outcome is Outcome.SUCCESS
    assert load_awaiting(config.state_dir, move=False) == frozenset()


class WithDaemonSets(FakeKube):
    """a1 runs a Deployment's pod and two that stay: a DaemonSet's and a static pod's mirror."""

    pods: dict[str, list[PodRef]]
    calls: list[str]

    def pods_on_node(self, node: str) -> list[PodRef]:
        return list(self.pods.get(node, []))

    def evict(self, pod: PodRef) -> None:
        self.calls.append(f"evict {pod.name}")
        if not pod.stays:  # a DaemonSet's pod is put back at once; a mirror pod is the kubelet's
            self.pods = {n: [p for p in ps if p != pod] for n, ps in self.pods.items()}

    def delete_pod(self, pod: PodRef, *, grace_s: int = 0) -> None:
        self.calls.append(f"delete {pod.name} grace={grace_s}")


def test_the_shutdown_drain_leaves_daemonset_and_static_pods_as_kubectl_drain_does(
    tmp_path: Path,
) -> None:
    """They cannot leave their node: waiting on them cost the whole drain timeout and ended in
    force-deletes that changed nothing (every real cluster has DaemonSets: svclb, CNI)."""
    config = _config(tmp_path, shutdown={"drain": True, "drain_timeout_seconds": 30})
    kube = WithDaemonSets(nodes_up={"s1": True, "a1": True})
    kube.calls = []
    kube.pods = {
        "a1": [
            PodRef("apps", "web-0"),
            PodRef("kube-system", "svclb-traefik-a1", stays=True),
            PodRef("kube-system", "kube-proxy-a1", stays=True),
        ]
    }
    stage = Stage("drain")
    started = time.monotonic()
    drain(_ctx(config, kube, FakeAnsible()), stage, ["a1"])
    assert time.monotonic() - started < 5, "waited on pods that stay"
    assert kube.calls == ["evict web-0"]
    assert stage.nodes == {"a1": "ok"} and stage.status != "partial", stage
    assert "a1: evicted" in stage.detail
