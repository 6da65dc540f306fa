"""Wake-on-LAN: the magic packet, sent over UDP (broadcast allowed) to the configured address.

It can only power a node on. Its state is what SSH says (`on` when it answers, else `unknown`:
a node whose SSH does not answer may be off, booting or hung), and off goes through SSH.
"""

from __future__ import annotations

import socket

from hecate.adapters.power.ssh_answer import SshTarget, ssh_answers
from hecate.config.power import WolPower
from hecate.core.power import NO_BMC_OFF, PowerAction, PowerReading, PowerResult, magic_packet

PACKETS_SENT = 3  # UDP may drop one; a NIC wakes on the first it sees


def send_magic_packet(mac: str, address: str, port: int, count: int = PACKETS_SENT) -> None:
    """Send the magic packet for `mac` to address:port; raises OSError."""
    packet = magic_packet(mac)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        for _ in range(count):
            sock.sendto(packet, (address, port))


class WolDriver:
    def __init__(self, node: str, config: WolPower, ssh: SshTarget, ssh_timeout: float) -> None:
        self.node = node
        self.config = config
        self.ssh = ssh
        self.ssh_timeout = ssh_timeout

    def status(self) -> PowerReading:
        answers, seen = ssh_answers(self.ssh, self.ssh_timeout)
        if answers:
            return PowerReading(self.node, "wol", "on", seen)
        return PowerReading(
            self.node, "wol", "unknown", f"{seen} (Wake-on-LAN cannot read a power state)"
        )

    def act(self, action: PowerAction) -> PowerResult:
        if action != "on":
            return PowerResult(self.node, action, False, NO_BMC_OFF)
        c = self.config
        try:
            send_magic_packet(c.mac, c.broadcast, c.port)
        except OSError as exc:
            return PowerResult(
                self.node,
                action,
                False,
                f"magic packet for {c.mac} to {c.broadcast}:{c.port} not sent: "
                f"{exc.strerror or type(exc).__name__}",
            )
        return PowerResult(
            self.node, action, True, f"magic packet for {c.mac} sent to {c.broadcast}:{c.port}"
        )
