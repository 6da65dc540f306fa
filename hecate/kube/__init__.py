"""The Kubernetes adapter: the few API calls the flows make, through lightkube, typed and bounded.

- `hecate.kube.types`: the plain values it returns and its errors (pure);
- `hecate.kube.client`: `Kube`, the port (lightkube; every failure a KubeError);
- `hecate.kube.unavailable`: `UnavailableKube`, the port when no client could be made;
- `hecate.kube.manifests`: `clean_manifest` (pure).

Both ports say whether the API can be called at all: `kube.available` (False only for
`UnavailableKube`, whose `reason` says why). Every name is importable from `hecate.kube`.
"""

from hecate.kube.client import (
    FIELD_MANAGER,
    GitRepository,
    HelmRelease,
    Kube,
    Kustomization,
)
from hecate.kube.manifests import SERVER_SET_METADATA, clean_manifest
from hecate.kube.types import (
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
from hecate.kube.unavailable import UnavailableKube

__all__ = [
    "FIELD_MANAGER",
    "SERVER_SET_METADATA",
    "FluxKind",
    "FluxObject",
    "GitRepository",
    "HelmRelease",
    "Kube",
    "KubeNotFoundError",
    "KubeUnavailableError",
    "Kustomization",
    "NodeDetails",
    "NodeInfo",
    "PodRef",
    "Readiness",
    "StorageKind",
    "UnavailableKube",
    "VolumeAttachmentInfo",
    "WorkloadInfo",
    "WorkloadKind",
    "clean_manifest",
    "ready_condition",
]
