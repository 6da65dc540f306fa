"""In-memory stand-ins for the flows' ports: a recording Ansible and a tiny cluster model."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hecate.adapters.ansible.events import EventCallback, HostStats, RunStatus, TaskEvent
from hecate.adapters.ansible.protocol import PlaybookRequest, PlaybookResult
from hecate.adapters.kube.types import (
    FluxKind,
    FluxObject,
    KubeNotFoundError,
    NodeInfo,
    PodRef,
    Readiness,
    StorageKind,
    VolumeAttachmentInfo,
    WorkloadInfo,
    WorkloadKind,
)
from hecate.adapters.nut.port import Ups
from hecate.config.model import HecateConfig
from hecate.core.readings import Poll
from hecate.core.shed_plan import Autoscaler, Candidate, PriorityClassInfo
from hecate.errors import KubeError
from hecate.flows.etcd import TASK_ETCD
from hecate.flows.startup_gates import TASK_CLOCK, TASK_NTP

# ansible's message for a host whose sshd refuses the connection (its last line)
UNREACHABLE_MESSAGE = "Failed to connect to the host via ssh: ssh: connect to host 127.0.0.1"


@dataclass
class FakeAnsible:
    unreachable: set[str] = field(default_factory=set)
    requests: list[PlaybookRequest] = field(default_factory=list)
    batches: list[list[str]] = field(default_factory=list)  # playbook names per run_batch
    held: list[list[str]] = field(default_factory=list)  # playbook names per hold
    drops: int = 0  # drop_held calls
    cluster: FakeKube | None = None
    # time_sync playbook: per-node clock offset (s) and nodes not NTP-synchronised
    clock_offsets: dict[str, float] = field(default_factory=dict)
    unsynced: set[str] = field(default_factory=set)
    # the etcd playbook (roles/etcd): servers whose etcd data is gone, whether etcd has quorum,
    # and a whole answer per host (its key=value stdout) when a test needs one of its own
    etcd_data_lost: set[str] = field(default_factory=set)
    etcd_quorum: bool = True
    etcd_stdout: dict[str, str] = field(default_factory=dict)
    etcd_reset: bool = False  # after a cluster reset, a server started empty rejoins

    def _etcd_stdout(self, request: PlaybookRequest, host: str) -> str:
        if host in self.etcd_stdout:
            return self.etcd_stdout[host]
        action = request.extravars.get("etcd_action", "verify")
        lost = host in self.etcd_data_lost
        if action == "verify":
            name = request.extravars.get("etcd_snapshot_name", "hecate")
            return (
                f"path=/var/lib/rancher/k3s/server/db/snapshots/{name}-{host}-1\nsize=4096\n"
                f'mtime={int(time.time())}\ncluster={{"header": {{"cluster_id": "c1"}}}}'
            )
        if action in ("move_aside", "reset", "move_back"):
            # as on a server: the data goes away, comes back, or the reset makes a new cluster
            if action == "move_aside":
                self.etcd_data_lost.add(host)
            elif action == "move_back":
                self.etcd_data_lost.discard(host)
            else:
                self.etcd_data_lost, self.etcd_quorum, self.etcd_reset = set(), True, True
            return "moved=x"
        if action == "snapshot":
            return f"exists=yes\nsize=4096\nmtime={int(time.time())}\nreadable=yes\ntoken=yes"
        if action != "probe":
            return "rc=0"
        limit = list(request.limit or [])
        majority_lost = len(self.etcd_data_lost & set(limit)) > (len(limit) - 1) // 2
        healthy = self.etcd_quorum and not lost and not majority_lost
        members = json.dumps(
            {"header": {"cluster_id": "c1"}, "members": [{"name": h} for h in request.limit or []]}
        )
        return (
            f"unit=active\ndata={'missing' if lost else 'present'}\ncluster_init=yes\n"
            f'health={{"health": "{str(healthy).lower()}"}}\n'
            f"member_list={members if not lost else ''}\n"
            f'status={{"header": {{"cluster_id": "c1"}}, "raftIndex": "10"}}'
        )

    def _etcd_events(
        self, request: PlaybookRequest, host: str, on_event: EventCallback | None
    ) -> None:
        if on_event is None:
            return
        stdout = self._etcd_stdout(request, host)
        on_event(TaskEvent(request.playbook, host, TASK_ETCD, "ok", result={"stdout": stdout}))

    def _time_sync_events(self, host: str, on_event: EventCallback | None) -> None:
        if on_event is None:
            return
        synced = "no" if host in self.unsynced else "yes"
        clock = f"{time.time() + self.clock_offsets.get(host, 0.0):.6f}"
        # as roles/time_sync reports them: a debug task's msg, then a command's stdout
        for task, result in (
            (TASK_NTP, {"msg": synced, "changed": False}),
            (TASK_CLOCK, {"stdout": clock, "rc": 0, "changed": False}),
        ):
            on_event(TaskEvent("time_sync", host, task, "started"))
            on_event(TaskEvent("time_sync", host, task, "ok", result=result))

    def run(
        self,
        request: PlaybookRequest,
        *,
        on_event: EventCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> PlaybookResult:
        self.requests.append(request)
        hosts = {}
        for host in request.limit or []:
            if host in self.unreachable:
                hosts[host] = HostStats(unreachable=1)
                if on_event is not None:  # as ansible-runner's runner_on_unreachable
                    on_event(
                        TaskEvent(
                            request.playbook,
                            host,
                            "Gathering Facts",
                            "unreachable",
                            message=f"{UNREACHABLE_MESSAGE} port 22: Connection refused",
                        )
                    )
                continue
            hosts[host] = HostStats(ok=1, changed=1)
            if request.playbook == "time_sync":
                self._time_sync_events(host, on_event)
            if request.playbook in ("etcd", "etcd_snapshot"):
                self._etcd_events(request, host, on_event)
            if request.playbook == "start_servers" and self.etcd_reset:
                self.etcd_data_lost.discard(host)
            if self.cluster is not None:
                self.cluster.node_action(request.playbook, host)
        status: RunStatus = "failed" if any(h.unreachable for h in hosts.values()) else "successful"
        return PlaybookResult(
            request.playbook, status, 0 if status == "successful" else 4, hosts, 0.01, [], None
        )

    def hold(self, requests: Sequence[PlaybookRequest]) -> None:
        """Recorded (`held`): what a flow started ahead, by playbook; nothing runs."""
        self.held.append([r.playbook for r in requests])

    def drop_held(self) -> None:
        self.drops += 1

    def run_batch(
        self,
        requests: Sequence[PlaybookRequest],
        *,
        on_event: EventCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> list[PlaybookResult]:
        """As the port: one result per request, in order (each recorded as if run alone; the
        batch itself in `batches`), events tagged with their stage's index."""
        self.batches.append([r.playbook for r in requests])
        results = []
        for index, request in enumerate(requests):

            def tagged(event: TaskEvent, index: int = index) -> None:
                if on_event is not None:
                    on_event(dataclasses.replace(event, stage=index))

            results.append(self.run(request, on_event=tagged, cancel=cancel))
        return results

    @property
    def playbooks(self) -> list[tuple[str, tuple[str, ...]]]:
        """The playbooks run, but the etcd probes (read-only; see `etcd_actions`)."""
        return [
            (r.playbook, tuple(r.limit or ()))
            for r in self.requests
            if r.extravars.get("etcd_action", "") != "probe"
        ]

    @property
    def etcd_actions(self) -> list[tuple[str, tuple[str, ...]]]:
        return [
            (str(r.extravars["etcd_action"]), tuple(r.limit or ()))
            for r in self.requests
            if r.playbook == "etcd"
        ]


@dataclass
class FakeKube:
    """Just enough cluster: nodes, Flux objects, one Gitea workload and the deadlock rule."""

    nodes_up: dict[str, bool] = field(default_factory=dict)
    cordoned: set[str] = field(default_factory=set)
    api_up: bool = True
    flux: dict[str, FluxObject] = field(default_factory=dict)
    gitea_replicas: int = 1
    gitea_scalable: bool = True
    applied: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    # storage gate: label -> (wanted, ready); missing labels raise KubeError (not found)
    storage: dict[str, tuple[int, int]] = field(default_factory=dict)
    attachments: list[VolumeAttachmentInfo] = field(default_factory=list)
    available: bool = True  # a client exists (the API may still be down: api_up)
    reason: str = ""
    # load shedding: the workloads by label (kind/namespace/name), the HPAs, the classes
    shed: dict[str, Candidate] = field(default_factory=dict)
    hpas: list[Autoscaler] = field(default_factory=list)
    classes: list[PriorityClassInfo] = field(default_factory=list)

    def add_workload(self, c: Candidate) -> None:
        self.shed[c.label] = c

    def shed_candidates(self, selector: str) -> list[Candidate]:
        """Equality terms only (`k=v`, comma-separated): all the tests use."""
        terms = [tuple(t.split("=", 1)) for t in selector.split(",")]
        return [c for c in self.shed.values() if all(t in c.labels for t in terms)]

    def priority_classes(self) -> list[PriorityClassInfo]:
        return list(self.classes)

    def autoscalers(self) -> list[Autoscaler]:
        return list(self.hpas)

    def readiness(self, kind: StorageKind, namespace: str, name: str) -> Readiness:
        label = f"{kind}/{namespace}/{name}"
        if label not in self.storage:
            raise KubeError(f"get {label}: not found")
        wanted, ready = self.storage[label]
        return Readiness(kind, namespace, name, wanted, ready)

    def volume_attachments(self) -> list[VolumeAttachmentInfo]:
        return list(self.attachments)

    def node_action(self, playbook: str, host: str) -> None:
        if playbook in ("stop_agents", "stop_servers"):
            self.nodes_up[host] = False
            if playbook == "stop_servers":
                self.api_up = False
        if playbook in ("start_agents", "start_servers"):
            self.nodes_up[host] = True
            if playbook == "start_servers":
                self.api_up = True

    def add_flux(self, kind: FluxKind, ns: str, name: str, *, suspended: bool = False) -> None:
        obj = FluxObject(kind, ns, name, suspended, True)
        self.flux[obj.key] = obj

    def readyz(self) -> bool:
        return self.api_up

    def nodes(self) -> list[NodeInfo]:
        return [NodeInfo(n, up, n in self.cordoned) for n, up in self.nodes_up.items()]

    def set_unschedulable(self, node: str, value: bool) -> None:
        self.calls.append(f"cordon {node} {value}")
        (self.cordoned.add if value else self.cordoned.discard)(node)

    def pods_on_node(self, node: str) -> list[PodRef]:
        return []

    def evict(self, pod: PodRef) -> None:
        raise AssertionError("no pods")

    def delete_pod(self, pod: PodRef, *, grace_s: int = 0) -> None:
        raise AssertionError("no pods")

    def workload(self, kind: WorkloadKind, namespace: str, name: str) -> WorkloadInfo:
        c = self.shed.get(f"{kind}/{namespace}/{name}")
        if c is not None:
            return WorkloadInfo(kind, namespace, name, c.replicas, c.replicas)
        if self.shed and name != "gitea":
            raise KubeNotFoundError(f"get {kind} {namespace}/{name}: not found")
        return WorkloadInfo(kind, namespace, name, self.gitea_replicas, self.gitea_replicas)

    def scale(self, kind: WorkloadKind, namespace: str, name: str, replicas: int) -> None:
        self.calls.append(f"scale {namespace}/{name} {replicas}")
        label = f"{kind}/{namespace}/{name}"
        if label in self.shed:
            self.shed[label] = dataclasses.replace(self.shed[label], replicas=replicas)
            return
        if self.shed and name != "gitea":
            raise KubeNotFoundError(f"scale {label}: not found")
        if self.gitea_scalable:
            self.gitea_replicas = replicas

    def flux_objects(self, kind: FluxKind) -> list[FluxObject]:
        return [self._live(o) for o in self.flux.values() if o.kind == kind]

    def flux_object(self, kind: FluxKind, namespace: str, name: str) -> FluxObject:
        return self._live(self.flux[f"{kind}/{namespace}/{name}"])

    def _live(self, obj: FluxObject) -> FluxObject:
        if obj.kind == "GitRepository":
            return FluxObject(
                obj.kind, obj.namespace, obj.name, obj.suspended, self.gitea_replicas >= 1
            )
        return obj

    def set_suspend(self, kind: FluxKind, namespace: str, name: str, suspend: bool) -> None:
        key = f"{kind}/{namespace}/{name}"
        old = self.flux[key]
        self.flux[key] = FluxObject(kind, namespace, name, suspend, old.ready)
        self.calls.append(f"{'suspend' if suspend else 'resume'} {key}")

    def request_reconcile(self, kind: FluxKind, namespace: str, name: str, at: str) -> None:
        self.calls.append(f"reconcile {kind}/{namespace}/{name}")

    def set_git_branch(self, namespace: str, name: str, branch: str) -> None:
        self.calls.append(f"branch {branch}")

    def live_manifest(self, manifest: dict[str, Any]) -> dict[str, Any]:
        meta = manifest["metadata"]
        if manifest["kind"] == "Deployment":
            return {**manifest, "spec": {"replicas": max(self.gitea_replicas, 1)}}
        if meta.get("name") == "missing":
            raise KubeError(f"{manifest['kind']}/{meta['name']}: not found")
        return {**manifest, "spec": {"live": True}}

    def apply(self, manifest: dict[str, Any]) -> str:
        label = f"{manifest['kind']}/{manifest['metadata']['name']}"
        self.applied.append(label)
        if manifest["kind"] == "Deployment":
            self.gitea_replicas = 1
        return label


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def reads_ups(monkeypatch: Any, reader: Callable[[HecateConfig], Poll]) -> None:
    """Every `Ups` built from a config (the CLI's one way to the UPS) reads `reader` instead of
    upsd; instant commands still go to the real port, as before."""
    real = Ups.from_config.__func__  # type: ignore[attr-defined]

    class ReadOnlyFake:
        def __init__(self, config: HecateConfig) -> None:
            self.config = config

        def poll(self) -> Poll:
            return reader(self.config)

        def read(self) -> Poll:
            return reader(self.config)

        def instant_command(self, command: str) -> None:
            real(Ups, self.config).instant_command(command)

    monkeypatch.setattr(Ups, "from_config", classmethod(lambda _cls, config: ReadOnlyFake(config)))
