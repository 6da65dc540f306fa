"""Load shedding's shell (issue 28, item 3) against in-memory ports and real files: the record
is on disk before any change, the shed and the restore change exactly what it names, and the
adversarial cases (a workload deleted or rescaled meanwhile, a restart mid-shed, a corrupt
record, an outage that ends in a shutdown) end as documented."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hecate.adapters.kube.types import FluxKind, FluxObject, NodeInfo, WorkloadKind
from hecate.adapters.statedir.shed_file import SHED_FILE, load_shed, save_shed
from hecate.config.model import HecateConfig
from hecate.core.plans import StartupOptions
from hecate.core.shed import ShedBlocked, ShedRecord
from hecate.core.shed_plan import Autoscaler, Candidate
from hecate.errors import KubeError, StateError
from hecate.flows.shed import shed
from hecate.flows.shed_restore import restore
from hecate.flows.startup import run_startup
from tests.fakes import FakeAnsible, FakeKube
from tests.unit.flows.test_flows import _config, _ctx

SEL = "hecate.dev/shed=true"
MARK = ("hecate.dev/shed", "true")
KS = (
    MARK,
    ("kustomize.toolkit.fluxcd.io/name", "apps"),
    ("kustomize.toolkit.fluxcd.io/namespace", "flux-system"),
)
HR = (MARK, ("helm.toolkit.fluxcd.io/name", "cache"), ("helm.toolkit.fluxcd.io/namespace", "apps"))


def _shed_config(tmp_path: Path, **shed: object) -> HecateConfig:
    return _config(
        tmp_path,
        power={"shed": {"label_selector": SEL, "agents": ["a2"], "after_seconds": 60, **shed}},
    )


def _cluster() -> FakeKube:
    kube = FakeKube(nodes_up={"s1": True, "a1": True, "a2": True})
    kube.add_flux("Kustomization", "flux-system", "apps")
    kube.add_flux("HelmRelease", "apps", "cache", suspended=True)  # an operator's
    kube.add_flux("GitRepository", "flux-system", "flux-system")
    kube.add_workload(Candidate("deployment", "apps", "web", 3, KS))
    kube.add_workload(Candidate("statefulset", "apps", "cache", 2, HR))
    kube.add_workload(Candidate("deployment", "apps", "idle", 0, (MARK,)))
    kube.add_workload(Candidate("deployment", "apps", "core", 2, ()))  # not marked
    kube.hpas = [Autoscaler("apps", "web", "Deployment", "web")]
    return kube


def _replicas(kube: FakeKube) -> dict[str, int]:
    return {c.name: c.replicas for c in kube.shed.values()}


def test_shed_then_restore_changes_exactly_what_is_recorded(tmp_path: Path) -> None:
    config, kube, ansible = _shed_config(tmp_path), _cluster(), FakeAnsible()
    ctx = _ctx(config, kube, ansible)
    result = shed(ctx, "runtime low")
    assert _replicas(kube) == {"web": 0, "cache": 0, "idle": 0, "core": 2}
    assert kube.flux["Kustomization/flux-system/apps"].suspended
    assert "a2" in kube.cordoned
    assert ansible.playbooks == [("stop_agents", ("a2",)), ("poweroff", ("a2",))]
    record = load_shed(config.state_dir)
    assert isinstance(record, ShedRecord) and record.complete
    assert record == result.record
    assert [(w.name, w.replicas) for w in record.workloads] == [("web", 3), ("cache", 2)]
    assert record.flux_suspended == ("Kustomization/flux-system/apps",)  # not the operator's
    assert record.autoscalers == ("apps/web -> deployment/apps/web",)
    assert record.agents == ("a2",) and record.cordoned == ("a2",)

    done = restore(ctx, record)
    assert done.record is None and not (config.state_dir / SHED_FILE).exists()
    assert _replicas(kube) == {"web": 3, "cache": 2, "idle": 0, "core": 2}  # idle stays at 0
    assert not kube.flux["Kustomization/flux-system/apps"].suspended
    assert kube.flux["HelmRelease/apps/cache"].suspended  # Hecate did not suspend it
    assert kube.cordoned == set()
    assert ("start_agents", ("a2",)) in ansible.playbooks


class Watching(FakeKube):
    """Records what the shed file said when each change was made."""

    state_dir: Path
    seen: list[object]

    def _on_disk(self) -> object:
        path = self.state_dir / SHED_FILE
        return json.loads(path.read_text()) if path.exists() else None

    def scale(self, kind: WorkloadKind, namespace: str, name: str, replicas: int) -> None:
        self.seen.append(self._on_disk())
        super().scale(kind, namespace, name, replicas)

    def set_suspend(self, kind: FluxKind, namespace: str, name: str, suspend: bool) -> None:
        self.seen.append(self._on_disk())
        super().set_suspend(kind, namespace, name, suspend)


def test_the_record_is_on_disk_before_any_change(tmp_path: Path) -> None:
    config = _shed_config(tmp_path, agents=[])
    base = _cluster()
    kube = Watching(nodes_up=base.nodes_up, flux=base.flux, shed=base.shed)
    kube.state_dir, kube.seen = config.state_dir, []
    shed(_ctx(config, kube, FakeAnsible()), "r")
    assert len(kube.seen) == 3  # one suspend, two scales
    for on_disk in kube.seen:
        assert isinstance(on_disk, dict) and len(on_disk["workloads"]) == 2


def test_a_shed_that_cannot_record_changes_nothing(tmp_path: Path) -> None:
    config, kube = _shed_config(tmp_path), _cluster()
    config.state_dir.parent.mkdir(parents=True, exist_ok=True)
    config.state_dir.write_text("not a directory")  # the disk refuses every write
    with pytest.raises(StateError):
        shed(_ctx(config, kube, FakeAnsible()), "r")
    assert _replicas(kube)["web"] == 3 and not kube.flux["Kustomization/flux-system/apps"].suspended
    assert kube.cordoned == set()


def test_a_workload_deleted_meanwhile_is_noted_and_not_made_again(tmp_path: Path) -> None:
    config, kube, ansible = _shed_config(tmp_path, agents=[]), _cluster(), FakeAnsible()
    ctx = _ctx(config, kube, ansible)
    record = load_or_fail(shed(ctx, "r").record)
    del kube.shed["deployment/apps/web"]  # deleted while shed
    kube.shed["statefulset/apps/cache"] = Candidate("statefulset", "apps", "cache", 5, HR)
    result = restore(ctx, record)
    assert result.record is None
    assert "deployment/apps/web" not in kube.shed  # not made again
    assert kube.shed["statefulset/apps/cache"].replicas == 5  # someone's 5 stands
    text = " ".join(result.notes)
    assert "web: deleted" in text and "cache: at 5" in text


def test_a_restart_mid_shed_carries_on_from_the_record(tmp_path: Path) -> None:
    """A crash after the record and before the changes: the record (complete False) is what
    the next daemon carries on, so what the first one saw is what gets shed and restored."""
    config, kube, ansible = _shed_config(tmp_path, agents=[]), _cluster(), FakeAnsible()
    ctx = _ctx(config, kube, ansible)
    first = load_or_fail(shed(ctx, "r").record)
    save_shed(config.state_dir, ShedRecord(**{**first.__dict__, "complete": False}))
    kube.shed["deployment/apps/web"] = Candidate("deployment", "apps", "web", 3, KS)  # undone
    loaded = load_shed(config.state_dir)
    assert isinstance(loaded, ShedRecord) and not loaded.complete
    again = load_or_fail(shed(ctx, "carry on", record=loaded).record)
    assert again.complete and again.workloads == first.workloads
    assert _replicas(kube)["web"] == 0
    restore(ctx, again)
    assert _replicas(kube) == {"web": 3, "cache": 2, "idle": 0, "core": 2}


class ScaleFails(FakeKube):
    def scale(self, kind: WorkloadKind, namespace: str, name: str, replicas: int) -> None:
        if name == "cache" and replicas > 0:
            raise KubeError("scale cache: 500")
        super().scale(kind, namespace, name, replicas)


def test_what_cannot_be_restored_stays_recorded(tmp_path: Path) -> None:
    config = _shed_config(tmp_path, agents=[])
    base = _cluster()
    kube = ScaleFails(nodes_up=base.nodes_up, flux=base.flux, shed=base.shed)
    ctx = _ctx(config, kube, FakeAnsible())
    result = restore(ctx, load_or_fail(shed(ctx, "r").record))
    left = load_shed(config.state_dir)
    assert isinstance(left, ShedRecord) and left == result.record
    assert [w.name for w in left.workloads] == ["cache"]
    assert left.flux_suspended == () and _replicas(kube)["web"] == 3
    assert any("scale back" in f and "cache" in f for f in result.failed)


def test_a_corrupt_record_is_set_aside_and_blocks(tmp_path: Path) -> None:
    config = _shed_config(tmp_path)
    config.state_dir.mkdir(parents=True)
    (config.state_dir / SHED_FILE).write_text('{"since": 1, "workloads": [{"kind": "pod"}]}')
    # status reads without moving anything
    peek = load_shed(config.state_dir, move=False)
    assert isinstance(peek, ShedBlocked) and "left in place" in peek.kept
    found = load_shed(config.state_dir)
    assert isinstance(found, ShedBlocked)
    aside = list(config.state_dir.glob(f"{SHED_FILE}.corrupt-*"))
    assert [str(p) for p in aside] == [found.kept]
    # never silently dropped: the marker is what the next read (a restart) finds
    again = load_shed(config.state_dir)
    assert isinstance(again, ShedBlocked) and again.kept == found.kept


def test_an_outage_that_ends_in_a_shutdown_is_restored_by_the_startup(tmp_path: Path) -> None:
    config, kube, ansible = _shed_config(tmp_path), _cluster(), FakeAnsible()
    ctx = _ctx(config, kube, ansible)
    shed(ctx, "r")
    report = run_startup(ctx, StartupOptions(reason="power back"))
    stage = next(s for s in report.stages if s.name == "shed_restore")
    assert stage.status.value == "ok", stage.to_json()
    names = [s.name for s in report.stages]
    assert names.index("shed_restore") > names.index("flux_resume")
    assert _replicas(kube) == {"web": 3, "cache": 2, "idle": 0, "core": 2}
    assert not kube.flux["Kustomization/flux-system/apps"].suspended
    assert kube.cordoned == set() and not (config.state_dir / SHED_FILE).exists()
    again = run_startup(ctx, StartupOptions(reason="again"))
    stage = next(s for s in again.stages if s.name == "shed_restore")
    assert stage.status.value == "skipped"


def load_or_fail(record: ShedRecord | None) -> ShedRecord:
    assert record is not None
    return record


class DeletedAfterListing(FakeKube):
    """`web` is deleted between the listing and its scale to 0."""

    def shed_candidates(self, selector: str) -> list[Candidate]:
        found = super().shed_candidates(selector)
        self.shed.pop("deployment/apps/web", None)
        return found


def test_a_workload_deleted_before_its_scale_is_noted_and_the_rest_shed(tmp_path: Path) -> None:
    config, base = _shed_config(tmp_path, agents=[]), _cluster()
    kube = DeletedAfterListing(nodes_up=base.nodes_up, flux=base.flux, shed=base.shed)
    result = shed(_ctx(config, kube, FakeAnsible()), "r")
    assert any("web: deleted meanwhile" in n for n in result.notes)
    assert not result.failed and _replicas(kube)["cache"] == 0
    assert restore(_ctx(config, kube, FakeAnsible()), load_or_fail(result.record)).record is None
    assert "deployment/apps/web" not in kube.shed and _replicas(kube)["cache"] == 2


class HelmReleasesUnlisted(FakeKube):
    """The HelmRelease listing fails (an API hiccup, a CRD being upgraded)."""

    def flux_objects(self, kind: FluxKind) -> list[FluxObject]:
        if kind == "HelmRelease":
            raise KubeError("list HelmReleases: 503")
        return super().flux_objects(kind)


def test_an_unlisted_flux_kind_is_never_suspended_nor_resumed(tmp_path: Path) -> None:
    """Review: whether the operator suspended the HelmRelease is unknown when the listing
    fails; recording it as Hecate's would resume the operator's suspension at the restore."""
    config, base = _shed_config(tmp_path, agents=[]), _cluster()
    kube = HelmReleasesUnlisted(nodes_up=base.nodes_up, flux=base.flux, shed=base.shed)
    ctx = _ctx(config, kube, FakeAnsible())
    result = shed(ctx, "r")
    record = load_or_fail(result.record)
    assert not any(k.startswith("HelmRelease/") for k in record.flux_suspended)
    assert any("HelmRelease" in n for n in result.notes)
    restore(ctx, record)
    assert kube.flux["HelmRelease/apps/cache"].suspended  # the operator's suspension stands
    assert not kube.flux["Kustomization/flux-system/apps"].suspended


class NodesUnlisted(FakeKube):
    def nodes(self) -> list[NodeInfo]:
        raise KubeError("list nodes: 503")


def test_agents_are_not_shed_when_their_cordons_are_unknown(tmp_path: Path) -> None:
    """Review: with the Nodes unlisted, an agent the operator cordoned looked uncordoned and
    the restore uncordoned it; no Nodes listing: no agent is shed (nothing to undo wrongly)."""
    config, base = _shed_config(tmp_path), _cluster()
    kube = NodesUnlisted(nodes_up=base.nodes_up, flux=base.flux, shed=base.shed)
    kube.cordoned = {"a2"}  # the operator's (maintenance)
    ansible = FakeAnsible()
    ctx = _ctx(config, kube, ansible)
    result = shed(ctx, "r")
    record = load_or_fail(result.record)
    assert record.agents == () and record.cordoned == ()
    assert ansible.playbooks == []  # not powered off undrained
    assert any("Nodes" in n for n in result.notes)
    assert _replicas(kube)["web"] == 0  # the workloads are still shed
    restore(ctx, record)
    assert kube.cordoned == {"a2"}


def test_a_new_shed_never_overwrites_a_record_on_disk(tmp_path: Path) -> None:
    """Review: the daemon holds its record in memory and reads the file only at start and
    after its flows; a shed another process recorded meanwhile (a drill, a `hecate` run) must
    not be replaced by a new plan, which would find those workloads at 0 and their Flux owners
    suspended, record neither, and so never restore them."""
    config, kube, ansible = _shed_config(tmp_path, agents=[]), _cluster(), FakeAnsible()
    ctx = _ctx(config, kube, ansible)
    first = load_or_fail(shed(ctx, "a drill").record)
    on_disk = (config.state_dir / SHED_FILE).read_text()
    with pytest.raises(StateError, match="shed already"):
        shed(ctx, "the daemon, unaware")
    assert (config.state_dir / SHED_FILE).read_text() == on_disk
    assert restore(ctx, first).record is None
    assert _replicas(kube) == {"web": 3, "cache": 2, "idle": 0, "core": 2}
    assert not kube.flux["Kustomization/flux-system/apps"].suspended


def test_a_new_shed_over_a_corrupt_record_changes_nothing(tmp_path: Path) -> None:
    config, kube = _shed_config(tmp_path, agents=[]), _cluster()
    config.state_dir.mkdir(parents=True)
    (config.state_dir / SHED_FILE).write_text("{not json")
    with pytest.raises(StateError):
        shed(_ctx(config, kube, FakeAnsible()), "r")
    assert _replicas(kube)["web"] == 3
    assert (config.state_dir / SHED_FILE).read_text() == "{not json"


def test_an_agent_already_down_is_left_alone(tmp_path: Path) -> None:
    """Review: an agent that is not Ready when the shed comes (powered off for maintenance,
    broken) was recorded as shed, so the restore powered it on and started k3s on it."""
    config, kube, ansible = _shed_config(tmp_path), _cluster(), FakeAnsible()
    kube.nodes_up["a2"] = False  # off before the outage, not by Hecate
    ctx = _ctx(config, kube, ansible)
    result = shed(ctx, "r")
    record = load_or_fail(result.record)
    assert record.agents == () and record.cordoned == ()
    assert ansible.playbooks == []
    assert any("a2" in n and "not Ready" in n for n in result.notes)
    restore(ctx, record)
    assert ansible.playbooks == []  # never started
