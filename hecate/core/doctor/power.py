"""`hecate doctor` on out-of-band power (issue 25), pure: what a BMC's answer, a node's Wake-on-LAN
settings and the power config mean. `hecate/cli/cmd_doctor_power.py` asks the BMCs; the node
probe (`hecate.core.doctor.nodes`) reads the Wake-on-LAN settings over SSH."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from hecate.config.model import HecateConfig
from hecate.config.power import IpmiPower, RedfishPower, WolPower
from hecate.core.doctor.findings import Finding, fail, ok, warn
from hecate.core.power import PowerReading

STAYS_OFF = "this node stays off if mains returns during a shutdown"


def power_config_findings(config: HecateConfig) -> list[Finding]:
    """What the config alone says: nodes that stay off, a Hecate host that powers itself off."""
    findings: list[Finding] = []
    if not config.shutdown.ups_kill_power:
        findings += [
            warn(
                f"power.{node}",
                f"method none and shutdown.ups_kill_power is off: {STAYS_OFF}",
                f"give it power.nodes.{node} (wol, ipmi or redfish), or set "
                "shutdown.ups_kill_power: true with a UPS that cuts its output",
            )
            for node in config.nodes.all
            if config.power.method_of(node) == "none"
        ]
    switched = [n for n in config.nodes.all if config.power.method_of(n) != "none"]
    if config.shutdown.poweroff_local_host and switched:
        findings.append(
            warn(
                "power.local_host",
                "shutdown.poweroff_local_host is true: Hecate's own host is off too after a "
                f"shutdown and cannot power anything on ({', '.join(switched)})",
                "set shutdown.poweroff_local_host: false, or make sure Hecate's host comes back "
                "by itself (BIOS: restore on AC loss)",
            )
        )
    return findings


def bmc_finding(config: HecateConfig, reading: PowerReading) -> Finding:
    """A BMC read (status changes nothing): it answers and accepts the credentials, or why not."""
    node = reading.node
    check = f"power.{node}.bmc"
    if reading.state != "unknown" or reading.in_between:
        return ok(check, f"{reading.reason}: it answers and accepts the credentials")
    entry = config.power.nodes.get(node)
    if isinstance(entry, IpmiPower):
        by_hand = (
            f"IPMI_PASSWORD=$(cat {entry.password_file}) ipmitool -I lanplus -H "
            f"{entry.address.host} -p {entry.port} -U {entry.user} -E -C {entry.cipher_suite} "
            "chassis power status"
        )
        fix = f"check power.nodes.{node} (address, user, password_file, cipher_suite); try: "
        return fail(check, reading.reason, fix + by_hand)
    if isinstance(entry, RedfishPower):
        return fail(
            check,
            reading.reason,
            f"check power.nodes.{node} (url, user, password_file, system, ca_file); try: curl "
            f"-u {entry.user} {entry.url}/redfish/v1/Systems/{entry.system}",
        )
    return fail(check, reading.reason, f"check power.nodes.{node}")


# --------------------------------------------------------------------------- Wake-on-LAN


def wol_probe_lines(mark: str, mac: str) -> list[str]:
    """Shell lines (read-only) printing `MARK wol IFACE WAKEUP WAKEON` for the network card with
    `mac`: its /sys power/wakeup (enabled, disabled, none) and ethtool's Wake-on letters (`-`
    when ethtool is missing or not allowed). Nothing printed: no card has that MAC."""
    quoted = shlex.quote(mac)
    return [
        "for d in /sys/class/net/*; do "
        f'if [ "$(cat "$d/address" 2>/dev/null)" = {quoted} ]; then i=${{d##*/}}; '
        'w=$(cat "$d/device/power/wakeup" 2>/dev/null || echo none); '
        "e=$(ethtool \"$i\" 2>/dev/null | sed -n 's/^[[:space:]]*Wake-on: *//p' | head -n 1); "
        f'echo "{mark} wol $i $w ${{e:--}}"; fi; done'
    ]


@dataclass(frozen=True)
class WolSeen:
    interface: str
    wakeup: str  # enabled, disabled, none (no such file)
    wake_on: str  # ethtool's letters (g: magic packet, d: disabled), or "-"


def parse_wol(words: list[str]) -> WolSeen | None:
    """A `wol IFACE WAKEUP WAKEON` line's words after the mark and `wol`."""
    if len(words) != 3:
        return None
    return WolSeen(*words)


def wol_finding(config: HecateConfig, node: str, seen: WolSeen | None) -> Finding:
    """From the node's probe (it is up: SSH answered): is Wake-on-LAN armed on that card?"""
    entry = config.power.nodes.get(node)
    if not isinstance(entry, WolPower):
        raise ValueError(f"{node} has no Wake-on-LAN config")
    check = f"power.{node}.wol"
    if seen is None:
        return fail(
            check,
            f"no network card on {node} has MAC {entry.mac}: the magic packet would wake nothing",
            f"fix power.nodes.{node}.mac (ip -br link on {node} lists the cards)",
        )
    arm = (
        f"on {node}: ethtool -s {seen.interface} wol g, made permanent (a systemd .link file "
        "with WakeOnLan=magic, or NetworkManager's 802-3-ethernet.wake-on-lan magic), and "
        "Wake-on-LAN enabled in the BIOS"
    )
    if seen.wakeup == "disabled" or ("g" not in seen.wake_on and seen.wake_on not in ("-", "")):
        return fail(
            check,
            f"{seen.interface} ({entry.mac}) does not wake on a magic packet (wakeup "
            f"{seen.wakeup}, Wake-on {seen.wake_on})",
            arm,
        )
    if "g" in seen.wake_on:
        return ok(check, f"{seen.interface} ({entry.mac}) wakes on a magic packet (Wake-on g)")
    return warn(
        check,
        f"{seen.interface} ({entry.mac}) found; its Wake-on setting could not be read (wakeup "
        f"{seen.wakeup}; ethtool missing or not allowed)",
        f"check on {node}: ethtool {seen.interface} shows Wake-on: g; else {arm}",
    )


def wol_unchecked(config: HecateConfig, node: str) -> Finding:
    """A wol node whose SSH did not answer: the reminder, since it could not be checked."""
    entry = config.power.nodes.get(node)
    mac = entry.mac if isinstance(entry, WolPower) else "?"
    return warn(
        f"power.{node}.wol",
        f"Wake-on-LAN on {node} ({mac}) not checked: the node did not answer SSH",
        f"Wake-on-LAN must be enabled on {node}'s network card (BIOS, and ethtool -s IFACE wol "
        "g made permanent); run hecate doctor again while it is up",
    )
