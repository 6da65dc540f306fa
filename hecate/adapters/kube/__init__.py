"""The Kubernetes adapter: the few API calls the flows make, through lightkube, typed and bounded.

- `hecate.adapters.kube.types`: the plain values it returns and its errors (pure);
- `hecate.adapters.kube.client`: `Kube`, the port (lightkube; every failure a KubeError);
- `hecate.adapters.kube.unavailable`: `UnavailableKube`, the port when no client could be made;
- `hecate.adapters.kube.manifests`: `clean_manifest` (pure).

Both ports say whether the API can be called at all: `kube.available` (False only for
`UnavailableKube`, whose `reason` says why). Every name is importable from `hecate.adapters.kube`.
"""

from hecate.adapters.kube.client import (
    FIELD_MANAGER,
    GitRepository,
    HelmRelease,
    Kube,
    Kustomization,
)
from hecate.adapters.kube.manifests import SERVER_SET_METADATA, clean_manifest
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
from hecate.adapters.kube.unavailable import UnavailableKube

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
