"""The configuration model: pydantic, unknown keys rejected, every error named by its field path.

Secrets never live in this file: they are read from files named here (`*_file` keys).
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hecate.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/hecate/hecate.yaml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Nodes(_Strict):
    servers: list[str] = Field(default_factory=list, description="k3s server node names")
    agents: list[str] = Field(default_factory=list, description="k3s agent node names")

    @model_validator(mode="after")
    def _unique(self) -> Nodes:
        seen: set[str] = set()
        for name in [*self.servers, *self.agents]:
            if name in seen:
                raise ValueError(f"node {name!r} is listed twice")
            seen.add(name)
        return self

    @property
    def all(self) -> list[str]:
        return [*self.servers, *self.agents]


class UpsConfig(_Strict):
    target: str = Field("pyrphoros@localhost", description="ups@host[:port] as upsc takes it")
    user: str = "monuser"
    password_file: Path | None = None
    poll_interval_seconds: float = Field(5.0, gt=0, le=300)
    debounce_polls: int = Field(3, ge=1, le=100)
    comm_loss_dead_seconds: float = Field(30.0, gt=0)
    timeout_seconds: float = Field(5.0, gt=0, le=60)
    # How credentials are checked on each read: primary (PRIMARY, needs `upsmon primary`; no log
    # noise), login (LOGIN, any upsmon user; upsd logs every poll), none (anonymous reads).
    auth_check: Literal["primary", "login", "none"] = "primary"

    @field_validator("target")
    @classmethod
    def _target_shape(cls, value: str) -> str:
        ups, sep, host = value.partition("@")
        if not ups or not sep or not host:
            raise ValueError("must look like UPSNAME@HOST or UPSNAME@HOST:PORT")
        return value


class ShutdownConfig(_Strict):
    history_window: int = Field(10, ge=1, le=1000, description="recent runs used for the budget")
    # successful runs needed before the history is trusted over the fallback
    min_samples: int = Field(3, ge=1)
    budget_percentile: float = Field(95.0, gt=0, le=100)
    ups_mode: Literal["poweroff", "cluster-only"] = "poweroff"
    drain: bool = False
    drain_timeout_seconds: float = Field(120.0, gt=0)
    etcd_snapshot: bool = True
    etcd_snapshot_timeout_seconds: float = Field(120.0, gt=0)
    use_killall: bool = False
    stop_timeout_seconds: float = Field(120.0, gt=0)
    # poweroff: really power nodes off; marker: only write a marker file (drills, rehearsals).
    poweroff_method: Literal["poweroff", "marker"] = "poweroff"
    poweroff_local_host: bool = False
    ups_kill_power: bool = False
    # The NUT instant command sent when ups_kill_power is on.
    ups_kill_command: str = "shutdown.return"
    runs_kept: int = Field(200, ge=1)


class FoundationWorkload(_Strict):
    """A workload the cluster needs before anything else (storage, DNS, ingress)."""

    kind: Literal["deployment", "statefulset"] = "deployment"
    namespace: str
    name: str
    replicas: int = Field(1, ge=1, description="replicas to restore when found at 0")
    timeout_seconds: float = Field(120.0, gt=0)


class StartupConfig(_Strict):
    power_stable_seconds: float = Field(60.0, ge=0)
    min_battery_charge: float = Field(50.0, ge=0, le=100)
    api_timeout_seconds: float = Field(300.0, gt=0)
    nodes_ready_timeout_seconds: float = Field(300.0, gt=0)
    flux_namespace: str = "flux-system"
    flux_git_repository: str = "flux-system"
    gitea_namespace: str = "gitea"
    gitea_workload: str = "deployment/gitea"
    gitea_replicas: int = Field(1, ge=1)
    gitea_bootstrap_manifests: list[Path] = Field(default_factory=list)
    # How often the daemon refreshes state_dir/bootstrap-cache from the live objects.
    bootstrap_cache_refresh_seconds: float = Field(3600.0, gt=0)
    flux_ready_timeout_seconds: float = Field(180.0, gt=0)
    force_flux_branch: str | None = None
    # Brought back one by one, in this order, right after the nodes are Ready.
    foundation_workloads: list[FoundationWorkload] = Field(default_factory=list)

    @field_validator("gitea_workload")
    @classmethod
    def _workload_kind(cls, value: str) -> str:
        kind, sep, name = value.partition("/")
        if not sep or not name or kind not in {"deployment", "statefulset"}:
            raise ValueError("must be deployment/NAME or statefulset/NAME")
        return value


def _check_listen(value: str) -> str:
    _, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError("must be [HOST]:PORT, e.g. :9560 or 127.0.0.1:9560")
    return value


def _check_address(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("must be HOST:PORT")
    return value


class CoordinationConfig(_Strict):
    role: Literal["coordinator", "peer"] = "coordinator"
    coordinator_address: str | None = Field(None, description="host:port of the coordinator")
    peer_hosts: list[str] = Field(default_factory=list)
    listen: str = ":9561"
    peer_name: str | None = None
    token_file: Path | None = None
    fallback_local_shutdown: bool = False
    allow_startup_on_battery: bool = False
    startup_guard_max_age_seconds: float = Field(6 * 3600.0, gt=0)

    @field_validator("listen")
    @classmethod
    def _listen_shape(cls, value: str) -> str:
        return _check_listen(value)

    @field_validator("coordinator_address")
    @classmethod
    def _address_shape(cls, value: str | None) -> str | None:
        return None if value is None else _check_address(value)

    @field_validator("peer_hosts")
    @classmethod
    def _peers_shape(cls, value: list[str]) -> list[str]:
        return [_check_address(v) for v in value]

    @model_validator(mode="after")
    def _peer_needs_coordinator(self) -> CoordinationConfig:
        if self.role == "peer" and not self.coordinator_address:
            raise ValueError("a peer needs coordination.coordinator_address")
        return self


class MetricsConfig(_Strict):
    listen: str = ":9560"

    @field_validator("listen")
    @classmethod
    def _listen_shape(cls, value: str) -> str:
        return _check_listen(value)


class HecateConfig(_Strict):
    kubeconfig: Path = Path("/etc/rancher/k3s/k3s.yaml")
    default_budget_seconds: float = Field(300.0, gt=0)
    runtime_safety_factor: float = Field(1.10, ge=1.0, le=10.0)
    state_dir: Path = Path("/var/lib/hecate")
    nodes: Nodes = Field(default_factory=Nodes)

    ssh_user: str = "root"
    ssh_port: int = Field(22, gt=0, lt=65536)
    ssh_config_file: Path | None = None
    ssh_identity_file: Path | None = None
    ssh_jump_host: str | None = None
    ssh_jump_user: str | None = None
    ssh_node_hosts: dict[str, str] = Field(default_factory=dict)
    ssh_node_users: dict[str, str] = Field(default_factory=dict)
    ssh_managed_nodes: list[str] | None = None
    ssh_connect_timeout_seconds: int = Field(10, gt=0, le=300)
    # sudo_command: the SSH user runs `sudo -n systemctl ...` with narrow sudoers rules;
    # become: Ansible become (full sudo, or root logins).
    node_privilege: Literal["sudo_command", "become"] = "sudo_command"

    ups: UpsConfig = Field(default_factory=UpsConfig)
    shutdown: ShutdownConfig = Field(default_factory=ShutdownConfig)
    startup: StartupConfig = Field(default_factory=StartupConfig)
    coordination: CoordinationConfig = Field(default_factory=CoordinationConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)

    @model_validator(mode="after")
    def _known_nodes(self) -> HecateConfig:
        known = set(self.nodes.all)
        for key, names in (
            ("ssh_node_hosts", list(self.ssh_node_hosts)),
            ("ssh_node_users", list(self.ssh_node_users)),
            ("ssh_managed_nodes", self.ssh_managed_nodes or []),
        ):
            unknown = sorted(set(names) - known)
            if unknown:
                raise ValueError(f"{key} names nodes not in nodes.servers/agents: {unknown}")
        return self

    def secret_files(self) -> dict[str, Path]:
        """Config keys that name secret files, for permission checks."""
        found: dict[str, Path] = {}
        if self.ups.password_file is not None:
            found["ups.password_file"] = self.ups.password_file
        if self.coordination.token_file is not None:
            found["coordination.token_file"] = self.coordination.token_file
        return found

    def managed_nodes(self) -> list[str]:
        """Nodes that get host-level actions (poweroff); all nodes unless narrowed."""
        if self.ssh_managed_nodes is None:
            return self.nodes.all
        return [n for n in self.nodes.all if n in self.ssh_managed_nodes]


def format_validation_error(error: ValidationError) -> list[str]:
    """One line per problem, each starting with its dotted field path."""
    lines = []
    for item in error.errors():
        path = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key (check the spelling against configs/hecate.example.yaml)"
        lines.append(f"{path}: {message}")
    return lines


def parse_config(data: object, source: str = "<config>") -> HecateConfig:
    """Validate already-loaded YAML data."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping", [])
    try:
        return HecateConfig.model_validate(data)
    except ValidationError as exc:
        problems = format_validation_error(exc)
        raise ConfigError(f"{source}: {len(problems)} invalid field(s)", problems) from None


def load_config(path: Path) -> HecateConfig:
    """Read and validate a config file; raises ConfigError with every problem listed."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such config file (copy configs/hecate.example.yaml there, "
            "or pass --config)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_config(data, str(path))


def secret_file_warnings(config: HecateConfig) -> list[str]:
    """Warnings for secret files that are missing or readable by group or others."""
    warnings = []
    for key, path in config.secret_files().items():
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            warnings.append(f"{key}: {path} does not exist")
            continue
        except OSError as exc:
            warnings.append(f"{key}: {path} cannot be checked: {exc.strerror}")
            continue
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            warnings.append(
                f"{key}: {path} is accessible by group or others "
                f"(mode {stat.S_IMODE(mode):04o}); run: chmod 600 {path}"
            )
    return warnings


def secret_file_errors(config: HecateConfig) -> list[str]:
    """Secret files the daemon cannot start without: a missing ups.password_file (the daemon
    reads it once at start and exits). `config check` reports these as errors."""
    path = config.ups.password_file
    if path is None or path.exists():
        return []
    return [
        f"ups.password_file: {path} does not exist; write the upsd user's password there "
        f"(chmod 600 {path}), or set ups.password_file: null for anonymous reads"
    ]
