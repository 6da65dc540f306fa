"""The configuration model: pydantic, unknown keys rejected, every error named by its field path.

Secrets never live in this file: they are read from files named here (`*_file` keys).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from hecate.config.addresses import Address, HostPort, ListenAddress, UpsTarget
from hecate.config.load import parse_yaml, read_config_text
from hecate.config.strict import Node
from hecate.config.strict import StrictModel as _Strict
from hecate.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/hecate/hecate.yaml")


class Nodes(_Strict):
    servers: list[Node] = Field(default_factory=list, description="k3s server node names")
    agents: list[Node] = Field(default_factory=list, description="k3s agent node names")

    @model_validator(mode="after")
    def _unique(self) -> Nodes:
        seen: set[str] = set()
        for name in [*self.servers, *self.agents]:
            if name in seen:
                raise ValueError(f"node {name!r} is listed twice")
            seen.add(name)
        return self

    @field_validator("agents")
    @classmethod
    def _agents_need_a_server(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if value and info.data.get("servers") == []:
            raise ValueError("agents need at least one server in nodes.servers")
        return value

    @property
    def all(self) -> list[str]:
        return [*self.servers, *self.agents]


class UpsConfig(_Strict):
    target: UpsTarget = Field(
        UpsTarget.parse("pyrphoros@localhost"), description="ups@host[:port] as upsc takes it"
    )
    user: str = "monuser"
    password_file: Path | None = None
    poll_interval_seconds: float = Field(5.0, gt=0, le=300)
    debounce_polls: int = Field(3, ge=1, le=100)
    comm_loss_dead_seconds: float = Field(30.0, gt=0)
    timeout_seconds: float = Field(5.0, gt=0, le=60)
    # How credentials are checked on each read: primary (PRIMARY, needs `upsmon primary`; no log
    # noise), login (LOGIN, any upsmon user; upsd logs every poll), none (anonymous reads).
    auth_check: Literal["primary", "login", "none"] = "primary"
    # The UPS policy (README, "What Hecate decides, and how").
    # FSD set by the UPS's primary shuts down at once, on battery or on mains.
    honor_fsd: bool = True
    # Critical polls are counted over this window (default: max(60, 2 x debounce_polls x
    # poll_interval_seconds)); debounce_polls of them in the window trigger.
    critical_window_seconds: float | None = Field(None, gt=0)
    # LB on this many polls within the window triggers (a short confirmation of the UPS's own
    # verdict; 2 = one poll interval).
    lb_confirm_polls: int = Field(2, ge=1, le=100)
    # On battery with no runtime estimate, a charge below this is critical.
    min_charge_on_battery: float = Field(50.0, ge=0, le=100)
    # An outage episode ends once mains has been seen stable this long.
    outage_clear_seconds: float = Field(30.0, ge=0)
    # Polls further apart than this mean the power was not observed (default:
    # 3 x poll_interval_seconds + timeout_seconds).
    max_poll_gap_seconds: float | None = Field(None, gt=0)
    # off: battery truth (claimed vs delivered runtime, `hecate ups report`) is advisory only;
    # learned: the shutdown threshold is raised by the learned correction (never lowered).
    runtime_correction: Literal["off", "learned"] = "off"

    @model_validator(mode="after")
    def _window_fits_debounce(self) -> UpsConfig:
        window = self.critical_window_seconds
        needed = (self.debounce_polls - 1) * self.poll_interval_seconds
        if window is not None and window <= needed:
            raise ValueError(
                f"critical_window_seconds ({window:g}) must be longer than (debounce_polls - 1)"
                f" x poll_interval_seconds ({needed:g}), or no shutdown could ever trigger"
            )
        return self


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

    @field_validator("min_samples")
    @classmethod
    def _samples_fit_window(cls, value: int, info: ValidationInfo) -> int:
        window = info.data.get("history_window")
        if window is not None and value > window:
            raise ValueError(
                f"min_samples ({value}) is larger than history_window ({window}): "
                "the budget could never learn from the history"
            )
        return value


class FoundationWorkload(_Strict):
    """A workload the cluster needs before anything else (storage, DNS, ingress)."""

    kind: Literal["deployment", "statefulset"] = "deployment"
    namespace: str
    name: str
    replicas: int = Field(1, ge=1, description="replicas to restore when found at 0")
    timeout_seconds: float = Field(120.0, gt=0)


class StorageWorkload(_Strict):
    """A workload volumes depend on (Longhorn's or a CSI driver's DaemonSet/Deployment)."""

    kind: Literal["daemonset", "deployment", "statefulset"] = "daemonset"
    namespace: str
    name: str


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
            if len(value.split("://", 1)[1]) == 0:
                raise ValueError("an http(s):// URL needs a host")
            return value
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
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
        return value


class CoordinationConfig(_Strict):
    role: Literal["coordinator", "peer"] = "coordinator"
    coordinator_address: Address | None = Field(None, description="host:port of the coordinator")
    peer_hosts: list[Address] = Field(default_factory=list)
    # peers reach it only on an address named on purpose
    listen: ListenAddress = ListenAddress.parse("127.0.0.1:9561")
    peer_name: str | None = None
    token_file: Path | None = None
    fallback_local_shutdown: bool = False
    allow_startup_on_battery: bool = False
    startup_guard_max_age_seconds: float = Field(6 * 3600.0, gt=0)

    @field_validator("listen")
    @classmethod
    def _ipv4_listen(cls, value: ListenAddress) -> ListenAddress:
        # The coordination endpoint binds IPv4 only (http.server's default family).
        if ":" in value.host:
            raise ValueError(f"{value}: the coordination endpoint listens on IPv4 only")
        return value

    @model_validator(mode="after")
    def _peer_needs_coordinator(self) -> CoordinationConfig:
        if self.role == "peer" and not self.coordinator_address:
            raise ValueError("a peer needs coordination.coordinator_address")
        return self


class MetricsConfig(_Strict):
    # a remote scraper needs an address named on purpose
    listen: ListenAddress = ListenAddress.parse("127.0.0.1:9560")


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
    ssh_jump_host: HostPort | None = None
    ssh_jump_user: str | None = None
    ssh_node_hosts: dict[Node, HostPort] = Field(default_factory=dict)
    ssh_node_users: dict[Node, str] = Field(default_factory=dict)
    ssh_managed_nodes: list[Node] | None = None
    ssh_connect_timeout_seconds: int = Field(10, gt=0, le=300)
    # sudo_command: the SSH user runs `sudo -n systemctl ...` with narrow sudoers rules;
    # become: Ansible become (full sudo, or root logins).
    node_privilege: Literal["sudo_command", "become"] = "sudo_command"

    @field_validator("ssh_jump_user")
    @classmethod
    def _jump_user_needs_host(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("ssh_jump_host", "unset") is None:
            raise ValueError("ssh_jump_user is set but ssh_jump_host is not")
        return value

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
        metrics, coordination = self.metrics.listen, self.coordination.listen
        if self.coordination.role == "coordinator" and metrics.overlaps(coordination):
            raise ValueError(
                f"metrics.listen ({metrics}) and coordination.listen ({coordination}) "
                "use the same port: give each its own"
            )
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
        message = item["msg"].removeprefix("Value error, ")
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


def file_problems(config: HecateConfig) -> list[str]:
    """What a config file must have that a partial config (tests, drills) may leave out."""
    if config.coordination.role == "coordinator" and not config.nodes.servers:
        return ["nodes.servers: a coordinator needs at least one server node"]
    return []


def load_config(path: Path) -> HecateConfig:
    """Read and validate a config file; raises ConfigError with every problem listed."""
    source = str(path)
    data = parse_yaml(read_config_text(path), source)
    config = parse_config(data, source)
    problems = file_problems(config)
    if problems:
        raise ConfigError(f"{source}: {len(problems)} invalid field(s)", problems)
    return config
