"""What the Kubernetes adapter returns: plain, typed values (no lightkube types), and its errors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from hecate.errors import KubeError


class KubeUnavailableError(KubeError):
    """The API server cannot be reached or does not answer in time."""


class KubeNotFoundError(KubeError):
    """The object does not exist."""


FluxKind = Literal["Kustomization", "HelmRelease", "GitRepository"]
WorkloadKind = Literal["deployment", "statefulset"]
StorageKind = Literal["daemonset", "deployment", "statefulset"]


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
    # A DaemonSet's pod or a static (mirror) pod: it stays on its node whatever is evicted (its
    # controller puts it back; kubectl drain --ignore-daemonsets leaves it), so load shedding's
    # drain does not wait for it (hecate.flows.drain.evict_drain); it stops with the node.
    stays: bool = False


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
