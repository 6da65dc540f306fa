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

    kind: Literal["deployment", "statefulset"] = Field(
        "deployment", description="The workload's kind."
    )
    namespace: KubeNamespace = Field(description="The workload's namespace.")
    name: KubeName = Field(description="The workload's name.")
    replicas: int = Field(1, ge=1, description="Replicas to restore when it is found at 0.")
    timeout_seconds: float = Field(120.0, gt=0, description="How long to wait for it to be Ready.")


class StorageWorkload(_Strict):
    """A workload volumes depend on (Longhorn's or a CSI driver's DaemonSet/Deployment)."""

    kind: Literal["daemonset", "deployment", "statefulset"] = Field(
        "daemonset", description="The workload's kind."
    )
    namespace: KubeNamespace = Field(description="The workload's namespace.")
    name: KubeName = Field(description="The workload's name.")


class StartupProbe(_Strict):
    """A check run from the Hecate host after Flux is Ready: an HTTP(S) URL or a TCP host:port.

    `target` is parsed here: `http://` or `https://` makes an HTTP probe (`expected_status`
    applies), anything else must be HOST:PORT (a TCP connect)."""

    name: str | None = Field(None, description="The probe's name in reports (null: the target).")
    target: str = Field(description="An http(s):// URL, or HOST:PORT for a TCP connect.")
    expected_status: int = Field(
        200, ge=100, le=599, description="The HTTP status that passes (HTTP probes only)."
    )
    timeout_seconds: float = Field(5.0, gt=0, le=300, description="Bound for one try.")
    retries: int = Field(3, ge=0, le=100, description="Tries after the first.")
    retry_interval_seconds: float = Field(5.0, ge=0, le=600, description="Pause between tries.")
    verify_tls: bool = Field(
        True,
        description="HTTPS only: check the certificate against the system CAs (a self-signed "
        "ingress: false).",
    )

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
    """How the cluster is brought back after an outage, and the gates it passes."""

    power_stable_seconds: float = Field(
        60.0, ge=0, description="Mains must have been stable this long before startup."
    )
    min_battery_charge: float = Field(
        50.0, ge=0, le=100, description="Never start into a battery below this charge (percent)."
    )
    charge_unknown_wait_seconds: float = Field(
        1800.0,
        ge=0,
        description="When the charge cannot be read: startup waits for a runtime on mains of at "
        "least the shutdown threshold, or this long beyond power_stable_seconds, whichever comes "
        "first.",
    )
    power_on_timeout_seconds: float = Field(
        600.0,
        gt=0,
        description="power_on: how long each powered-on node may take until its SSH answers "
        "(its boot).",
    )
    api_timeout_seconds: float = Field(300.0, gt=0, description="Bound for waiting on the API.")
    etcd_quorum_timeout_seconds: float = Field(
        180.0,
        gt=0,
        description="Bound for the etcd_quorum stage (embedded etcd only): how long to wait, "
        "after the servers start, for etcd to report a healthy quorum before the startup stops "
        "and names each member's state.",
    )
    nodes_ready_timeout_seconds: float = Field(
        300.0, gt=0, description="Bound for waiting on the Nodes to be Ready."
    )
    flux_namespace: KubeNamespace = Field("flux-system", description="Flux's namespace.")
    flux_git_repository: KubeName = Field(
        "flux-system", description="Flux's own GitRepository (its source)."
    )
    gitea_namespace: KubeNamespace = Field(
        "gitea",
        description="Namespace of the in-cluster Gitea that serves Flux's source (the cold-start "
        "deadlock fallback).",
    )
    gitea_workload: str = Field(
        "deployment/gitea", description="That Gitea: deployment/NAME or statefulset/NAME."
    )
    gitea_replicas: int = Field(1, ge=1, description="Replicas Gitea is scaled to.")
    gitea_bootstrap_manifests: list[FilePath] = Field(
        default_factory=list,
        description="Manifests applied in order when scaling Gitea alone is not enough (storage, "
        "database, Gitea).",
    )
    bootstrap_cache_refresh_seconds: float = Field(
        3600.0,
        gt=0,
        description="While the cluster is healthy the daemon keeps live copies of those objects "
        "(what Flux last deployed) in state_dir/bootstrap-cache, refreshed this often.",
    )
    flux_ready_timeout_seconds: float = Field(
        180.0,
        gt=0,
        description="How long to wait for Flux's source to turn Ready before the fallback.",
    )
    force_flux_branch: GitBranch | None = Field(
        None,
        description="Point the GitRepository at this branch during startup (null: leave it).",
    )
    foundation_workloads: list[FoundationWorkload] = Field(
        default_factory=list,
        description="Foundation workloads (storage, DNS, ingress) brought back one by one, in "
        "this order, once the nodes are Ready: one found at 0 replicas is scaled to `replicas`, "
        "then waited for (`timeout_seconds`).",
    )
    time_sync_check: bool = Field(
        True,
        description="Gate: before k3s starts, every node's clock must be synchronised "
        "(timedatectl NTPSynchronized=yes) and within max_clock_skew_seconds of this host.",
    )
    max_clock_skew_seconds: float = Field(
        5.0, gt=0, description="The largest clock difference the time sync gate accepts."
    )
    time_sync_timeout_seconds: float = Field(
        300.0, gt=0, description="How long `wait` waits for the clocks."
    )
    time_sync_unsynced: Literal["wait", "start_anyway"] = Field(
        "wait",
        description="A node that is not in sync: wait (up to time_sync_timeout_seconds, then "
        "stop the startup before k3s starts) or start_anyway (name the nodes in the report and "
        "go on).",
    )
    storage_workloads: list[StorageWorkload] = Field(
        default_factory=list,
        description="Gate: after the nodes are Ready and before Flux resumes, these are Ready "
        "(every scheduled DaemonSet pod, or every replica). Not Ready within "
        "storage_timeout_seconds: the startup stops there (Flux stays suspended).",
    )
    storage_check_volume_attachments: bool = Field(
        False, description="The storage gate also waits until no VolumeAttachment is stuck."
    )
    storage_timeout_seconds: float = Field(300.0, gt=0, description="Bound for the storage gate.")
    probes: list[StartupProbe] = Field(
        default_factory=list,
        description="Gate: checks run from this host once Flux is Ready, each tried 1 + retries "
        "times; a failing probe makes the run partial.",
    )
    soak_seconds: float = Field(
        0.0,
        ge=0,
        description="Gate: the run ends only after nodes Ready, no Flux object failing and the "
        "probes passing held this long (0: no soak).",
    )
    soak_interval_seconds: float = Field(
        10.0, gt=0, description="How often the soak checks the cluster."
    )

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
