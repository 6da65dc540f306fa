"""The power port: what the rest of Hecate needs of out-of-band power, whatever the method.

`open_power(config)` gives a `PowerPort`; each call names one node and returns a value (never
raises for a BMC's, a network's or a password file's failure: the reason is in the value, one
line, without the password). A node not under `power.nodes` has method `none`.

Per method:

- ipmi, redfish: `status` reads the BMC (which also proves the credentials, without changing
  power); `on`, `off(hard=False)` (soft: ACPI/graceful) and `off(hard=True)` (power cut) ask it.
- wol: `status` is `on` when the node's SSH answers, else `unknown`; `on` sends the magic packet.
- none: `status` as wol; `on` cannot be done.
- wol and none: `off` returns ok=False with the reason `NO_BMC_OFF` ("no BMC: off goes through
  SSH"): the caller powers such a node off over SSH and decides what that means for its flow.

A result's `ok` says the BMC (or the network) accepted the action, not that the node is there
yet: confirm with `status`, and with SSH for the way up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from hecate.adapters.power.ipmi import IpmiDriver
from hecate.adapters.power.none import NoneDriver
from hecate.adapters.power.redfish import RedfishDriver
from hecate.adapters.power.ssh_answer import DEFAULT_TIMEOUT as SSH_TIMEOUT
from hecate.adapters.power.ssh_answer import SshTarget
from hecate.adapters.power.wol import WolDriver
from hecate.config.power import IpmiPower, RedfishPower, WolPower
from hecate.core.power import PowerAction, PowerReading, PowerResult

if TYPE_CHECKING:
    from hecate.config.model import HecateConfig

BMC_TIMEOUT = 10.0  # one BMC call, all retries included


class PowerPort(Protocol):
    def status(self, node: str) -> PowerReading: ...

    def on(self, node: str) -> PowerResult: ...

    def off(self, node: str, *, hard: bool) -> PowerResult: ...


class _Driver(Protocol):
    def status(self) -> PowerReading: ...

    def act(self, action: PowerAction) -> PowerResult: ...


def ssh_target(config: HecateConfig, node: str) -> SshTarget:
    """Where the node's SSH listens: ssh_node_hosts (host[:port]) or its name, ssh_port."""
    entry = config.ssh_node_hosts.get(node)
    if entry is None:
        return SshTarget(node, config.ssh_port)
    return SshTarget(entry.host, entry.port if entry.port is not None else config.ssh_port)


class Power:
    """The PowerPort over a config: one driver per node, by its method."""

    def __init__(
        self,
        config: HecateConfig,
        *,
        bmc_timeout: float = BMC_TIMEOUT,
        ssh_timeout: float = SSH_TIMEOUT,
    ) -> None:
        self.config = config
        self.bmc_timeout = bmc_timeout
        self.ssh_timeout = ssh_timeout

    def driver(self, node: str) -> _Driver:
        entry = self.config.power.nodes.get(node)
        if isinstance(entry, IpmiPower):
            return IpmiDriver(node, entry, timeout=self.bmc_timeout)
        if isinstance(entry, RedfishPower):
            return RedfishDriver(node, entry, timeout=self.bmc_timeout)
        target = ssh_target(self.config, node)
        if isinstance(entry, WolPower):
            return WolDriver(node, entry, target, self.ssh_timeout)
        return NoneDriver(node, target, self.ssh_timeout)

    def status(self, node: str) -> PowerReading:
        return self.driver(node).status()

    def on(self, node: str) -> PowerResult:
        return self.driver(node).act("on")

    def off(self, node: str, *, hard: bool) -> PowerResult:
        return self.driver(node).act("hard_off" if hard else "off")


def open_power(
    config: HecateConfig, *, bmc_timeout: float = BMC_TIMEOUT, ssh_timeout: float = SSH_TIMEOUT
) -> PowerPort:
    """The power port for `config`'s nodes."""
    return Power(config, bmc_timeout=bmc_timeout, ssh_timeout=ssh_timeout)
