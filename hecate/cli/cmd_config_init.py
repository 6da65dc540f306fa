"""`hecate config init --kubeconfig FILE`: a complete config written from the cluster itself."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from hecate.adapters.kube.types import NodeDetails
from hecate.adapters.nut.client import NutClient
from hecate.cli.common import emit_json
from hecate.cli.config_files import file_use_problems
from hecate.cli.config_init_text import (
    SERVER_ROLES,
    Discovery,
    FluxSource,
    plan_config,
    render_config,
)
from hecate.cli.exits import EXIT_USAGE
from hecate.cli.options import ConfigOpt, JsonOpt
from hecate.config.addresses import NUT_DEFAULT_PORT, AddressError, HostPort, NodeName, UpsTarget
from hecate.config.load import DEFAULT_CONFIG_PATH
from hecate.config.model import load_config, parse_config
from hecate.errors import ConfigError, HecateError, KubeError, UpsError

EXAMPLE_NAME = "hecate.example.yaml"
DEFAULT_KUBECONFIG = Path("/etc/hecate/kubeconfig.yaml")


def example_text() -> str:
    """The example config (every key commented): from the checkout, or as package data."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package.parent / "configs" / EXAMPLE_NAME, package / "data" / EXAMPLE_NAME):
        if candidate.is_file():
            return candidate.read_text(encoding="utf-8")
    raise HecateError(f"cannot find {EXAMPLE_NAME} (looked in configs/ and hecate/data/)")


NodeFlag = Annotated[
    list[str] | None,
    typer.Option(
        help="NAME[=ADDRESS] (repeat it): the nodes when the cluster cannot be read, or to "
        "override what it says; ADDRESS (HOST or HOST:PORT) becomes ssh_node_hosts.",
        show_default=False,
    ),
]


def init_command(
    kubeconfig: Annotated[
        Path,
        typer.Option(
            "--kubeconfig",
            help="A kubeconfig for the cluster, e.g. /etc/rancher/k3s/k3s.yaml copied from a "
            "server with its server: line set to that server's address.",
        ),
    ] = DEFAULT_KUBECONFIG,
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
    nut: Annotated[
        str,
        typer.Option("--nut", help="upsd to ask for its UPS names (HOST or HOST:PORT)."),
    ] = "localhost",
    ups_target: Annotated[
        str | None,
        typer.Option(
            "--ups-target",
            help="UPSNAME@HOST[:PORT]: the UPS to watch, without asking upsd.",
            show_default=False,
        ),
    ] = None,
    server: NodeFlag = None,
    agent: NodeFlag = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing config (kept as FILE.bak).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Write a config from the cluster itself: its nodes (servers from the control-plane /
    master role labels), their InternalIP addresses (ssh_node_hosts), Flux's GitRepository, a
    Gitea workload if there is one, and the UPS names the local upsd serves (`upsc -l`).

    With no reachable cluster, the nodes come from --server/--agent NAME[=ADDRESS] (given,
    they win over the cluster's); --ups-target names the UPS without asking upsd. Every key
    keeps its comment from the example. Settings the cluster cannot tell (SSH user and key,
    NUT user and password file, state_dir) are kept from an existing valid config. An
    existing file is never replaced without --force. Then the written config is checked as
    `hecate config check` does: each file it names that is missing or unusable is listed with
    the command that makes it.
    """
    if config.exists() and not force:
        typer.echo(
            f"error: {config} exists; pass --force to replace it (the old one is kept as "
            f"{config}.bak)",
            err=True,
        )
        raise typer.Exit(EXIT_USAGE)
    try:
        flagged = _flag_nodes(server or [], agent or [])
        target = None if ups_target is None else str(UpsTarget.parse(ups_target))
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    existing = _existing(config)
    discovery = _discover(kubeconfig.resolve(), nut, existing, flagged, target)
    plan = plan_config(discovery)
    if ("ups", "target") not in plan.values:
        typer.echo(
            f"error: no UPS to write as ups.target (upsd at {discovery.nut_where}: "
            f"{discovery.nut_error or 'serves no UPS'}); pass --ups-target UPSNAME@HOST[:PORT]",
            err=True,
        )
        raise typer.Exit(EXIT_USAGE)
    text = render_config(example_text(), plan.values)
    if config.exists():
        backup = config.with_name(config.name + ".bak")
        backup.write_bytes(config.read_bytes())
        backup.chmod(0o640)
    _write(config, text)
    files = file_use_problems(parse_config(yaml.safe_load(text), str(config), file=True))
    if as_json:
        emit_json(
            {
                "written": str(config),
                "found": plan.found,
                "todo": plan.todo,
                "files": files,
                "values": {".".join(k): v for k, v in plan.values.items()},
            }
        )
        return
    typer.echo(f"wrote {config}")
    for title, lines in (
        ("found:", plan.found),
        ("still to decide (edit the file):", plan.todo),
        ("files to make before `hecate config check` accepts it:", files),
    ):
        if lines:
            typer.echo(title)
            for line in lines:
                typer.echo(f"  - {line}")
    if not files:
        typer.echo("every file it names is in place: `hecate config check` accepts it")


def _flag_nodes(servers: list[str], agents: list[str]) -> list[NodeDetails]:
    """--server/--agent NAME[=ADDRESS] as the Nodes the cluster would have shown."""
    nodes = []
    for flags, labels in ((servers, {SERVER_ROLES[0]: "true"}), (agents, {})):
        for flag in flags:
            name, _, address = flag.partition("=")
            node = NodeName.parse(name)
            host = str(HostPort.parse(address)) if address else None
            nodes.append(NodeDetails(str(node), labels, host))
    return nodes


def _existing(config: Path) -> dict[str, Any] | None:
    if not config.exists():
        return None
    try:
        load_config(config)
    except ConfigError:
        return None  # an invalid config carries nothing over
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else None


def _read_cluster(kubeconfig: Path) -> tuple[list[NodeDetails], str, list[FluxSource], list[Any]]:
    # lightkube and httpx: only when init reads a cluster (not for `config check`'s group)
    from hecate.adapters.kube.client import Kube  # noqa: PLC0415

    with Kube(kubeconfig, timeout_s=10.0) as kube:
        nodes = kube.node_details()
        server = kube.server
        try:
            sources = [FluxSource(o.namespace, o.name) for o in kube.flux_objects("GitRepository")]
        except KubeError:
            sources = []  # no Flux CRDs: no Flux
        workloads = [*kube.workloads("deployment"), *kube.workloads("statefulset")]
    return list(nodes), server, sources, workloads


def _discover(
    kubeconfig: Path,
    nut: str,
    existing: dict[str, Any] | None,
    flagged: list[NodeDetails],
    ups_target: str | None,
) -> Discovery:
    cluster_error = ""
    try:
        nodes, server, sources, workloads = _read_cluster(kubeconfig)
    except (KubeError, OSError) as exc:
        if not flagged:
            raise HecateError(
                f"cannot read the cluster: {exc}; without it, give the nodes: --server "
                "NAME[=ADDRESS] and --agent NAME[=ADDRESS] (repeat them)"
            ) from None
        nodes, server, sources, workloads = [], "", [], []
        cluster_error = str(exc)
    names: list[str] | None = None
    error = ""
    host, _, port_text = nut.partition(":")
    where = nut if port_text else host
    if ups_target is None:
        try:
            port = int(port_text) if port_text else NUT_DEFAULT_PORT
            client = NutClient(UpsTarget.at("list", host, port), timeout_s=5.0, auth_check="none")
            names = list(client.ups_names())
        except AddressError as exc:  # a ValueError too: the host or port is not one
            error = str(exc)
        except ValueError:
            error = f"--nut {nut!r}: expected HOST or HOST:PORT"
        except (ConfigError, UpsError) as exc:
            error = str(exc)
    return Discovery(
        kubeconfig=str(kubeconfig),
        nodes=flagged or nodes,
        git_repositories=sources,
        workloads=workloads,
        ups_names=names,
        nut_where=where,
        nut_error=error,
        api_server=server,
        existing=existing,
        nodes_from_flags="--server/--agent" if flagged else "",
        ups_target=ups_target,
        cluster_error=cluster_error,
    )


def _ownership(path: Path) -> tuple[int, int]:
    """The owner and group the new file gets: those of the file it replaces, else the
    directory's group. The installer makes the config root:hecate-daemon 0640 in a directory of
    that group, and the unprivileged daemon reads it through the group: a file written by root
    with root's group would stop `systemctl reload hecate` (and every restart) with "Permission
    denied"."""
    try:
        info = path.stat()
        return info.st_uid, info.st_gid
    except FileNotFoundError:
        return -1, path.parent.stat().st_gid


def _write(path: Path, text: str) -> None:
    """Atomically, mode 0640 (the config holds no secret, but names their files), with the
    replaced file's owner and group (see _ownership)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    uid, gid = _ownership(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(f"# Written by `hecate config init` on {time.strftime('%Y-%m-%d')}.\n")
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if (uid, gid) != (os.geteuid(), os.getegid()):
            os.chown(tmp, uid, gid)
        Path(tmp).chmod(0o640)
        Path(tmp).replace(path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise HecateError(f"cannot write {path}: {exc.strerror}") from None
