"""`hecate doctor`'s decisions (pure: no I/O): what each probe's outcome means and what to do.

The CLI (`hecate/cli/cmd_doctor.py`) runs the probes (NUT, the API, SSH to every node, peers,
ports) and hands their raw outcomes to the functions here, which turn them into findings: a
check name, ok / warn / fail, what was seen and, for anything not ok, what to do. The cluster is
protected (exit 0) only when no finding fails.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from hecate.config.model import HecateConfig
from hecate.core.doctor.findings import Finding, fail, ok, warn

# The example config's stand-in values (configs/hecate.example.yaml): a config still holding
# them was copied and never edited. tests/unit/core/test_doctor.py keeps these in step with the
# file.
EXAMPLE_NODES: Final = ("titan-0", "titan-1", "titan-2")
EXAMPLE_ADDRESSES: Final = ("192.168.10.10", "192.168.10.11", "192.168.10.12")


# --------------------------------------------------------------------------- placeholders


def placeholder_findings(config: HecateConfig) -> list[Finding]:
    """The example's stand-in nodes and addresses, still in the config."""
    names = sorted(set(config.nodes.all) & set(EXAMPLE_NODES))
    addresses = sorted(
        {h for h in config.ssh_node_hosts.values() if h.split(":")[0] in EXAMPLE_ADDRESSES}
    )
    if not names and not addresses:
        return [ok("config.placeholders", "no placeholder values from the example")]
    parts = []
    if names:
        parts.append(f"nodes {', '.join(names)}")
    if addresses:
        parts.append(f"addresses {', '.join(addresses)}")
    return [
        fail(
            "config.placeholders",
            f"the example's placeholder values are still there: {'; '.join(parts)}",
            "write the real cluster into the config: "
            "hecate config init --kubeconfig FILE --force (or edit nodes and ssh_node_hosts)",
        )
    ]


# --------------------------------------------------------------------------- UPS


def ups_name_finding(ups: str, served: Mapping[str, str], where: str) -> Finding:
    """Is the configured UPS among those upsd serves (`upsc -l`)?"""
    if ups in served:
        return ok("ups.name", f"upsd at {where} serves {ups!r}")
    if not served:
        return fail(
            "ups.name",
            f"upsd at {where} serves no UPS at all",
            "configure the UPS in /etc/nut/ups.conf (the installer does it) and restart "
            "nut-server; `upsc -l` must list it",
        )
    names = ", ".join(sorted(served))
    first = sorted(served)[0]
    return fail(
        "ups.name",
        f"upsd at {where} serves no UPS named {ups!r}; it serves: {names}",
        f"set ups.target to {first}@{where} (or the right one of: {names})",
    )


# --------------------------------------------------------------------------- cluster objects


def nodes_in_cluster_findings(
    config: HecateConfig, cluster: Mapping[str, frozenset[str]]
) -> list[Finding]:
    """Configured nodes against the API's Nodes (name -> node-role labels)."""
    findings = []
    missing = [n for n in config.nodes.all if n not in cluster]
    extra = sorted(set(cluster) - set(config.nodes.all))
    if missing:
        findings.append(
            fail(
                "kube.nodes",
                f"configured but not in the cluster: {', '.join(missing)}; the cluster has: "
                f"{', '.join(sorted(cluster)) or 'no nodes'}",
                "fix nodes.servers/agents (hecate config init --kubeconfig FILE --force "
                "writes them from the cluster)",
            )
        )
    else:
        findings.append(ok("kube.nodes", f"all {len(config.nodes.all)} configured node(s) found"))
    if extra:
        findings.append(
            warn(
                "kube.nodes.extra",
                f"in the cluster but not in the config (never stopped by Hecate): "
                f"{', '.join(extra)}",
                "add them to nodes.servers or nodes.agents",
            )
        )
    wrong = [
        n for n in config.nodes.agents if n in cluster and cluster[n] & {"control-plane", "master"}
    ] + [
        n
        for n in config.nodes.servers
        if n in cluster and not cluster[n] & {"control-plane", "master"}
    ]
    if wrong:
        findings.append(
            warn(
                "kube.nodes.roles",
                f"role in the config differs from the cluster's labels: {', '.join(wrong)}",
                "servers carry node-role.kubernetes.io/control-plane; move them to the right list",
            )
        )
    return findings


def flux_finding(
    namespace: str, name: str, found: bool, others: Sequence[str], error: str | None = None
) -> Finding:
    check = "kube.flux"
    if found:
        return ok(check, f"GitRepository {namespace}/{name} found")
    if error is not None and not others:
        return warn(
            check,
            f"no Flux GitRepositories readable ({error})",
            "if the cluster uses Flux, check the kubeconfig's rights; otherwise ignore",
        )
    if not others:
        return warn(
            check,
            "the cluster has no Flux GitRepository: the Flux stages will do nothing",
            "ignore if you do not use Flux",
        )
    return fail(
        check,
        f"GitRepository {namespace}/{name} not found; the cluster has: {', '.join(others)}",
        "set startup.flux_namespace and startup.flux_git_repository to Flux's own source",
    )


def gitea_finding(workload: str, namespace: str, found: bool, candidates: Sequence[str]) -> Finding:
    check = "kube.gitea"
    if found:
        return ok(check, f"{workload} found in {namespace}")
    if candidates:
        return fail(
            check,
            f"{workload} not found in {namespace}; Gitea-like workloads: {', '.join(candidates)}",
            "set startup.gitea_namespace and startup.gitea_workload to one of them",
        )
    return warn(
        check,
        f"{workload} not found in {namespace}, and no Gitea-like workload in the cluster",
        "ignore if Flux's source is not an in-cluster Gitea (the deadlock fallback is unused)",
    )
