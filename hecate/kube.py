"""The Kubernetes adapter: the few API calls the flows make, through lightkube, typed and bounded.

Every failure becomes a KubeError: KubeUnavailableError when the API cannot be reached (the
normal state of a cluster that is down), KubeNotFoundError for a missing object.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx2
from lightkube import ApiError, Client, KubeConfig
from lightkube.codecs import from_dict
from lightkube.core.exceptions import ConfigError as LightkubeConfigError
from lightkube.core.exceptions import LoadResourceError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import DaemonSet, Deployment, StatefulSet
from lightkube.resources.core_v1 import Node, Pod
from lightkube.resources.storage_v1 import VolumeAttachment
from lightkube.types import PatchType

from hecate.errors import KubeError

FIELD_MANAGER = "hecate"


class KubeUnavailableError(KubeError):
    """The API server cannot be reached or does not answer in time."""


class KubeNotFoundError(KubeError):
    """The object does not exist."""


Kustomization = create_namespaced_resource(
    "kustomize.toolkit.fluxcd.io", "v1", "Kustomization", "kustomizations"
)
HelmRelease = create_namespaced_resource(
    "helm.toolkit.fluxcd.io", "v2", "HelmRelease", "helmreleases"
)
GitRepository = create_namespaced_resource(
    "source.toolkit.fluxcd.io", "v1", "GitRepository", "gitrepositories"
)

FluxKind = Literal["Kustomization", "HelmRelease", "GitRepository"]
WorkloadKind = Literal["deployment", "statefulset"]
StorageKind = Literal["daemonset", "deployment", "statefulset"]
_FLUX = {"Kustomization": Kustomization, "HelmRelease": HelmRelease, "GitRepository": GitRepository}


@dataclass(frozen=True)
class NodeInfo:
    name: str
    ready: bool
    unschedulable: bool


@dataclass(frozen=True)
class FluxObject:
    kind: FluxKind
    namespace: str
    name: str
    suspended: bool
    ready: bool
    message: str = ""

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"


@dataclass(frozen=True)
class WorkloadInfo:
    kind: WorkloadKind
    namespace: str
    name: str
    replicas: int
    ready_replicas: int


@dataclass(frozen=True)
class Readiness:
    """How much of a workload is Ready: a DaemonSet's scheduled pods, or replicas."""

    kind: StorageKind
    namespace: str
    name: str
    wanted: int
    ready: int

    @property
    def label(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"

    @property
    def is_ready(self) -> bool:
        return self.wanted > 0 and self.ready >= self.wanted


@dataclass(frozen=True)
class VolumeAttachmentInfo:
    name: str
    node: str
    attached: bool
    error: str = ""


@dataclass(frozen=True)
class NodeDetails:
    """What `hecate config init` and `hecate doctor` read of a Node: labels and addresses."""

    name: str
    labels: Mapping[str, str]
    internal_ip: str | None


@dataclass(frozen=True)
class PodRef:
    namespace: str
    name: str


def ready_condition(conditions: object) -> tuple[bool, str]:
    """(status, message) of the `Ready` condition in a status.conditions list."""
    if isinstance(conditions, list):
        for cond in conditions:
            typ = getattr(cond, "type", None) if not isinstance(cond, Mapping) else cond.get("type")
            if typ == "Ready":
                if isinstance(cond, Mapping):
                    return cond.get("status") == "True", str(cond.get("message", ""))
                return getattr(cond, "status", "") == "True", str(getattr(cond, "message", ""))
    return False, "no Ready condition"


class Kube:
    """A connection to one cluster's API. Use as a context manager, or call close()."""

    def __init__(self, kubeconfig: Path, *, timeout_s: float = 10.0) -> None:
        try:
            config = KubeConfig.from_file(kubeconfig)
        except (OSError, LightkubeConfigError, KeyError, ValueError) as exc:
            raise KubeError(f"cannot load kubeconfig {kubeconfig}: {exc}") from None
        self.kubeconfig = kubeconfig
        self._client = Client(
            config, timeout=httpx2.Timeout(timeout_s), field_manager=FIELD_MANAGER, trust_env=False
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Kube:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except ApiError as exc:
            code = exc.status.code
            if code == 404:
                raise KubeNotFoundError(f"{what}: not found") from None
            if code in (502, 503, 504):
                raise KubeUnavailableError(f"{what}: API not ready ({code})") from None
            raise KubeError(f"{what}: API error {code}: {exc.status.message}") from None
        except httpx2.TimeoutException:
            raise KubeUnavailableError(f"{what}: the API did not answer in time") from None
        except httpx2.TransportError as exc:
            raise KubeUnavailableError(
                f"{what}: the API at {self._server()} is unreachable ({type(exc).__name__})"
            ) from None

    def _server(self) -> str:
        return str(self._client.config.cluster.server)

    # --- API health -------------------------------------------------------------------------

    def readyz(self) -> bool:
        """True when the API server answers /readyz with 200 (False when down)."""
        # lightkube has no call for /readyz; its own authenticated httpx client is reused so
        # that whatever auth the kubeconfig carries (token, client certificate) applies.
        http: httpx2.Client = self._client._client._client
        try:
            response = http.get("/readyz")
        except httpx2.HTTPError:
            return False
        return response.status_code == 200

    # --- Nodes ------------------------------------------------------------------------------

    def nodes(self) -> list[NodeInfo]:
        with self._errors("list nodes"):
            found = list(self._client.list(Node))
        infos = []
        for node in found:
            ready, _ = ready_condition(node.status.conditions if node.status else None)
            name = node.metadata.name if node.metadata and node.metadata.name else "?"
            unschedulable = bool(node.spec.unschedulable) if node.spec else False
            infos.append(NodeInfo(name, ready, unschedulable))
        return infos

    def node_details(self) -> list[NodeDetails]:
        with self._errors("list nodes"):
            found = list(self._client.list(Node))
        details = []
        for node in found:
            meta = node.metadata
            addresses = (node.status.addresses if node.status else None) or []
            internal = next((a.address for a in addresses if a.type == "InternalIP"), None)
            details.append(
                NodeDetails(
                    name=meta.name if meta and meta.name else "?",
                    labels=dict(meta.labels or {}) if meta else {},
                    internal_ip=internal,
                )
            )
        return details

    def set_unschedulable(self, node: str, value: bool) -> None:
        with self._errors(f"cordon node {node}"):
            self._client.patch(
                Node, node, {"spec": {"unschedulable": value}}, patch_type=PatchType.MERGE
            )

    # --- Pods (drain) -----------------------------------------------------------------------

    def pods_on_node(self, node: str) -> list[PodRef]:
        with self._errors(f"list pods on {node}"):
            pods = list(self._client.list(Pod, namespace="*", fields={"spec.nodeName": node}))
        return [
            PodRef(p.metadata.namespace or "default", p.metadata.name or "?")
            for p in pods
            if p.metadata is not None
        ]

    def evict(self, pod: PodRef) -> None:
        eviction = Pod.Eviction(metadata=ObjectMeta(name=pod.name, namespace=pod.namespace))
        with self._errors(f"evict pod {pod.namespace}/{pod.name}"):
            self._client.create(eviction, name=pod.name, namespace=pod.namespace)

    def delete_pod(self, pod: PodRef, *, grace_s: int = 0) -> None:
        with self._errors(f"delete pod {pod.namespace}/{pod.name}"):
            self._client.delete(Pod, pod.name, namespace=pod.namespace, grace_period=grace_s)

    # --- Workloads --------------------------------------------------------------------------

    def workload(self, kind: WorkloadKind, namespace: str, name: str) -> WorkloadInfo:
        obj: Deployment | StatefulSet
        with self._errors(f"get {kind} {namespace}/{name}"):
            if kind == "deployment":
                obj = self._client.get(Deployment, name, namespace=namespace)
            else:
                obj = self._client.get(StatefulSet, name, namespace=namespace)
        replicas = obj.spec.replicas if obj.spec and obj.spec.replicas is not None else 0
        ready = obj.status.readyReplicas if obj.status and obj.status.readyReplicas else 0
        return WorkloadInfo(kind, namespace, name, replicas, ready)

    def workloads(self, kind: WorkloadKind) -> list[WorkloadInfo]:
        """Every Deployment (or StatefulSet) in every namespace."""
        found: list[Deployment] | list[StatefulSet]
        with self._errors(f"list {kind}s"):
            if kind == "deployment":
                found = list(self._client.list(Deployment, namespace="*"))
            else:
                found = list(self._client.list(StatefulSet, namespace="*"))
        infos = []
        for obj in found:
            meta = obj.metadata
            replicas = obj.spec.replicas if obj.spec and obj.spec.replicas is not None else 0
            ready = obj.status.readyReplicas if obj.status and obj.status.readyReplicas else 0
            infos.append(
                WorkloadInfo(
                    kind,
                    (meta.namespace if meta else None) or "default",
                    (meta.name if meta else None) or "?",
                    replicas,
                    ready,
                )
            )
        return infos

    def scale(self, kind: WorkloadKind, namespace: str, name: str, replicas: int) -> None:
        patch = {"spec": {"replicas": replicas}}
        with self._errors(f"scale {kind} {namespace}/{name}"):
            if kind == "deployment":
                self._client.patch(
                    Deployment, name, patch, namespace=namespace, patch_type=PatchType.MERGE
                )
            else:
                self._client.patch(
                    StatefulSet, name, patch, namespace=namespace, patch_type=PatchType.MERGE
                )

    def readiness(self, kind: StorageKind, namespace: str, name: str) -> Readiness:
        """Wanted vs Ready: a DaemonSet's desiredNumberScheduled/numberReady, else replicas."""
        if kind != "daemonset":
            info = self.workload(kind, namespace, name)
            return Readiness(kind, namespace, name, info.replicas, info.ready_replicas)
        with self._errors(f"get daemonset {namespace}/{name}"):
            obj = self._client.get(DaemonSet, name, namespace=namespace)
        status = obj.status
        wanted = status.desiredNumberScheduled if status else 0
        ready = status.numberReady if status and status.numberReady else 0
        return Readiness(kind, namespace, name, wanted or 0, ready)

    def volume_attachments(self) -> list[VolumeAttachmentInfo]:
        with self._errors("list volumeattachments"):
            found = list(self._client.list(VolumeAttachment))
        infos = []
        for va in found:
            status = va.status
            error = ""
            if status is not None and status.attachError is not None:
                error = str(status.attachError.message or "attach error")
            infos.append(
                VolumeAttachmentInfo(
                    va.metadata.name if va.metadata and va.metadata.name else "?",
                    va.spec.nodeName,
                    bool(status.attached) if status else False,
                    error,
                )
            )
        return infos

    # --- Flux -------------------------------------------------------------------------------

    def flux_objects(self, kind: FluxKind) -> list[FluxObject]:
        with self._errors(f"list {kind}s"):
            found = list(self._client.list(_FLUX[kind], namespace="*"))
        return [_flux_object(kind, obj) for obj in found]

    def flux_object(self, kind: FluxKind, namespace: str, name: str) -> FluxObject:
        with self._errors(f"get {kind} {namespace}/{name}"):
            obj = self._client.get(_FLUX[kind], name, namespace=namespace)
        return _flux_object(kind, obj)

    def set_suspend(self, kind: FluxKind, namespace: str, name: str, suspend: bool) -> None:
        with self._errors(f"{'suspend' if suspend else 'resume'} {kind} {namespace}/{name}"):
            self._client.patch(
                _FLUX[kind],
                name,
                {"spec": {"suspend": suspend}},
                namespace=namespace,
                patch_type=PatchType.MERGE,
            )

    def request_reconcile(self, kind: FluxKind, namespace: str, name: str, at: str) -> None:
        """Set `reconcile.fluxcd.io/requestedAt`, what `flux reconcile` does."""
        patch = {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": at}}}
        with self._errors(f"reconcile {kind} {namespace}/{name}"):
            self._client.patch(
                _FLUX[kind], name, patch, namespace=namespace, patch_type=PatchType.MERGE
            )

    def set_git_branch(self, namespace: str, name: str, branch: str) -> None:
        with self._errors(f"set branch of GitRepository {namespace}/{name}"):
            self._client.patch(
                GitRepository,
                name,
                {"spec": {"ref": {"branch": branch}}},
                namespace=namespace,
                patch_type=PatchType.MERGE,
            )

    # --- Apply ------------------------------------------------------------------------------

    def apply(self, manifest: Mapping[str, Any]) -> str:
        """Server-side apply one manifest; returns `Kind/namespace/name`."""
        try:
            obj = from_dict(dict(manifest))
        except (LoadResourceError, KeyError, TypeError, ValueError) as exc:
            raise KubeError(f"cannot load manifest: {exc}") from None
        meta = manifest.get("metadata", {})
        label = f"{manifest.get('kind')}/{meta.get('namespace', '-')}/{meta.get('name')}"
        with self._errors(f"apply {label}"):
            self._client.apply(obj, force=True)
        return label

    def live_manifest(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """The live object a manifest names, as a manifest again (status and server-set
        metadata dropped), so it can be applied to a cluster that lost it."""
        try:
            obj = from_dict(dict(manifest))
        except (LoadResourceError, KeyError, TypeError, ValueError) as exc:
            raise KubeError(f"cannot load manifest: {exc}") from None
        meta = manifest.get("metadata", {})
        name, namespace = str(meta.get("name", "")), meta.get("namespace")
        label = f"{manifest.get('kind')}/{namespace or '-'}/{name}"
        # The kind is only known at run time (any kind a manifest names), so typing stops here.
        resource: Any = type(obj)
        with self._errors(f"get {label}"):
            live: Any = self._client.get(resource, name, namespace=namespace)
        return clean_manifest(dict(live.to_dict()))


SERVER_SET_METADATA = (
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "managedFields",
    "generation",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "ownerReferences",
)


def clean_manifest(data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy without status and the metadata the API server sets."""
    cleaned = {k: v for k, v in data.items() if k != "status"}
    meta = dict(cleaned.get("metadata") or {})
    for key in SERVER_SET_METADATA:
        meta.pop(key, None)
    annotations = {
        k: v
        for k, v in (meta.get("annotations") or {}).items()
        if k != "kubectl.kubernetes.io/last-applied-configuration"
    }
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    cleaned["metadata"] = meta
    return cleaned


def _flux_object(kind: FluxKind, obj: Any) -> FluxObject:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    ready, message = ready_condition(status.get("conditions"))
    meta = obj.metadata
    return FluxObject(
        kind=kind,
        namespace=meta.namespace or "default",
        name=meta.name or "?",
        suspended=bool(spec.get("suspend", False)),
        ready=ready,
        message=message,
    )


class UnavailableKube:
    """Stands in for the API when no client could be made (e.g. the kubeconfig is missing):
    `readyz()` is False and every call raises, so flows skip the API stages and still run the
    node stages."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def readyz(self) -> bool:
        return False

    def close(self) -> None:
        """Nothing to close."""

    def __getattr__(self, name: str) -> Any:
        def unavailable(*args: object, **kwargs: object) -> Any:
            raise KubeUnavailableError(f"Kubernetes API not available: {self.reason}")

        return unavailable
