"""`hecate config init`'s decisions (pure): a config from what the cluster and NUT show.

`plan_config` turns what was read (Nodes with their labels and InternalIP, Flux's
GitRepositories, the workloads, the UPS names upsd serves) into the values to write, what was
found and what the operator must still decide. `render_config` writes those values into the
example config's text, so every key keeps its comment; the result is parsed again and compared
with the values before anything is written (`HecateError` when they differ).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import yaml

from hecate.adapters.kube.types import NodeDetails, WorkloadInfo
from hecate.config.model import parse_config
from hecate.config.yaml_dump import safe_dump
from hecate.errors import ConfigError, HecateError

SERVER_ROLES: Final = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")
GITEA: Final = "gitea"
# Settings carried over from an existing valid config: the operator chose them, the cluster
# cannot tell them.
CARRIED: Final = (
    ("ssh_user",),
    ("ssh_port",),
    ("ssh_identity_file",),
    ("ssh_jump_host",),
    ("ssh_jump_user",),
    ("state_dir",),
    ("node_privilege",),
    ("ups", "user"),
    ("ups", "password_file"),
    ("ups", "auth_check"),
)

Path_ = tuple[str, ...]


@dataclass(frozen=True)
class FluxSource:
    namespace: str
    name: str


@dataclass(frozen=True)
class Discovery:
    """What was read from the cluster and from upsd."""

    kubeconfig: str
    nodes: Sequence[NodeDetails]
    git_repositories: Sequence[FluxSource] = ()
    workloads: Sequence[WorkloadInfo] = ()
    ups_names: Sequence[str] | None = None  # None: upsd could not be asked
    nut_where: str = "localhost"
    nut_error: str = ""
    api_server: str = ""
    existing: Mapping[str, Any] | None = None  # an existing valid config, as data
    # Where the nodes came from: "" the cluster; else the flags, and why (the cluster's error)
    nodes_from_flags: str = ""
    ups_target: str | None = None  # --ups-target: the operator's word over upsd's list
    cluster_error: str = ""  # why the cluster could not be read ("": it was)


@dataclass
class InitPlan:
    values: dict[Path_, Any] = field(default_factory=dict)
    found: list[str] = field(default_factory=list)
    todo: list[str] = field(default_factory=list)


def is_server(node: NodeDetails) -> bool:
    return any(node.labels.get(label) in ("true", "") for label in SERVER_ROLES)


def _get(data: Mapping[str, Any], path: Path_) -> Any:
    value: Any = data
    for part in path:
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _gitea_choice(workloads: Sequence[WorkloadInfo]) -> WorkloadInfo | None:
    """The Gitea workload: named exactly gitea, else the shortest gitea-like name (a database
    such as gitea-postgresql is longer); Deployments before StatefulSets."""
    like = [w for w in workloads if GITEA in w.name.lower()]
    if not like:
        return None
    return min(like, key=lambda w: (w.name != GITEA, len(w.name), w.kind != "deployment", w.name))


def plan_config(found: Discovery) -> InitPlan:
    plan = InitPlan()
    values = plan.values
    values[("kubeconfig",)] = found.kubeconfig
    servers = sorted(n.name for n in found.nodes if is_server(n))
    agents = sorted(n.name for n in found.nodes if not is_server(n))
    values[("nodes", "servers")] = servers
    values[("nodes", "agents")] = agents
    where = f"from {found.nodes_from_flags}" if found.nodes_from_flags else "from the cluster"
    plan.found.append(
        f"nodes ({where}): {len(servers)} server(s) {', '.join(servers) or '-'}; "
        f"{len(agents)} agent(s) {', '.join(agents) or '-'}"
    )
    if not servers:
        plan.todo.append(
            "no node carries node-role.kubernetes.io/control-plane or master: put the k3s "
            "servers into nodes.servers"
        )
    hosts = {n.name: n.internal_ip for n in found.nodes if n.internal_ip}
    values[("ssh_node_hosts",)] = dict(sorted(hosts.items()))
    missing_ip = sorted(n.name for n in found.nodes if not n.internal_ip)
    source = "the flags' addresses" if found.nodes_from_flags else "the nodes' InternalIP"
    plan.found.append(
        f"ssh_node_hosts from {source}: " + ", ".join(f"{k}={v}" for k, v in sorted(hosts.items()))
    )
    if missing_ip:
        plan.todo.append(f"no InternalIP for {', '.join(missing_ip)}: they are reached by name")
    plan.todo.append(
        "check that this host reaches the nodes at those addresses over SSH (ssh_node_hosts "
        "takes host:port too)"
    )
    if re.match(r"https?://(127\.|localhost|\[::1\])", found.api_server):
        plan.todo.append(
            f"the kubeconfig's server is {found.api_server}: from another host it must be a "
            "server's address (edit its server: line)"
        )
    if found.cluster_error:
        plan.found.append(f"the cluster could not be read: {found.cluster_error}")
        plan.todo.append(
            "startup.flux_*, startup.gitea_* and startup.foundation_workloads keep the "
            "example's values (the cluster could not be read): check them"
        )
    else:
        _plan_flux(found, plan)
        _plan_gitea(found, plan)
        _plan_foundation(found, plan)
    _plan_ups(found, plan)
    if found.existing is not None:
        carried = []
        for path in CARRIED:
            value = _get(found.existing, path)
            if value is not None:
                values[path] = value
                carried.append(".".join(path))
        if carried:
            plan.found.append(f"kept from the existing config: {', '.join(carried)}")
    plan.todo += [
        "ssh_user and ssh_identity_file: the user and key Hecate logs in with (README: after "
        "install)",
        "shutdown.ups_mode (poweroff or cluster-only) and shutdown.poweroff_method",
        "then run: hecate doctor",
    ]
    return plan


def _plan_flux(found: Discovery, plan: InitPlan) -> None:
    sources = sorted(found.git_repositories, key=lambda s: (s.namespace, s.name))
    if not sources:
        plan.found.append("Flux: no GitRepository (Flux stages will do nothing)")
        return
    own = next((s for s in sources if s.name == s.namespace == "flux-system"), None)
    choice = own or sources[0]
    plan.values[("startup", "flux_namespace")] = choice.namespace
    plan.values[("startup", "flux_git_repository")] = choice.name
    plan.found.append(f"Flux's source: GitRepository {choice.namespace}/{choice.name}")
    if own is None and len(sources) > 1:
        others = ", ".join(f"{s.namespace}/{s.name}" for s in sources)
        plan.todo.append(f"several GitRepositories ({others}): check startup.flux_git_repository")


def _plan_gitea(found: Discovery, plan: InitPlan) -> None:
    gitea = _gitea_choice(found.workloads)
    if gitea is None:
        plan.found.append("Gitea: none in the cluster (the deadlock fallback stays unused)")
        return
    plan.values[("startup", "gitea_namespace")] = gitea.namespace
    plan.values[("startup", "gitea_workload")] = f"{gitea.kind}/{gitea.name}"
    plan.values[("startup", "gitea_replicas")] = max(gitea.replicas, 1)
    plan.found.append(f"Gitea: {gitea.kind}/{gitea.name} in {gitea.namespace}")
    plan.todo.append(
        "startup.gitea_bootstrap_manifests: the manifests (storage, database, Gitea) to apply "
        "when scaling Gitea is not enough"
    )


def _plan_foundation(found: Discovery, plan: InitPlan) -> None:
    names = {(w.namespace, w.name) for w in found.workloads if w.kind == "deployment"}
    if ("kube-system", "coredns") in names:
        plan.values[("startup", "foundation_workloads")] = [
            {
                "kind": "deployment",
                "namespace": "kube-system",
                "name": "coredns",
                "replicas": 1,
                "timeout_seconds": 120,
            }
        ]
    else:
        plan.values[("startup", "foundation_workloads")] = []
    plan.todo.append(
        "startup.foundation_workloads: storage, DNS, ingress to bring back first, in order"
    )


def _plan_ups(found: Discovery, plan: InitPlan) -> None:
    if found.ups_target is not None:
        plan.values[("ups", "target")] = found.ups_target
        plan.found.append(f"UPS: {found.ups_target} (from --ups-target)")
        return
    kept = None if found.existing is None else _get(found.existing, ("ups", "target"))
    if kept is not None and not found.ups_names:
        # upsd said nothing: the existing config's UPS is the operator's word (never the
        # example's: without either, `config init` asks for --ups-target)
        plan.values[("ups", "target")] = kept
        plan.found.append(f"UPS: {kept} (kept from the existing config)")
    if found.ups_names is None:
        plan.todo.append(
            f"upsd at {found.nut_where} could not be asked ({found.nut_error}): check ups.target "
            "(UPSNAME@HOST[:PORT], `upsc -l` lists the names)"
        )
        return
    names = sorted(found.ups_names)
    if not names:
        plan.todo.append(f"upsd at {found.nut_where} serves no UPS: configure NUT, then ups.target")
        return
    plan.values[("ups", "target")] = f"{names[0]}@{found.nut_where}"
    plan.found.append(f"UPS: {names[0]}@{found.nut_where} (upsd serves: {', '.join(names)})")
    if len(names) > 1:
        plan.todo.append(f"upsd serves several UPSes ({', '.join(names)}): check ups.target")


# --------------------------------------------------------------------------- rendering

_KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][A-Za-z0-9_]*):(?P<rest>.*)$")


def _scalar(value: Any) -> str:
    text = safe_dump(value, default_flow_style=True, width=1 << 20).strip()
    return text.removesuffix("\n...").strip()


def _value_lines(indent: int, key: str, value: Any) -> list[str]:
    pad = " " * indent
    if isinstance(value, Mapping) and value:
        return [f"{pad}{key}:"] + [f"{pad}  {_scalar(k)}: {_scalar(v)}" for k, v in value.items()]
    if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        return [f"{pad}{key}:"] + [f"{pad}  - {_scalar(v)}" for v in value]
    return [f"{pad}{key}: {_scalar(value)}"]


def render_config(template: str, values: Mapping[Path_, Any]) -> str:
    """The template (the example config) with `values` written in place; raises HecateError
    when a key is not in the template or the result does not read back as those values."""
    lines = template.splitlines()
    out: list[str] = []
    stack: list[tuple[int, str]] = []
    placed: set[Path_] = set()
    skip_deeper_than: int | None = None
    for line in lines:
        match = _KEY_LINE.match(line)
        indent = len(line) - len(line.lstrip(" "))
        if skip_deeper_than is not None:
            if line.strip() and indent > skip_deeper_than:
                continue  # the old value's own lines
            skip_deeper_than = None
        if match is None:
            out.append(line)
            continue
        key = match["key"]
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = (*(k for _, k in stack), key)
        stack.append((indent, key))
        if path in values:
            out += _value_lines(indent, key, values[path])
            placed.add(path)
            skip_deeper_than = indent
            continue
        out.append(line)
    missing = set(values) - placed
    if missing:
        names = ", ".join(sorted(".".join(p) for p in missing))
        raise HecateError(f"the example config has no key {names}: cannot write it")
    text = "\n".join(out) + "\n"
    check_rendered(text, values)
    return text


def check_rendered(text: str, values: Mapping[Path_, Any]) -> None:
    """Fail closed: the text must be a valid config holding exactly `values`."""
    data = yaml.safe_load(text)
    for path, value in values.items():
        if _get(data, path) != value:
            raise HecateError(f"writing {'.'.join(path)} gave {_get(data, path)!r}, not {value!r}")
    try:
        parse_config(data, "the new config")
    except ConfigError as exc:
        raise HecateError(f"{exc.message}: {'; '.join(exc.problems)}") from None
