"""Doctor's etcd checks: the number of servers (an even number adds no failure tolerance) and
the age of the newest snapshot Hecate took and verified. Pure: config and run records in."""

from __future__ import annotations

from collections.abc import Sequence

from hecate.config.model import HecateConfig
from hecate.core.doctor.findings import Finding, ok, warn
from hecate.core.etcd_status import etcd_summary
from hecate.core.run_history import RunRecord


def etcd_findings(config: HecateConfig, runs: Sequence[RunRecord], now: float) -> list[Finding]:
    if config.cluster.datastore not in ("auto", "etcd"):
        return []
    findings: list[Finding] = []
    servers = len(config.nodes.servers)
    if servers >= 2 and servers % 2 == 0:
        findings.append(
            warn(
                "etcd servers",
                f"{servers} servers: etcd needs {servers // 2 + 1} for quorum, so it survives "
                f"{(servers - 1) // 2} lost server(s), no more than {servers - 1} servers would",
                f"run an odd number of servers ({servers - 1} or {servers + 1})",
            )
        )
    elif servers:
        findings.append(
            ok("etcd servers", f"{servers} server(s): quorum survives {(servers - 1) // 2} lost")
        )
    snapshot = etcd_summary(runs).snapshot
    limit = config.recover.max_snapshot_age_seconds
    if snapshot is None:
        findings.append(
            warn(
                "etcd snapshot",
                "no verified snapshot recorded by Hecate yet",
                "it takes one at every shutdown (shutdown.etcd_snapshot); `hecate recover etcd` "
                "needs one (a rehearsal: `hecate shutdown --execute --mode cluster-only`)",
            )
        )
    elif now - snapshot.taken_at > limit:
        findings.append(
            warn(
                "etcd snapshot",
                f"the newest, {snapshot.path} on {snapshot.node}, is "
                f"{(now - snapshot.taken_at) / 86400:.1f} days old: older than "
                f"recover.max_snapshot_age_seconds ({limit:g}s), recovery would need --force",
                "take a fresh one (`k3s etcd-snapshot save` is not recorded by Hecate: run a "
                "cluster-only shutdown rehearsal, or raise recover.max_snapshot_age_seconds)",
            )
        )
    else:
        findings.append(
            ok(
                "etcd snapshot",
                f"{snapshot.path} on {snapshot.node}, {(now - snapshot.taken_at) / 3600:.1f} h old",
            )
        )
    return findings
