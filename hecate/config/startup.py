"""The `startup` section of the config (split from `hecate.config`, which re-exports it)."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from hecate.config.addresses import AddressError, parse_host, parse_kube_name, parse_port
from hecate.config.strict import FilePath, GitBranch, KubeName, KubeNamespace
from hecate.config.strict import StrictModel as _Strict


class FoundationWorkload(_Strict):
    """A workload the cluster needs before anything else (storage, DNS, ingress)."""

    kind: Literal["deployment", "statefulset"] = "deployment"
    namespace: KubeNamespace
    name: KubeName
    replicas: int = Field(1, ge=1, description="replicas to restore when found at 0")
    timeout_seconds: float = Field(120.0, gt=0)


class StorageWorkload(_Strict):
    """A workload volumes depend on (Longhorn's or a CSI driver's DaemonSet/Deployment)."""

    kind: Literal["daemonset", "deployment", "statefulset"] = "daemonset"
    namespace: KubeNamespace
    name: KubeName


class StartupProbe(_Strict):
    """A check run from the Hecate host after Flux is Ready: an HTTP(S) URL or a TCP host:port.

    `target` is parsed here: `http://` or `https://` makes an HTTP probe (`expected_status`
    applies), anything else must be HOST:PORT (a TCP connect)."""

    name: str | None = None
    target: str
    expected_status: int = Field(200, ge=100, le=599)
    timeout_seconds: float = Field(5.0, gt=0, le=300)
    retries: int = Field(3, ge=0, le=100)
    retry_interval_seconds: float = Field(5.0, ge=0, le=600)
    # HTTPS only: check the certificate against the system CAs (a self-signed ingress: false).
    verify_tls: bool = True

    @field_validator("target")
    @classmethod
    def _target_shape(cls, value: str) -> str:
        if value.startswith(("http://", "https://")):
            if any(c.isspace() for c in value):
                raise ValueError("a URL has no whitespace (write a space as %20)")
            try:
                parts = urlsplit(value)
                parse_host(parts.hostname or "")
                _ = parts.port  # raises ValueError when not a number 0..65535
            except AddressError as exc:
                raise ValueError(f"an http(s):// URL needs a valid host: {exc}") from None
            except ValueError:
                raise ValueError("the URL's port must be a number 1..65535") from None
            return value
        host, sep, port = value.rpartition(":")
        try:
            parse_host(host.removeprefix("[").removesuffix("]"))
            parse_port(port)
        except AddressError:
            raise ValueError("must be an http(s):// URL or HOST:PORT") from None
        if not sep:
            raise ValueError("must be an http(s):// URL or HOST:PORT")
        return value

    @property
    def kind(self) -> Literal["http", "tcp"]:
        return "http" if self.target.startswith(("http://", "https://")) else "tcp"

    @property
    def label(self) -> str:
        return self.name or self.target


class StartupConfig(_Strict):
    power_stable_seconds: float = Field(60.0, ge=0)
    min_battery_charge: float = Field(50.0, ge=0, le=100)
    # When the charge cannot be read: startup also waits for the runtime on mains to reach the
    # shutdown threshold, or this long beyond power_stable_seconds, whichever comes first.
    charge_unknown_wait_seconds: float = Field(1800.0, ge=0)
    api_timeout_seconds: float = Field(300.0, gt=0)
    nodes_ready_timeout_seconds: float = Field(300.0, gt=0)
    flux_namespace: KubeNamespace = "flux-system"
    flux_git_repository: KubeName = "flux-system"
    gitea_namespace: KubeNamespace = "gitea"
    gitea_workload: str = "deployment/gitea"
    gitea_replicas: int = Field(1, ge=1)
    gitea_bootstrap_manifests: list[FilePath] = Field(default_factory=list)
    # How often the daemon refreshes state_dir/bootstrap-cache from the live objects.
    bootstrap_cache_refresh_seconds: float = Field(3600.0, gt=0)
    flux_ready_timeout_seconds: float = Field(180.0, gt=0)
    force_flux_branch: GitBranch | None = None
    # Brought back one by one, in this order, right after the nodes are Ready.
    foundation_workloads: list[FoundationWorkload] = Field(default_factory=list)
    # Gate: before k3s starts, every node's clock is synchronised (timedatectl NTPSynchronized)
    # and within max_clock_skew_seconds of this host. unsynced: wait (up to
    # time_sync_timeout_seconds, then stop the startup before k3s starts) or start_anyway
    # (report the nodes and go on).
    time_sync_check: bool = True
    max_clock_skew_seconds: float = Field(5.0, gt=0)
    time_sync_timeout_seconds: float = Field(300.0, gt=0)
    time_sync_unsynced: Literal["wait", "start_anyway"] = "wait"
    # Gate: after the nodes are Ready, these are Ready (and, optionally, no VolumeAttachment
    # is stuck) before Flux brings back the workloads that need them.
    storage_workloads: list[StorageWorkload] = Field(default_factory=list)
    storage_check_volume_attachments: bool = False
    storage_timeout_seconds: float = Field(300.0, gt=0)
    # Gate: checks run from this host after Flux is Ready; a failing one makes the run partial.
    probes: list[StartupProbe] = Field(default_factory=list)
    # Gate: the run ends only after the cluster stayed healthy this long (0: no soak).
    soak_seconds: float = Field(0.0, ge=0)
    soak_interval_seconds: float = Field(10.0, gt=0)

    @field_validator("gitea_workload")
    @classmethod
    def _workload_kind(cls, value: str) -> str:
        kind, sep, name = value.partition("/")
        if not sep or not name or kind not in {"deployment", "statefulset"}:
            raise ValueError("must be deployment/NAME or statefulset/NAME")
        try:
            parse_kube_name(name)
        except AddressError as exc:
            raise ValueError(f"NAME: {exc}") from None
        return value
