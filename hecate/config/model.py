"""The configuration model: pydantic, unknown keys rejected, every error named by its field path.

Secrets never live in this file: they are read from files named here (`*_file` keys).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from hecate.config.addresses import Address, HostPort, ListenAddress, UpsTarget
from hecate.config.load import parse_yaml, read_config_text
from hecate.config.startup import StartupConfig
from hecate.config.strict import (
    Node,
    NutCommand,
    NutUser,
    UserName,
    at,
)
from hecate.config.strict import StrictModel as _Strict
from hecate.config.strict import format_validation_error as _format_errors
from hecate.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/hecate/hecate.yaml")


def _twice(names: list[str]) -> list[str]:
    return sorted({name for name in names if names.count(name) > 1})


# Cross-field checks are field validators on the last field they read (info.data holds the
# fields before it that validated), never model validators: a model validator runs only once
# every field is valid, so its error would show only on the run after the field errors are fixed.
class Nodes(_Strict):
    servers: list[Node] = Field(default_factory=list, description="k3s server node names")
    agents: list[Node] = Field(
        default_factory=list, description="k3s agent node names", validate_default=True
    )

    @field_validator("servers")
    @classmethod
    def _servers_unique(cls, value: list[str]) -> list[str]:
        for name in _twice(value):
            raise ValueError(f"node {name!r} is listed twice")
        return value

    @field_validator("agents")
    @classmethod
    def _agents_need_a_server(cls, value: list[str], info: ValidationInfo) -> list[str]:
        servers = info.data.get("servers")
        if value and servers == []:
            raise ValueError("agents need at least one server in nodes.servers")
        for name in _twice([*value, *(servers or [])]):
            raise ValueError(f"node {name!r} is listed twice")
        return value

    @property
    def all(self) -> list[str]:
        return [*self.servers, *self.agents]


class UpsConfig(_Strict):
    # No default: a config must name its UPS (README, "Upgrading").
    target: UpsTarget = Field(description="ups@host[:port] as upsc takes it")
    user: NutUser = "monuser"
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

    @field_validator("critical_window_seconds")
    @classmethod
    def _window_fits_debounce(cls, window: float | None, info: ValidationInfo) -> float | None:
        polls, interval = info.data.get("debounce_polls"), info.data.get("poll_interval_seconds")
        if window is None or polls is None or interval is None:
            return window
        needed = (polls - 1) * interval
        if window <= needed:
            raise ValueError(
                f"critical_window_seconds ({window:g}) must be longer than (debounce_polls - 1)"
                f" x poll_interval_seconds ({needed:g}), or no shutdown could ever trigger"
            )
        return window


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
    ups_kill_command: NutCommand = "shutdown.return"
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


class CoordinationConfig(_Strict):
    role: Literal["coordinator", "peer"] = "coordinator"
    coordinator_address: Address | None = Field(
        None, description="host:port of the coordinator", validate_default=True
    )
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

    @field_validator("coordinator_address")
    @classmethod
    def _peer_needs_coordinator(cls, value: Address | None, info: ValidationInfo) -> Address | None:
        if info.data.get("role") == "peer" and not value:
            raise ValueError("a peer needs coordination.coordinator_address")
        return value


class MetricsConfig(_Strict):
    # a remote scraper needs an address named on purpose
    listen: ListenAddress = ListenAddress.parse("127.0.0.1:9560")


class HecateConfig(_Strict):
    kubeconfig: Path = Path("/etc/rancher/k3s/k3s.yaml")
    default_budget_seconds: float = Field(300.0, gt=0)
    runtime_safety_factor: float = Field(1.10, ge=1.0, le=10.0)
    state_dir: Path = Path("/var/lib/hecate")
    nodes: Nodes = Field(default_factory=Nodes)

    ssh_user: UserName = "root"
    ssh_port: int = Field(22, gt=0, lt=65536)
    ssh_config_file: Path | None = None
    ssh_identity_file: Path | None = None
    ssh_jump_host: HostPort | None = None
    ssh_jump_user: UserName | None = None
    ssh_node_hosts: dict[Node, HostPort] = Field(default_factory=dict)
    ssh_node_users: dict[Node, UserName] = Field(default_factory=dict)
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

    @field_validator("ssh_node_hosts", "ssh_node_users", "ssh_managed_nodes")
    @classmethod
    def _known_nodes(cls, value: Any, info: ValidationInfo) -> Any:
        nodes = info.data.get("nodes")
        if nodes is None or not value:
            return value  # nodes invalid: its own error says so
        unknown = sorted(set(value) - set(nodes.all))
        if unknown:
            raise ValueError(
                f"{info.field_name} names nodes not in nodes.servers/agents: {unknown}"
            )
        return value

    # No default: a config names its UPS (ups.target); a missing section reports that key.
    ups: UpsConfig
    shutdown: ShutdownConfig = Field(default_factory=ShutdownConfig)
    startup: StartupConfig = Field(default_factory=StartupConfig)
    coordination: CoordinationConfig = Field(
        default_factory=CoordinationConfig, validate_default=True
    )
    metrics: MetricsConfig = Field(default_factory=MetricsConfig, validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _ups_section(cls, data: Any) -> Any:
        # `ups:` absent or empty: validate it as {} so the error names ups.target itself
        if isinstance(data, dict) and data.get("ups") is None:
            return {**data, "ups": {}}
        return data

    @field_validator("coordination")
    @classmethod
    def _coordinator_has_servers(
        cls, value: CoordinationConfig, info: ValidationInfo
    ) -> CoordinationConfig:
        # A config file must have servers; a partial config (tests, drills) may leave them out.
        nodes = info.data.get("nodes")
        is_file = isinstance(info.context, dict) and info.context.get("file")
        if is_file and nodes is not None and value.role == "coordinator" and not nodes.servers:
            raise at("a coordinator needs at least one server node", "nodes.servers", absolute=True)
        return value

    @field_validator("metrics")
    @classmethod
    def _own_port(cls, value: MetricsConfig, info: ValidationInfo) -> MetricsConfig:
        coordination = info.data.get("coordination")
        if coordination is None or coordination.role != "coordinator":
            return value
        if value.listen.overlaps(coordination.listen):
            raise at(
                f"metrics.listen ({value.listen}) and coordination.listen "
                f"({coordination.listen}) use the same port: give each its own",
                "listen",
            )
        return value

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
    """One line per problem, each starting with the dotted path of the key itself."""
    return _format_errors(error, HecateConfig)


def parse_config(data: object, source: str = "<config>", *, file: bool = False) -> HecateConfig:
    """Validate already-loaded YAML data: every problem, field and cross-field, in one pass.
    `file`: what a config file must have that a partial config (tests, drills) may leave out.
    Pure: no file the config names is looked at (`hecate.config.checks` does that)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping", [])
    try:
        return HecateConfig.model_validate(data, context={"file": file})
    except ValidationError as exc:
        problems = format_validation_error(exc)
        raise ConfigError(f"{source}: {len(problems)} invalid field(s)", problems) from None


def load_config(path: Path) -> HecateConfig:
    """Read and validate a config file; raises ConfigError with every problem listed."""
    source = str(path)
    data = parse_yaml(read_config_text(path), source)
    return parse_config(data, source, file=True)


# A UPS name for what never reads one (`replay --default-config`): ups.target has no default.
NO_UPS_TARGET = UpsTarget.parse("none@localhost")


def default_config() -> HecateConfig:
    """Every default, with NO_UPS_TARGET for the UPS: for what replays a trace and never
    reads a UPS."""
    return HecateConfig(ups=UpsConfig(target=NO_UPS_TARGET))
