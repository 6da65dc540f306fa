"""Method none: no out-of-band power. The node's BIOS brings it back when mains returns (restore
on AC loss); Hecate can only look at it through SSH, and powers it off through SSH."""

from __future__ import annotations

from hecate.adapters.power.ssh_answer import SshTarget, ssh_answers
from hecate.core.power import NO_BMC_OFF, PowerAction, PowerReading, PowerResult


class NoneDriver:
    def __init__(self, node: str, ssh: SshTarget, ssh_timeout: float) -> None:
        self.node = node
        self.ssh = ssh
        self.ssh_timeout = ssh_timeout

    def status(self) -> PowerReading:
        answers, seen = ssh_answers(self.ssh, self.ssh_timeout)
        return PowerReading(self.node, "none", "on" if answers else "unknown", seen)

    def act(self, action: PowerAction) -> PowerResult:
        if action == "on":
            return PowerResult(
                self.node,
                action,
                False,
                "method none: Hecate cannot power this node on (its BIOS must restore on AC "
                "loss); give it power.nodes.NODE (wol, ipmi or redfish)",
            )
        return PowerResult(self.node, action, False, NO_BMC_OFF)
