"""The configuration model: pydantic, unknown keys rejected, every error named by its field path.

Secrets never live in this file: they are read from files named here (`*_file` keys).
"""

from __future__ import annotations

import math
import os
import socket
import stat
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from hecate.addresses import Address, HostPort, ListenAddress, NodeName, UpsTarget
from hecate.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/hecate/hecate.yaml")

# Limits of the config file reader: far above any real config, far below any harm.
MAX_CONFIG_BYTES = 1 << 20
MAX_YAML_DEPTH = 32
MAX_YAML_NODES = 100_000


def _numeric_annotation(annotation: object) -> bool:
    """Whether a field's annotation is int or float (optionally inside Optional/Annotated)."""
    if annotation in (int, float):
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _numeric_annotation(typing.get_args(annotation)[0])
    if origin is typing.Union or isinstance(annotation, types.UnionType):
        return any(_numeric_annotation(arg) for arg in typing.get_args(annotation))
    return False


def _blank_or_nul(value: object) -> str | None:
    """Why a value (or an item inside it) is not acceptable text, or None when it is."""
    if isinstance(value, str):
        if "\x00" in value:
            return "contains a NUL byte"
        if not value.strip():
            return "must not be empty (remove the key to use the default)"
    elif isinstance(value, list | tuple):
        for item in value:
            problem = _blank_or_nul(item)
            if problem:
                return problem
    elif isinstance(value, dict):
        for key, item in value.items():
            problem = _blank_or_nul(key) or _blank_or_nul(item)
            if problem:
                return problem
    return None


# A node name (RFC 1123, lower case). Typed `str` so lists of names stay plain lists of str;
# the value is a NodeName all the same.
Node = Annotated[str, AfterValidator(NodeName.parse)]


class _Strict(BaseModel):
    # allow_inf_nan=False: `.inf` or `.nan` is never a duration, a charge or a factor.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _strict_scalars(cls, value: object, info: ValidationInfo) -> object:
        """Booleans are not numbers; no empty text, no NUL byte anywhere."""
        name = info.field_name
        numeric = name is not None and _numeric_annotation(cls.model_fields[name].annotation)
        if isinstance(value, bool) and numeric:
            raise ValueError("must be a number, not a boolean (yes/no/on/off are booleans)")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("must be a finite number")
        problem = _blank_or_nul(value)
        if problem:
            raise ValueError(problem)
        return value


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


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and nesting deeper than MAX_YAML_DEPTH."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise yaml.YAMLError(f"nested deeper than {MAX_YAML_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: set[object] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:
                    continue  # an unhashable key: the base class reports it
                if duplicate:
                    raise yaml.YAMLError(
                        f"duplicate key {key!r} (line {key_node.start_mark.line + 1}); "
                        "keep only one"
                    )
        return super().construct_mapping(node, deep=deep)


def _count_nodes(data: object, budget: int = MAX_YAML_NODES) -> None:
    """Refuse data that expands (through aliases) to more than `budget` values."""
    stack: list[object] = [data]
    seen = 0
    while stack:
        item = stack.pop()
        seen += 1
        if seen > budget:
            raise ConfigError(f"more than {budget} values once aliases are expanded (a YAML bomb?)")
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def parse_yaml(text: str, source: str = "<config>") -> object:
    """Strict YAML: duplicate keys, deep nesting and alias bombs are errors, never a crash."""
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
        _count_nodes(data)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {_one_line(str(exc))}") from None
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc.message}") from None
    except RecursionError:
        raise ConfigError(f"{source}: not valid YAML: nested too deeply") from None
    return data


def _one_line(text: str) -> str:
    return " ".join(text.split())


def read_config_text(path: Path) -> str:
    """The file's text: a regular file, at most MAX_CONFIG_BYTES, UTF-8 without NUL bytes.

    Opened without blocking, so a FIFO or a device never hangs the reader.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except ValueError:
        raise ConfigError(f"{path!r}: the path contains a NUL byte") from None
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such config file (copy configs/hecate.example.yaml there, "
            "or pass --config)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise ConfigError(f"{path}: is a directory; pass the config file itself")
        if not stat.S_ISREG(mode):
            raise ConfigError(f"{path}: not a regular file (a FIFO, socket or device?)")
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_CONFIG_BYTES:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    finally:
        os.close(fd)
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes; not a Hecate config")
    raw = b"".join(chunks)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (bad byte at offset {exc.start})") from None
    if "\x00" in text:
        raise ConfigError(f"{path}: contains a NUL byte at offset {text.index(chr(0))}")
    return text.removeprefix("\ufeff")


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


Resolver = Callable[[str, int], None]


def _bind_check(host: str, _port: int) -> None:
    """Resolve `host` and bind it on a free port: raises OSError when it is not local."""
    infos = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)
    family, kind, proto, _, sockaddr = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.bind((sockaddr[0], 0, *sockaddr[2:]))


def resolve_problems(config: HecateConfig, check: Resolver = _bind_check) -> list[str]:
    """`config check --resolve`: listen hosts must resolve to an address of this machine."""
    problems = []
    listens = [("metrics.listen", config.metrics.listen)]
    if config.coordination.role == "coordinator":
        listens.append(("coordination.listen", config.coordination.listen))
    for key, listen in listens:
        if not listen.host:
            continue
        try:
            check(listen.host, listen.port)
        except (OSError, UnicodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            problems.append(f"{key}: {listen.host!r} cannot be bound here ({reason})")
    return problems


# A secret file may be read by its group: the installer makes them root:hecate-daemon 0640, and
# the unprivileged daemon reads them through that group (0600 root would lock it out). Access by
# others, or a group that may write or execute it, is what is warned about.
LOOSE_FILE_BITS = stat.S_IRWXO | stat.S_IWGRP | stat.S_IXGRP
LOOSE_FILE_ADVICE = "chmod 600 {path}, or chmod 640 with the daemon's group (chgrp hecate-daemon)"


def secret_file_warnings(config: HecateConfig) -> list[str]:
    """Warnings for secret files that are missing, or open to others or to a group's writes
    (a group that only reads is how the installed daemon reads them)."""
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
        if mode & LOOSE_FILE_BITS:
            warnings.append(
                f"{key}: {path} is accessible by others or writable by its group "
                f"(mode {stat.S_IMODE(mode):04o}); run: {LOOSE_FILE_ADVICE.format(path=path)}"
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
