"""The read commands' view of a validated config, without pydantic (issue 29: `hecate status` and
`config check` answer within 0.3 s).

Importing pydantic and creating HecateConfig's model classes costs more than the rest of
`hecate status` together (about 450 M instructions of some 760 M), even when a kept config is
unpickled (hecate.config.snapshot). So `status`, `config check` and `replay` work on a ReadView:
named tuples holding, under the same names, the fields of HecateConfig they read (and the four
facts they take from HecateConfig's methods), copied from a validated config by `read_view`. It
is kept beside the config's snapshot, under the same key (the file's text and the code of
hecate.config, this module included), and loaded without importing pydantic; a miss validates
the config in full and keeps both (`hecate.config.snapshot.load_view_kept`).

Only what the config says is here, never what the machine says: whether a named file exists or
can be read is checked live each time (`hecate.cli.config_files`). The functions both the read
commands and the daemon call take `HecateConfig | ReadView` (the same attribute names, so the
same code reads either); a test compares every field with the config it was made from.

Named tuples, not dataclasses: creating a frozen dataclass compiles its generated methods, about
70 M instructions for these eleven classes, a quarter of `config check`; named tuples cost 23 M.

A field a read command starts to read is added here and in `read_view` (the test compares every
field by its name); one it reads that is missing is an error in mypy, not a wrong answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeAlias

from hecate.config.addresses import ListenAddress, UpsTarget

if TYPE_CHECKING:
    from hecate.config.model import HecateConfig


class UpsView(NamedTuple):
    target: UpsTarget
    user: str
    password_file: Path | None
    poll_interval_seconds: float
    debounce_polls: int
    comm_loss_dead_seconds: float
    timeout_seconds: float
    auth_check: Literal["primary", "login", "none"]
    honor_fsd: bool
    critical_window_seconds: float | None
    lb_confirm_polls: int
    min_charge_on_battery: float
    outage_clear_seconds: float
    max_on_battery_seconds: float | None
    max_poll_gap_seconds: float | None
    runtime_correction: Literal["off", "learned"]


class ShutdownView(NamedTuple):
    history_window: int
    min_samples: int
    budget_percentile: float
    ups_mode: Literal["poweroff", "cluster-only"]


class StartupView(NamedTuple):
    power_stable_seconds: float
    min_battery_charge: float
    charge_unknown_wait_seconds: float
    gitea_bootstrap_manifests: tuple[Path, ...]


class CoordinationView(NamedTuple):
    role: Literal["coordinator", "peer"]
    startup_guard_max_age_seconds: float
    token_file: Path | None
    peer_name: str | None
    listen: ListenAddress


class MetricsView(NamedTuple):
    listen: ListenAddress


class NotifyView(NamedTuple):
    urls_file: Path | None


class NodesView(NamedTuple):
    servers: tuple[str, ...]
    agents: tuple[str, ...]

    @property
    def all(self) -> list[str]:
        return [*self.servers, *self.agents]


class FeedView(NamedTuple):
    instance: str


class ShedView(NamedTuple):
    label_selector: str | None
    agents: tuple[str, ...]


class PowerView(NamedTuple):
    feeds: Mapping[str, FeedView]
    node_feeds: Mapping[str, tuple[str, ...]]
    partial_policy: Literal["never", "quorum_safe", "always"]
    min_agents: int
    shed: ShedView
    methods: Mapping[str, str]  # power.nodes.NODE.method
    bmc_password_files: Mapping[str, Path]  # PowerConfig.password_files()
    exposure: tuple[str, ...]  # PowerConfig.exposure_warnings()

    def method_of(self, node: str) -> str:
        return self.methods.get(node, "none")

    def password_files(self) -> dict[str, Path]:
        return dict(self.bmc_password_files)

    def exposure_warnings(self) -> list[str]:
        return list(self.exposure)


class ReadView(NamedTuple):
    kubeconfig: Path
    default_budget_seconds: float
    runtime_safety_factor: float
    state_dir: Path
    ssh_config_file: Path | None
    ssh_identity_file: Path | None
    nodes: NodesView
    ups: UpsView
    shutdown: ShutdownView
    startup: StartupView
    coordination: CoordinationView
    notify: NotifyView
    metrics: MetricsView
    power: PowerView
    secret_file_keys: Mapping[str, Path]  # HecateConfig.secret_files()
    as_json: Mapping[str, Any]  # HecateConfig.model_dump(mode="json"): `config check --json`

    def secret_files(self) -> dict[str, Path]:
        return dict(self.secret_file_keys)


if TYPE_CHECKING:
    # what the functions the read commands share with the daemon take
    ConfigLike: TypeAlias = HecateConfig | ReadView


def read_view(config: HecateConfig) -> ReadView:
    """The view of a validated config: the fields the read commands read, copied."""
    ups, power = config.ups, config.power
    return ReadView(
        kubeconfig=config.kubeconfig,
        default_budget_seconds=config.default_budget_seconds,
        runtime_safety_factor=config.runtime_safety_factor,
        state_dir=config.state_dir,
        ssh_config_file=config.ssh_config_file,
        ssh_identity_file=config.ssh_identity_file,
        nodes=NodesView(tuple(config.nodes.servers), tuple(config.nodes.agents)),
        ups=UpsView(
            target=ups.target,
            user=ups.user,
            password_file=ups.password_file,
            poll_interval_seconds=ups.poll_interval_seconds,
            debounce_polls=ups.debounce_polls,
            comm_loss_dead_seconds=ups.comm_loss_dead_seconds,
            timeout_seconds=ups.timeout_seconds,
            auth_check=ups.auth_check,
            honor_fsd=ups.honor_fsd,
            critical_window_seconds=ups.critical_window_seconds,
            lb_confirm_polls=ups.lb_confirm_polls,
            min_charge_on_battery=ups.min_charge_on_battery,
            outage_clear_seconds=ups.outage_clear_seconds,
            max_on_battery_seconds=ups.max_on_battery_seconds,
            max_poll_gap_seconds=ups.max_poll_gap_seconds,
            runtime_correction=ups.runtime_correction,
        ),
        shutdown=ShutdownView(
            history_window=config.shutdown.history_window,
            min_samples=config.shutdown.min_samples,
            budget_percentile=config.shutdown.budget_percentile,
            ups_mode=config.shutdown.ups_mode,
        ),
        startup=StartupView(
            power_stable_seconds=config.startup.power_stable_seconds,
            min_battery_charge=config.startup.min_battery_charge,
            charge_unknown_wait_seconds=config.startup.charge_unknown_wait_seconds,
            gitea_bootstrap_manifests=tuple(config.startup.gitea_bootstrap_manifests),
        ),
        coordination=CoordinationView(
            role=config.coordination.role,
            startup_guard_max_age_seconds=config.coordination.startup_guard_max_age_seconds,
            token_file=config.coordination.token_file,
            peer_name=config.coordination.peer_name,
            listen=config.coordination.listen,
        ),
        metrics=MetricsView(listen=config.metrics.listen),
        notify=NotifyView(urls_file=config.notify.urls_file),
        power=PowerView(
            feeds={name: FeedView(feed.instance) for name, feed in power.feeds.items()},
            node_feeds={n: tuple(f) for n, f in power.node_feeds.items()},
            partial_policy=power.partial_policy,
            min_agents=power.min_agents,
            shed=ShedView(power.shed.label_selector, tuple(power.shed.agents)),
            methods={name: entry.method for name, entry in power.nodes.items()},
            bmc_password_files=dict(power.password_files()),
            exposure=tuple(power.exposure_warnings()),
        ),
        secret_file_keys=dict(config.secret_files()),
        as_json=config.model_dump(mode="json"),
    )
