"""The startup's Flux calls (hecate/flows/flux_resume.py): the resumes and the reconcile
requests go out at once, the ledger is written once after the resumes, a refused resume stays in
the ledger, a cancel stops the patches not yet sent (issue 29)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, cast

import pytest

from hecate.adapters.kube.types import FluxKind, FluxObject
from hecate.adapters.statedir.save import save_json
from hecate.core.plans import StartupOptions
from hecate.errors import KubeError
from hecate.flows.context import FlowAbortedError, FlowContext, Stage
from hecate.flows.flux_resume import request_reconcile, resume_flux
from hecate.flows.ledger import LEDGER_FILE, Ledger, load_ledger, save_ledger, split_key
from tests.fakes import FakeAnsible, FakeKube
from tests.unit.flows.test_flows import _config, _ctx

CALL_S = 0.05  # one API round trip, as the fake makes it


class SlowKube(FakeKube):
    """Each patch takes CALL_S; records how many were in flight at once, and refuses the
    resumes and reconcile requests of the keys in `refuse`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most_in_flight = 0
        self.refuse: set[str] = set()

    def _call(self, key: str) -> None:
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        time.sleep(CALL_S)
        with self.lock:
            self.in_flight -= 1
        if key in self.refuse:
            raise KubeError(f"{key}: 409 conflict")

    def set_suspend(self, kind: FluxKind, namespace: str, name: str, suspend: bool) -> None:
        self._call(f"{kind}/{namespace}/{name}")
        super().set_suspend(kind, namespace, name, suspend)

    def request_reconcile(self, kind: FluxKind, namespace: str, name: str, at: str) -> None:
        self._call(f"{kind}/{namespace}/{name}")
        super().request_reconcile(kind, namespace, name, at)


def _setup(
    tmp_path: Path, count: int = 12, kube: SlowKube | None = None
) -> tuple[FlowContext, SlowKube, Ledger, list[str]]:
    """`count` objects Hecate suspended (Kustomizations and HelmReleases), in the ledger."""
    config = _config(tmp_path)
    kube = kube or SlowKube(nodes_up={"s1": True, "a1": True, "a2": True})
    kube.add_flux("GitRepository", "flux-system", "flux-system")
    for i in range(count):
        kind: FluxKind = "Kustomization" if i % 2 else "HelmRelease"
        kube.add_flux(kind, "flux-system", f"app{i}", suspended=True)
    kube.add_flux("Kustomization", "flux-system", "paused-by-operator", suspended=True)
    keys = [k for k in kube.flux if "/app" in k]
    ledger = Ledger(suspended=list(keys))
    save_ledger(config.state_dir, ledger)
    return _ctx(config, kube, FakeAnsible()), kube, ledger, keys


def _count_ledger_writes(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """From now on, every write of ledger.json: the `suspended` it wrote."""
    writes: list[list[str]] = []

    def counting(path: Path, data: Any) -> bool:
        if path.name == LEDGER_FILE:
            writes.append(list(data["suspended"]))
        return save_json(path, data)

    monkeypatch.setattr("hecate.flows.ledger.save_json", counting)
    return writes


def test_every_object_is_resumed_at_once_and_the_ledger_written_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx, kube, ledger, keys = _setup(tmp_path)
    ledger_writes = _count_ledger_writes(monkeypatch)
    stage = Stage("flux_resume")
    start = time.monotonic()
    resume_flux(ctx, stage, ledger, StartupOptions())
    elapsed = time.monotonic() - start
    assert stage.status == "ok" and stage.detail == "resumed 12", stage.detail
    assert not any(kube.flux[key].suspended for key in keys)
    assert kube.flux["Kustomization/flux-system/paused-by-operator"].suspended  # not Hecate's
    assert ledger_writes == [[]]  # one write, after every patch (was one per object)
    assert load_ledger(ctx.config.state_dir).suspended == []
    assert kube.most_in_flight > 1
    # 12 resumes + 1 GitRepository + 6 Kustomizations one after another: 19 round trips;
    # together: 2 + 1 + 1 (eight at a time)
    assert elapsed < 19 * CALL_S * 0.75, elapsed


def test_the_gitrepository_is_asked_first_then_the_unsuspended_kustomizations(
    tmp_path: Path,
) -> None:
    ctx, kube, ledger, keys = _setup(tmp_path)
    resume_flux(ctx, Stage("flux_resume"), ledger, StartupOptions())
    reconciles = [c.split(" ", 1)[1] for c in kube.calls if c.startswith("reconcile ")]
    assert reconciles[0] == "GitRepository/flux-system/flux-system"
    assert sorted(reconciles[1:]) == sorted(k for k in keys if k.startswith("Kustomization/"))


def test_a_refused_resume_stays_in_the_ledger_and_the_stage_is_partial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx, kube, ledger, keys = _setup(tmp_path)
    ledger_writes = _count_ledger_writes(monkeypatch)
    refused = "HelmRelease/flux-system/app4"
    kube.refuse = {refused}
    stage = Stage("flux_resume")
    resume_flux(ctx, stage, ledger, StartupOptions())
    assert stage.status == "partial"
    assert f"{refused}: {refused}: 409 conflict" in stage.detail
    assert "resumed 11" in stage.detail
    assert ledger_writes == [[refused]]
    assert load_ledger(ctx.config.state_dir).suspended == [refused]  # the next startup's
    assert [k for k in keys if kube.flux[k].suspended] == [refused]


def test_a_cancel_before_sending_resumes_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx, kube, ledger, keys = _setup(tmp_path)
    ledger_writes = _count_ledger_writes(monkeypatch)
    ctx.cancel.set()
    with pytest.raises(FlowAbortedError):
        resume_flux(ctx, Stage("flux_resume"), ledger, StartupOptions())
    assert kube.calls == []
    assert all(kube.flux[k].suspended for k in keys)
    assert load_ledger(ctx.config.state_dir).suspended == keys
    assert ledger_writes == []  # nothing left it


class CancelMidway(SlowKube):
    """The operator cancels once the third resume has landed."""

    cancel: threading.Event

    def set_suspend(self, kind: FluxKind, namespace: str, name: str, suspend: bool) -> None:
        super().set_suspend(kind, namespace, name, suspend)
        with self.lock:
            if sum(c.startswith("resume ") for c in self.calls) >= 3:
                self.cancel.set()


def test_a_cancel_midway_stops_the_rest_and_the_ledger_keeps_what_was_not_resumed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx, kube, ledger, keys = _setup(tmp_path, 40, CancelMidway(nodes_up={"s1": True}))
    assert isinstance(kube, CancelMidway)
    kube.cancel = ctx.cancel
    ledger_writes = _count_ledger_writes(monkeypatch)
    with pytest.raises(FlowAbortedError):
        resume_flux(ctx, Stage("flux_resume"), ledger, StartupOptions())
    still = [k for k in keys if kube.flux[k].suspended]
    assert 3 <= 40 - len(still) <= 3 + 8  # at most the ones already in flight went on
    assert load_ledger(ctx.config.state_dir).suspended == still
    assert len(ledger_writes) == 1  # once, after the patches that went out


def test_every_reconcile_request_is_tried_and_a_refused_one_is_named(tmp_path: Path) -> None:
    ctx, kube, _, keys = _setup(tmp_path)
    for key in keys:
        kind, namespace, name = split_key(key)
        kube.flux[key] = FluxObject(cast(FluxKind, kind), namespace, name, False, True)
    refused = "Kustomization/flux-system/app3"
    kube.refuse = {refused}
    with pytest.raises(KubeError, match=f"cannot request a reconcile of {refused} "):
        request_reconcile(ctx)
    asked = {c.split(" ", 1)[1] for c in kube.calls if c.startswith("reconcile ")}
    kustomizations = {k for k in keys if k.startswith("Kustomization/")}
    assert asked == (kustomizations - {refused}) | {"GitRepository/flux-system/flux-system"}
