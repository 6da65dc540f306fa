"""The Kubernetes adapter: the few API calls the flows make, through lightkube, typed and bounded.

Every failure becomes a KubeError: KubeUnavailableError when the API cannot be reached (the
normal state of a cluster that is down), KubeNotFoundError for a missing object.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx2
from lightkube import ApiError, Client, KubeConfig
from lightkube.codecs import from_dict
from lightkube.config.client_adapter import Client as HttpClient
from lightkube.config.client_adapter import ConnectionParams
from lightkube.core.exceptions import ConfigError as LightkubeConfigError
from lightkube.core.exceptions import LoadResourceError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import DaemonSet, Deployment, StatefulSet
from lightkube.resources.core_v1 import Node, Pod
from lightkube.resources.storage_v1 import VolumeAttachment
from lightkube.types import PatchType

from hecate.adapters.kube.manifests import clean_manifest
from hecate.adapters.kube.shed_calls import ShedCalls
from hecate.adapters.kube.types import (
    FluxKind,
    FluxObject,
    KubeNotFoundError,
    KubeUnavailableError,
    NodeDetails,
    NodeInfo,
    PodRef,
    Readiness,
    StorageKind,
    VolumeAttachmentInfo,
    WorkloadInfo,
    WorkloadKind,
    ready_condition,
)
from hecate.errors import KubeError

FIELD_MANAGER = "hecate"


Kustomization = create_namespaced_resource(
    "kustomize.toolkit.fluxcd.io", "v1", "Kustomization", "kustomizations"
)
HelmRelease = create_namespaced_resource(
    "helm.toolkit.fluxcd.io", "v2", "HelmRelease", "helmreleases"
)
GitRepository = create_namespaced_resource(
    "source.toolkit.fluxcd.io", "v1", "GitRepository", "gitrepositories"
)

_FLUX = {"Kustomization": Kustomization, "HelmRelease": HelmRelease, "GitRepository": GitRepository}


class Kube(ShedCalls):
    """A connection to one cluster's API. Use as a context manager, or call close().

    `available` is True: a client was made (whether the API answers is `readyz()`'s to say).
    """

    @property
    def available(self) -> bool:
        """A client exists: the flows may call the API (it may still be down: `readyz()`)."""
        return True

    @property
    def reason(self) -> str:
        """Why the API cannot be called: nothing, a client exists."""
        return ""

    def __init__(self, kubeconfig: Path, *, timeout_s: float = 10.0) -> None:
        try:
            config = KubeConfig.from_file(kubeconfig)
        except (OSError, LightkubeConfigError, KeyError, ValueError) as exc:
            raise KubeError(f"cannot load kubeconfig {kubeconfig}: {exc}") from None
        self.kubeconfig = kubeconfig
        timeout = httpx2.Timeout(timeout_s)
        self._client = Client(config, timeout=timeout, field_manager=FIELD_MANAGER, trust_env=False)
        # lightkube has no call for /readyz: a plain HTTP client built by lightkube's own
        # (public) client adapter from the same kubeconfig context, so whatever auth it carries
        # (token, client certificate, exec plugin) applies.
        try:
            self._http = HttpClient(
                self._client.config, ConnectionParams(timeout=timeout, trust_env=False)
            )
        except (OSError, LightkubeConfigError, KeyError, ValueError) as exc:
            self._client.close()
            raise KubeError(f"cannot load kubeconfig {kubeconfig}: {exc}") from None

    def close(self) -> None:
        self._http.close()
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
                f"{what}: the API at {self.server} is unreachable ({type(exc).__name__})"
            ) from None
        except (LightkubeConfigError, OSError) as exc:
            # the kubeconfig's credentials fail at request time (an exec plugin that exits
            # non-zero or is missing): no call can reach the API, as with a network failure
            raise KubeUnavailableError(f"{what}: no credentials for the API ({exc})") from None

    @property
    def server(self) -> str:
        """The API server's URL, as the kubeconfig names it."""
        return str(self._client.config.cluster.server)

    # --- API health -------------------------------------------------------------------------

    def readyz(self) -> bool:
        """True when the API server answers /readyz with 200 (False when down)."""
        try:
            response = self._http.get("/readyz")
        except (httpx2.HTTPError, LightkubeConfigError, OSError):
            # an exec plugin that fails (lightkube's ConfigError) or cannot be run (OSError)
            # leaves the API as unreachable as a network failure does: not ready
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
            PodRef(p.metadata.namespace or "default", p.metadata.name or "?", _stays(p))
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
        """Through the scale subresource (what `kubectl scale` and an HPA use)."""
        scale = Deployment.Scale if kind == "deployment" else StatefulSet.Scale
        patch = {"spec": {"replicas": replicas}}
        with self._errors(f"scale {kind} {namespace}/{name}"):
            self._client.patch(scale, name, patch, namespace=namespace, patch_type=PatchType.MERGE)

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


def _stays(pod: Pod) -> bool:
    """A DaemonSet's pod or a static pod's mirror: no eviction moves it off its node."""
    meta = pod.metadata
    if meta is None:
        return False
    if "kubernetes.io/config.mirror" in (meta.annotations or {}):
        return True
    return any(ref.kind == "DaemonSet" for ref in meta.ownerReferences or [])
