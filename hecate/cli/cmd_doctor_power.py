"""`hecate doctor`'s power probes: each BMC read once (status changes no power), in parallel and
bounded; `hecate.core.doctor.power` says what it means. (The Wake-on-LAN settings are read by the
node probe, over SSH: cmd_doctor_nodes.)"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from hecate.adapters.power.port import open_power
from hecate.config.model import HecateConfig
from hecate.core.doctor.findings import Finding
from hecate.core.doctor.power import bmc_finding, power_config_findings


def power_checks(cfg: HecateConfig) -> list[Finding]:
    findings = power_config_findings(cfg)
    with_bmc = [n for n in cfg.nodes.all if cfg.power.method_of(n) in ("ipmi", "redfish")]
    if not with_bmc:
        return findings
    power = open_power(cfg)
    with ThreadPoolExecutor(max_workers=min(8, len(with_bmc))) as pool:
        readings = list(pool.map(power.status, with_bmc))
    return findings + [bmc_finding(cfg, reading) for reading in readings]
