"""The configuration model: pydantic, unknown keys rejected, every error named by its field path.

Secrets never live in this file: they are read from files named here (`*_file` keys).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from hecate.config.addresses import Address, HostPort, ListenAddress, UpsTarget
from hecate.config.cluster import ClusterConfig, RecoverConfig
from hecate.config.feeds import feed_problems
from hecate.config.load import parse_yaml, read_config_text
from hecate.config.notify import NotifyConfig
from hecate.config.power import PowerConfig
from hecate.config.shutdown import ShutdownConfig
from hecate.config.startup import StartupConfig
from hecate.config.strict import Node, UserName, at
from hecate.config.strict import StrictModel as _Strict
from hecate.config.strict import format_validation_error as _format_errors
from hecate.config.ups import UpsConfig
from hecate.errors import ConfigError


def _twice(names: list[str]) -> list[str]:
    return sorted({name for name in names if names.count(name) > 1})


# Cross-field checks are field validators on the last field they read (info.data holds the
# fields before it that validated), never model validators: a model validator runs only once
# every field is valid, so its error would show only on the run after the field errors are fixed.
class Nodes(_Strict):
    """The cluster's nodes by name (the names used in the inventory and in Kubernetes)."""

    servers: list[Node] = Field(
        default_factory=list,
        description="k3s servers (control plane, etcd): stopped last, started first.",
    )
    agents: list[Node] = Field(
        default_factory=list,
        description="k3s agents (workers): stopped first, started after the API is up.",
        validate_default=True,
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


class CoordinationConfig(_Strict):
    """Several Hecate instances for several UPSes."""

    role: Literal["coordinator", "peer"] = Field(
        "coordinator",
        description="A coordinator runs shutdown and startup; a peer forwards its UPS triggers "
        "to the coordinator.",
    )
    coordinator_address: Address | None = Field(
        None,
        description="host:port of the coordinator (required on a peer).",
        validate_default=True,
    )
    peer_hosts: list[Address] = Field(
        default_factory=list,
        description="Other instances (host:port of their coordination endpoint) whose intents are "
        "checked before startup, so two instances never start the cluster at once.",
    )
    listen: ListenAddress = Field(
        ListenAddress.parse("127.0.0.1:9561"),
        description="[HOST]:PORT where the coordinator accepts signed peer requests. The default "
        "serves this host only: peers on other hosts need an address named on purpose (this "
        'host\'s LAN address, or ":9561" for every interface).',
    )
    peer_name: str | None = Field(
        None, description="This instance's name in peer requests (null: the host name)."
    )
    token_file: Path | None = Field(
        None, description="Shared secret file for peer <-> coordinator requests (mode 0600)."
    )
    fallback_local_shutdown: bool = Field(
        False, description="A peer that cannot reach the coordinator runs the shutdown itself."
    )
    allow_startup_on_battery: bool = Field(
        False, description="Allow startup while the UPS is on battery (normally refused)."
    )
    startup_guard_max_age_seconds: float = Field(
        6 * 3600.0, gt=0, description="A shutdown intent older than this no longer blocks startup."
    )

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
    """Prometheus metrics."""

    listen: ListenAddress = Field(
        ListenAddress.parse("127.0.0.1:9560"),
        description="[HOST]:PORT to serve /metrics on. The default serves this host only: a "
        'Prometheus on another host needs an address named on purpose (":9560" for every '
        "interface).",
    )


class HecateConfig(_Strict):
    """The top-level keys."""

    kubeconfig: Path = Field(
        Path("/etc/rancher/k3s/k3s.yaml"),
        description="The kubeconfig Hecate talks to the cluster's API with (on the Hecate host, "
        "outside the cluster).",
    )
    default_budget_seconds: float = Field(
        300.0,
        gt=0,
        description="The shutdown budget used until enough successful shutdowns have been "
        "recorded (shutdown.min_samples).",
    )
    runtime_safety_factor: float = Field(
        1.10,
        ge=1.0,
        le=10.0,
        description="Shut down when the UPS runtime falls below this factor x the estimated "
        "shutdown budget.",
    )
    state_dir: Path = Field(
        Path("/var/lib/hecate"),
        description="Where intent.json, runs.json, traces and Ansible artifacts are kept.",
    )
    nodes: Nodes = Field(default_factory=Nodes, description=Nodes.__doc__)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig, description=ClusterConfig.__doc__)

    ssh_user: UserName = Field("root", description="Default SSH user for every node.")
    ssh_port: int = Field(22, gt=0, lt=65536, description="Default SSH port.")
    ssh_config_file: Path | None = Field(
        None, description="An ssh_config file passed to ssh with -F (null: none)."
    )
    ssh_identity_file: Path | None = Field(
        None, description="Private key for the nodes (null: ssh-agent and ssh's defaults)."
    )
    ssh_jump_host: HostPort | None = Field(
        None,
        description="A bastion; Hecate falls back to direct SSH (and says so) when it is "
        "unreachable (null: none).",
    )
    ssh_jump_user: UserName | None = Field(
        None, description="User on the jump host (null: the node's user)."
    )
    ssh_node_hosts: dict[Node, HostPort] = Field(
        default_factory=dict,
        description="Node name -> address (host or host:port); nodes not listed are reached by "
        "name.",
    )
    ssh_node_users: dict[Node, UserName] = Field(
        default_factory=dict, description="Node name -> SSH user, overriding ssh_user."
    )
    ssh_managed_nodes: list[Node] | None = Field(
        None, description="Nodes that get host-level actions (poweroff); null: every node."
    )
    ssh_connect_timeout_seconds: int = Field(10, gt=0, le=300, description="SSH connect timeout.")
    node_privilege: Literal["sudo_command", "become"] = Field(
        "sudo_command",
        description="How node actions get root: sudo_command runs `sudo -n systemctl stop k3s` "
        "and the like (narrow sudoers rules, see README); become uses Ansible become (full "
        "sudo, or root logins).",
    )

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

    @field_validator("power")
    @classmethod
    def _power_nodes_known(cls, value: PowerConfig, info: ValidationInfo) -> PowerConfig:
        nodes = info.data.get("nodes")
        unknown = sorted(set(value.nodes) - set(nodes.all)) if nodes is not None else []
        if unknown:
            raise at(f"power.nodes names nodes not in nodes.servers/agents: {unknown}", "nodes")
        if nodes is not None:
            for message, path in feed_problems(
                value.feeds, value.node_feeds, value.shed.agents, nodes.servers, nodes.agents
            ):
                raise at(message, path)
        return value

    # No default: a config names its UPS (ups.target); a missing section reports that key.
    ups: UpsConfig = Field(description=UpsConfig.__doc__)
    shutdown: ShutdownConfig = Field(
        default_factory=ShutdownConfig, description=ShutdownConfig.__doc__
    )
    startup: StartupConfig = Field(default_factory=StartupConfig, description=StartupConfig.__doc__)
    coordination: CoordinationConfig = Field(
        default_factory=CoordinationConfig,
        description=CoordinationConfig.__doc__,
        validate_default=True,
    )
    metrics: MetricsConfig = Field(
        default_factory=MetricsConfig, description=MetricsConfig.__doc__, validate_default=True
    )
    notify: NotifyConfig = Field(default_factory=NotifyConfig, description=NotifyConfig.__doc__)
    power: PowerConfig = Field(default_factory=PowerConfig, description=PowerConfig.__doc__)
    recover: RecoverConfig = Field(default_factory=RecoverConfig, description=RecoverConfig.__doc__)

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
        if self.notify.urls_file is not None:
            found["notify.urls_file"] = self.notify.urls_file
        found.update(self.power.password_files())
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
