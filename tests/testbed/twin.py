"""The cluster twin: a k3s cluster's stand-in made of podman containers running systemd.

Each node is a container of the test bed's node image (see :mod:`tests.testbed.image`) with
systemd as PID 1, sshd published on a free ``127.0.0.1`` port, and the real unit names a k3s
install has: ``k3s.service`` on servers, ``k3s-agent.service`` on agents, both enabled at boot and
running :mod:`tests.testbed.node.kube_standin` (a Kubernetes API stand-in, node heartbeats and a
small Flux model). Servers publish the API's port 6443 on ``127.0.0.1`` too.

The servers run a real etcd, one member each, started and stopped with their k3s (see
:mod:`tests.testbed.twin_etcd` for the layout); the API stand-in keeps its objects in it, so the
API answers exactly while etcd has quorum and objects survive restarts. The nodes share one
directory too (``<workdir>/state``, bind-mounted): heartbeats, the API's token and certificate,
the seed (``seed.json``, written into etcd at first start: see :func:`default_seed`), the audit.

Typical use::

    with Twin(servers=1, agents=2, workdir=tmp_path) as twin:   # starts it
        status, body = twin.api("GET", "/api/v1/nodes")
        twin.stop_unit("twin-a1")                                 # k3s-agent stops
        twin.wait_node_ready("twin-a1", ready=False)
        twin.poweroff("twin-a2")                                  # power cut (podman kill)
        twin.power_on("twin-a2")

Every container is labelled ``hecate.testbed=1`` with the run's id, owner process and work dir;
:func:`remove_leftovers` (called by :meth:`Twin.start`) removes containers of runs whose owner
process is gone (a crashed test run), or whose kept state dir was deleted (``scripts/testbed``).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import io
import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from tests.testbed import twin_etcd
from tests.testbed.image import ensure_image, podman, podman_env
from tests.testbed.node import kube_standin

Role = Literal["server", "agent"]

LABEL = "hecate.testbed"
LABEL_RUN = "hecate.testbed.run"
LABEL_OWNER = "hecate.testbed.owner"
LABEL_DIR = "hecate.testbed.dir"
LABEL_KEEP = "hecate.testbed.keep"
LABEL_NODE = "hecate.testbed.node"
NODE_FILES = Path(__file__).resolve().parent / "node"
SHARED_IN_NODE = kube_standin.STATE_DIR
TEMP_PREFIX = "hecate-twin-"
SSH_USER = "hecate"
HECATE_UID = 1000
GITEA_URL = "http://gitea-http.gitea.svc.cluster.local:3000/ops/cluster.git"


COPY_ATTEMPTS = 3  # podman cp of the node files (see Twin._copy_files)


class TwinError(RuntimeError):
    """The twin could not do what was asked (start, wait, power...)."""


class TwinApiDownError(TwinError):
    """No answer from the twin's API (its servers' k3s are stopped, or they are powered off)."""


@dataclass(frozen=True)
class TwinNode:
    """One node of the twin: a container named ``container`` whose hostname is ``name``."""

    name: str
    role: Role
    ssh_port: int
    container: str
    api_port: int | None = None
    ip: str | None = None  # in the twin's own network (etcd's peer and client URLs)

    @property
    def unit(self) -> str:
        """The node's k3s unit: ``k3s`` on servers, ``k3s-agent`` on agents."""
        return "k3s" if self.role == "server" else "k3s-agent"

    @property
    def api_url(self) -> str | None:
        """``https://127.0.0.1:PORT`` on servers (certificate: the twin's ``ca_cert``)."""
        return f"https://127.0.0.1:{self.api_port}" if self.api_port else None


# ------------------------------------------------------------------------------------------------
# Seed


def _workload(
    kind: str,
    namespace: str,
    name: str,
    replicas: int,
    *,
    kustomization: str | None,
    image: str,
) -> dict[str, Any]:
    labels: dict[str, str] = {"app.kubernetes.io/name": name}
    annotations: dict[str, str] = {}
    if kustomization:
        labels |= {
            kube_standin.LABEL_KS_NAME: kustomization,
            kube_standin.LABEL_KS_NS: "flux-system",
        }
        annotations[kube_standin.ANN_DESIRED] = str(replicas)
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": name}},
                "spec": {"containers": [{"name": name.split("-", 1)[0], "image": image}]},
            },
        },
    }


def _flux(
    kind: str,
    name: str,
    spec: dict[str, Any],
    namespace: str = "flux-system",
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    api_version = {
        "GitRepository": "source.toolkit.fluxcd.io/v1",
        "Kustomization": "kustomize.toolkit.fluxcd.io/v1",
        "HelmRelease": "helm.toolkit.fluxcd.io/v2",
    }[kind]
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        metadata["labels"] = labels
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, "spec": spec}


def default_seed() -> dict[str, Any]:
    """The cluster a fresh twin has: Flux from an in-cluster Gitea, a few apps.

    * GitRepository ``flux-system/flux-system`` from the in-cluster Gitea, branch ``main``;
    * Kustomizations ``flux-system``, ``infrastructure``, ``gitea``, ``apps`` (``apps``
      depends on ``infrastructure``), all from that source;
    * Deployment ``gitea/gitea`` and StatefulSet ``gitea/gitea-postgresql`` (owned by the
      ``gitea`` Kustomization: the cold-start deadlock), Deployments ``apps/whoami`` (2) and
      ``apps/homepage`` (owned by ``apps``), ``kube-system/coredns`` (owned by nothing);
    * HelmReleases ``infrastructure/ingress-nginx`` and ``apps/nextcloud``;
    * ``config``: the stand-in's settings (see ``kube_standin.DEFAULT_CONFIG``).

    Returns a fresh dict: change it and pass it as ``Twin(seed=...)``.
    """
    ks_label = kube_standin.LABEL_KS_NAME
    ns_label = kube_standin.LABEL_KS_NS
    namespaces = [
        "default",
        "kube-system",
        "kube-public",
        "kube-node-lease",
        "flux-system",
        "gitea",
        "infrastructure",
        "apps",
    ]
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}} for ns in namespaces
    ]
    source_ref = {"kind": "GitRepository", "name": "flux-system"}
    objects += [
        _flux(
            "GitRepository",
            "flux-system",
            {
                "interval": "1m0s",
                "url": GITEA_URL,
                "ref": {"branch": "main"},
                "secretRef": {"name": "flux-system"},
                "timeout": "60s",
            },
        ),
        _flux(
            "Kustomization",
            "flux-system",
            {
                "interval": "10m0s",
                "path": "./clusters/home",
                "prune": True,
                "sourceRef": source_ref,
            },
        ),
        _flux(
            "Kustomization",
            "infrastructure",
            {
                "interval": "10m0s",
                "path": "./infrastructure",
                "prune": True,
                "sourceRef": source_ref,
            },
        ),
        _flux(
            "Kustomization",
            "gitea",
            {"interval": "10m0s", "path": "./apps/gitea", "prune": True, "sourceRef": source_ref},
        ),
        _flux(
            "Kustomization",
            "apps",
            {
                "interval": "10m0s",
                "path": "./apps",
                "prune": True,
                "sourceRef": source_ref,
                "dependsOn": [{"name": "infrastructure"}],
            },
        ),
        _flux(
            "HelmRelease",
            "ingress-nginx",
            {
                "interval": "30m",
                "chart": {
                    "spec": {
                        "chart": "ingress-nginx",
                        "version": "4.11.3",
                        "sourceRef": {"kind": "HelmRepository", "name": "ingress-nginx"},
                    }
                },
            },
            namespace="infrastructure",
            labels={ks_label: "infrastructure", ns_label: "flux-system"},
        ),
        _flux(
            "HelmRelease",
            "nextcloud",
            {
                "interval": "30m",
                "chart": {
                    "spec": {
                        "chart": "nextcloud",
                        "version": "6.2.0",
                        "sourceRef": {"kind": "HelmRepository", "name": "nextcloud"},
                    }
                },
            },
            namespace="apps",
            labels={ks_label: "apps", ns_label: "flux-system"},
        ),
        _workload(
            "Deployment", "gitea", "gitea", 1, kustomization="gitea", image="gitea/gitea:1.22.3"
        ),
        _workload(
            "StatefulSet",
            "gitea",
            "gitea-postgresql",
            1,
            kustomization="gitea",
            image="bitnami/postgresql:16.4.0",
        ),
        _workload(
            "Deployment", "apps", "whoami", 2, kustomization="apps", image="traefik/whoami:v1.10"
        ),
        _workload(
            "Deployment",
            "apps",
            "homepage",
            1,
            kustomization="apps",
            image="ghcr.io/gethomepage/homepage:v0.9.10",
        ),
        _workload(
            "Deployment",
            "kube-system",
            "coredns",
            1,
            kustomization=None,
            image="rancher/mirrored-coredns-coredns:1.11.3",
        ),
    ]
    return {"config": copy.deepcopy(kube_standin.DEFAULT_CONFIG), "objects": objects}


# ------------------------------------------------------------------------------------------------
# Leftovers


def _process_start(pid: int) -> str | None:
    """The start time (clock ticks since boot) of process ``pid``, or None if there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def owner_label() -> str:
    """``PID:STARTTIME`` of this process: who owns the containers it makes."""
    pid = os.getpid()
    return f"{pid}:{_process_start(pid)}"


def _owner_alive(owner: str) -> bool:
    pid, _, start = owner.partition(":")
    return pid.isdigit() and _process_start(int(pid)) == start


# Every root container's systemd takes inotify instances of the host's root user; past
# fs.inotify.max_user_instances (128 by default) systemd logs "Failed to create inotify object"
# and sshd never starts, which used to show up only as an SSH timeout at about 26 nodes.
INOTIFY_PER_NODE = 6
INOTIFY_WATCHES_PER_NODE = 2_000
INOTIFY_HEADROOM = 16
_INOTIFY_SYSCTL = Path("/proc/sys/fs/inotify")


def inotify_instances_in_use(uid: int = 0) -> int:
    """Inotify instances open by processes of `uid` (what max_user_instances counts)."""
    used = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if proc.stat().st_uid != uid:
                continue
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if str(fd.readlink()) == "anon_inode:inotify":
                        used += 1
        except OSError:  # the process went away or hides its fds
            continue
    return used


def inotify_shortfall(nodes: int, *, sysctl_dir: Path = _INOTIFY_SYSCTL) -> list[str]:
    """What to raise, as `sysctl -w` lines, before `nodes` more containers can boot (empty: ok)."""
    try:
        instances = int((sysctl_dir / "max_user_instances").read_text())
        watches = int((sysctl_dir / "max_user_watches").read_text())
    except (OSError, ValueError):
        return []  # not Linux-like enough to tell; let the boot itself decide
    need = inotify_instances_in_use() + INOTIFY_PER_NODE * nodes + INOTIFY_HEADROOM
    fixes: list[str] = []
    if need > instances:
        want = max(1024, 1 << (need - 1).bit_length())
        fixes.append(f"sysctl -w fs.inotify.max_user_instances={want}  (now {instances})")
    if INOTIFY_WATCHES_PER_NODE * nodes > watches:
        want = max(524288, INOTIFY_WATCHES_PER_NODE * nodes * 2)
        fixes.append(f"sysctl -w fs.inotify.max_user_watches={want}  (now {watches})")
    return fixes


def check_host_limits(nodes: int) -> None:
    """Refuse up front, saying exactly what to raise, when the host cannot boot `nodes` nodes."""
    fixes = inotify_shortfall(nodes)
    if fixes:
        raise TwinError(
            f"this host cannot boot {nodes} more twin nodes: their systemd would run out of "
            "inotify instances and sshd would never start. As root, raise:\n  " + "\n  ".join(fixes)
        )


def remove_leftovers() -> list[str]:
    """Remove twin containers of dead runs; return their names.

    A container is a leftover when its owner process is gone (a crashed test run) or, for twins
    started by ``scripts/testbed`` (label ``hecate.testbed.keep``), when their state dir is gone.
    Temp work dirs of removed leftovers are deleted too.
    """
    listing = podman("ps", "-a", "--filter", f"label={LABEL}=1", "--format", "json")
    containers: list[dict[str, Any]] = json.loads(listing.stdout or "[]")
    stale: list[str] = []
    dirs: set[str] = set()
    for container in containers:
        labels: dict[str, str] = container.get("Labels") or {}
        keep = labels.get(LABEL_KEEP)
        dead = not Path(keep).exists() if keep else not _owner_alive(labels.get(LABEL_OWNER, ""))
        if dead:
            stale.append(container["Names"][0])
            if labels.get(LABEL_DIR) and not keep:
                dirs.add(labels[LABEL_DIR])
    if stale:
        podman("rm", "-f", "-t", "0", *stale, check=False, timeout=120)
    for network in twin_etcd.networks(LABEL):
        labels = network.get("labels") or {}
        keep = labels.get(LABEL_KEEP)
        if not Path(keep).exists() if keep else not _owner_alive(labels.get(LABEL_OWNER, "")):
            twin_etcd.remove_network(network["name"])
    for directory in dirs:
        path = Path(directory)
        if path.name.startswith(TEMP_PREFIX) and path.parent == Path(tempfile.gettempdir()):
            shutil.rmtree(path, ignore_errors=True)
    return stale


# ------------------------------------------------------------------------------------------------
# The twin


def make_tls(directory: Path) -> None:
    """A CA and a server certificate for ``127.0.0.1``/``localhost`` (like k3s's server-ca),
    made with the ``openssl`` command; kept if already there."""
    if (directory / "server.crt").exists():
        return
    if shutil.which("openssl") is None:
        raise TwinError("openssl is needed to make the twin's API certificate (apt openssl)")
    directory.mkdir(parents=True, exist_ok=True)
    ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
    (directory / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
        "DNS:kubernetes.default.svc\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
    )
    ca_subject = f"/CN=k3s-server-ca@{int(time.time())}"
    commands = [
        f"openssl req -x509 {ec} -keyout ca.key -out ca.crt -days 3650 -subj {ca_subject}",
        f"openssl req -new {ec} -keyout server.key -out server.csr -subj /O=k3s/CN=k3s",
        "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
        "-out server.crt -days 3650 -extfile server.ext",
    ]
    for command in commands:
        argv = command.split()
        result = subprocess.run(
            argv, cwd=directory, capture_output=True, text=True, timeout=30, check=False
        )
        if result.returncode != 0:
            raise TwinError(f"{' '.join(argv)} failed: {result.stderr}")
    for key in ("ca.key", "server.key"):
        (directory / key).chmod(0o600)


def clock_file(offset_seconds: int, *, ntp_synchronized: bool) -> bytes:
    """The node's /etc/hecate-twin/clock (sourced by node/date and node/timedatectl)."""
    synced = "yes" if ntp_synchronized else "no"
    return f"offset_seconds={int(offset_seconds)}\nntp_synchronized={synced}\n".encode()


def _free_ports(count: int) -> list[int]:
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def wait_until(
    predicate: Callable[[], bool], timeout: float, message: str, interval: float = 0.2
) -> float:
    """Poll ``predicate`` until true; return the seconds it took. Raises TwinError on timeout."""
    started = time.monotonic()
    deadline = started + timeout
    while True:
        with contextlib.suppress(TwinApiDownError):
            if predicate():
                return time.monotonic() - started
        if time.monotonic() >= deadline:
            raise TwinError(f"timed out after {timeout:.0f} s: {message}")
        time.sleep(interval)


class Twin:
    """A k3s cluster twin: ``servers`` k3s servers and ``agents`` agents as podman containers.

    ``workdir`` holds the twin's key pair, kubeconfig, known_hosts and shared state (a temp dir
    when None, removed by :meth:`destroy`). ``seed`` is a seed dict (see :func:`default_seed`) or
    a path to a JSON one; ``config`` is merged into the seed's ``config``.
    """

    def __init__(
        self,
        servers: int = 1,
        agents: int = 2,
        workdir: Path | None = None,
        seed: Mapping[str, Any] | Path | None = None,
        *,
        config: Mapping[str, Any] | None = None,
        prefix: str = "twin",
        image: str | None = None,
        keep: bool = False,
        start_timeout: float = 90.0,
    ) -> None:
        if servers < 1 or agents < 0:
            raise ValueError("a twin needs at least one server and no negative agents")
        self.servers_count = servers
        self.agents_count = agents
        self._own_workdir = workdir is None
        self.workdir = (
            Path(tempfile.mkdtemp(prefix=TEMP_PREFIX)) if workdir is None else Path(workdir)
        )
        if isinstance(seed, Path):
            self._seed: dict[str, Any] = json.loads(seed.read_text(encoding="utf-8"))
        else:
            self._seed = copy.deepcopy(dict(seed)) if seed is not None else default_seed()
        if config:
            self._seed["config"] = kube_standin.merge_patch(
                self._seed.get("config") or {}, dict(config)
            )
        self.prefix = prefix
        self.image = image
        self.keep = keep
        self.start_timeout = start_timeout
        self.run_id = secrets.token_hex(4)
        self.token = secrets.token_hex(24)
        self.server_password = secrets.token_hex(16)  # k3s's server token (cluster-reset)
        self.nodes: list[TwinNode] = []
        self.started_seconds: float | None = None
        self._tls: ssl.SSLContext | None = None

    # -- paths and views ------------------------------------------------------------------------

    @property
    def state_dir(self) -> Path:
        return self.workdir / "state"

    @property
    def network(self) -> str:
        """The twin's own podman network (fixed node addresses: etcd's peer URLs)."""
        return f"hecate-{self.prefix}-{self.run_id}"

    @property
    def etcd_tls_dir(self) -> Path:
        return self.workdir / "etcd-tls"

    @property
    def server_token(self) -> str:
        """k3s's server token (``/var/lib/rancher/k3s/server/token`` on every server)."""
        return twin_etcd.server_token(self.etcd_tls_dir, self.server_password)

    @property
    def ssh_key(self) -> Path:
        return self.workdir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.workdir / "known_hosts"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig.yaml"

    @property
    def seed_path(self) -> Path:
        return self.state_dir / "seed.json"

    @property
    def ca_cert(self) -> Path:
        """The CA that signed the API's certificate (also in the kubeconfig)."""
        return self.state_dir / "tls" / "ca.crt"

    @property
    def ssh_user(self) -> str:
        return SSH_USER

    @property
    def servers(self) -> list[TwinNode]:
        return [n for n in self.nodes if n.role == "server"]

    @property
    def agents(self) -> list[TwinNode]:
        return [n for n in self.nodes if n.role == "agent"]

    @property
    def api_urls(self) -> dict[str, str]:
        """The API URL of each server, by node name."""
        return {n.name: n.api_url for n in self.servers if n.api_url}

    @property
    def api_url(self) -> str:
        """The primary server's API URL (the one in the kubeconfig)."""
        url = self.servers[0].api_url if self.nodes else None
        if url is None:
            raise TwinError("the twin is not started")
        return url

    def node(self, ref: TwinNode | str) -> TwinNode:
        name = ref.name if isinstance(ref, TwinNode) else ref
        for node in self.nodes:
            if name in (node.name, node.container):
                return node
        raise KeyError(f"no node {name!r} in this twin")

    def ssh_node_hosts(self) -> dict[str, str]:
        """Node name -> ``127.0.0.1:PORT`` (Hecate's ``ssh_node_hosts`` setting)."""
        return {n.name: f"127.0.0.1:{n.ssh_port}" for n in self.nodes}

    def ansible_inventory(self, user: str | None = None) -> dict[str, Any]:
        """An Ansible inventory (YAML/JSON form) with groups ``servers`` and ``agents``."""

        def host(node: TwinNode) -> dict[str, Any]:
            return {
                "ansible_host": "127.0.0.1",
                "ansible_port": node.ssh_port,
                "ansible_user": user or SSH_USER,
                "ansible_ssh_private_key_file": str(self.ssh_key),
                "ansible_ssh_common_args": (
                    f"-o UserKnownHostsFile={self.known_hosts} "
                    "-o StrictHostKeyChecking=accept-new -o IdentitiesOnly=yes"
                ),
            }

        return {
            "all": {
                "children": {
                    "servers": {"hosts": {n.name: host(n) for n in self.servers}},
                    "agents": {"hosts": {n.name: host(n) for n in self.agents}},
                }
            }
        }

    # -- life cycle -----------------------------------------------------------------------------

    def __enter__(self) -> Self:
        if not self.nodes:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.destroy()

    def start(self) -> Self:
        """Create and boot the nodes; return once SSH, the API and every Node are Ready."""
        if self.nodes:
            raise TwinError("this twin is started already")
        began = time.monotonic()
        try:
            image = self.image or ensure_image()
            remove_leftovers()
            check_host_limits(self.servers_count + self.agents_count)
            self._prepare_workdir()
            self._create_nodes(image)
            self.wait_ready(self.start_timeout)
        except BaseException:
            self.destroy()
            raise
        self.started_seconds = time.monotonic() - began
        self._save()
        return self

    def _prepare_workdir(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.state_dir.mkdir(exist_ok=True)
        if not self.ssh_key.exists():
            subprocess.run(
                [
                    "ssh-keygen",
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    f"hecate-twin-{self.run_id}",
                    "-f",
                    str(self.ssh_key),
                ],
                check=True,
                capture_output=True,
                timeout=30,
            )
        self.known_hosts.write_text("")
        make_tls(self.state_dir / "tls")
        token_file = self.state_dir / "token"
        token_file.write_text(self.token + "\n")
        token_file.chmod(0o600)
        seed = copy.deepcopy(self._seed)
        config = seed.setdefault("config", {})
        if not config.get("initialNodes"):  # spread the seed's pods over every node
            config["initialNodes"] = [name for name, _ in self._planned_nodes()]
            # On a loaded host the last agent can register well after the first server seeds;
            # wait as long as the twin's own start may take, or its pods all land on the servers.
            config.setdefault("initialNodesWaitSeconds", self.start_timeout)
        self.seed_path.write_text(json.dumps(seed, indent=1), encoding="utf-8")

    def _labels(self, node: str | None) -> list[str]:
        """The run's labels (and the node's, for a container)."""
        labels = {
            LABEL: "1",
            LABEL_RUN: self.run_id,
            LABEL_OWNER: owner_label(),
            LABEL_DIR: str(self.workdir),
        }
        if node is not None:
            labels[LABEL_NODE] = node
        if self.keep:
            labels[LABEL_KEEP] = str(self.workdir)
        return [arg for key, value in labels.items() for arg in ("--label", f"{key}={value}")]

    def _planned_nodes(self) -> list[tuple[str, Role]]:
        servers: list[tuple[str, Role]] = [
            (f"{self.prefix}-s{i}", "server") for i in range(1, self.servers_count + 1)
        ]
        agents: list[tuple[str, Role]] = [
            (f"{self.prefix}-a{i}", "agent") for i in range(1, self.agents_count + 1)
        ]
        return servers + agents

    def _create_nodes(self, image: str) -> None:
        roles = self._planned_nodes()
        ports = iter(_free_ports(len(roles) + self.servers_count))
        addresses = iter(twin_etcd.create_network(self.network, self._labels(None)))
        planned = [(name, role, next(addresses)) for name, role in roles]
        servers = {name: ip for name, role, ip in planned if role == "server"}
        twin_etcd.make_etcd_tls(self.etcd_tls_dir, servers)
        for name, role, ip in planned:
            node = TwinNode(
                name=name,
                role=role,
                ssh_port=next(ports),
                container=f"hecate-{self.prefix}-{self.run_id}-{name}",
                api_port=next(ports) if role == "server" else None,
                ip=ip,
            )
            publish = ["-p", f"127.0.0.1:{node.ssh_port}:22"]
            if node.api_port:
                publish += ["-p", f"127.0.0.1:{node.api_port}:{kube_standin.API_PORT}"]
            podman(
                "create",
                "--name",
                node.container,
                "--hostname",
                name,
                "--systemd=always",
                "--stop-timeout",
                "5",
                *self._labels(name),
                *publish,
                "--network",
                self.network,
                "--ip",
                ip,
                "-v",
                f"{self.state_dir}:{SHARED_IN_NODE}:rw",
                image,
            )
            self.nodes.append(node)
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(self._copy_files, self.nodes))
        podman("start", *(n.container for n in self.nodes), timeout=120)

    def _node_tar(self, node: TwinNode) -> bytes:
        """Files copied into a node before its first boot (``cp --archive=false`` keeps owners)."""
        buffer = io.BytesIO()
        public_key = (self.ssh_key.with_suffix(".pub")).read_bytes()
        unit = f"{node.unit}.service"
        servers = {n.name: n.ip or "" for n in self.servers}
        conf: dict[str, Any] = {"name": node.name, "role": node.role, "stateDir": SHARED_IN_NODE}
        if node.role == "server":
            conf["etcd"] = twin_etcd.node_etcd_conf(node.name, servers, f"twin-{self.run_id}")
            etcd_files = twin_etcd.server_files(self.etcd_tls_dir, node.name, self.server_token)
        else:
            conf["etcdClient"] = twin_etcd.agent_client_conf(servers)
            etcd_files = twin_etcd.agent_files(self.etcd_tls_dir)
        node_conf = json.dumps(conf).encode()
        with tarfile.open(fileobj=buffer, mode="w") as tar:

            def add(
                path: str,
                data: bytes | None = None,
                mode: int = 0o644,
                uid: int = 0,
                link: str | None = None,
            ) -> None:
                info = tarfile.TarInfo(path)
                info.uid = info.gid = uid
                info.mtime = int(time.time())
                info.mode = mode
                if link is not None:
                    info.type = tarfile.SYMTYPE
                    info.linkname = link
                    tar.addfile(info)
                elif data is None:
                    info.type = tarfile.DIRTYPE
                    tar.addfile(info)
                else:
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))

            add("usr/local/lib/hecate-twin", mode=0o755)
            add(
                "usr/local/lib/hecate-twin/kube_standin.py",
                (NODE_FILES / "kube_standin.py").read_bytes(),
                0o755,
            )
            for module in ("standin_behaviour.py", "etcd_client.py", "etcd_member.py"):
                # what kube_standin.py imports (from its own directory)
                add(f"usr/local/lib/hecate-twin/{module}", (NODE_FILES / module).read_bytes())
            made: set[str] = set()
            for path, data, mode in etcd_files:
                parts = path.strip("/").split("/")
                for depth in range(1, len(parts)):
                    folder = "/".join(parts[:depth])
                    if folder not in made and depth > 2:  # /var/lib, /etc/x exist in the image
                        add(folder, mode=0o700 if "tls" in folder else 0o755)
                        made.add(folder)
                add(path.strip("/"), data, mode)
            add("usr/local/bin/k3s", (NODE_FILES / "k3s").read_bytes(), 0o755)
            add("usr/local/bin/k3s-killall.sh", (NODE_FILES / "k3s-killall.sh").read_bytes(), 0o755)
            add("usr/local/bin/timedatectl", (NODE_FILES / "timedatectl").read_bytes(), 0o755)
            add("usr/local/bin/date", (NODE_FILES / "date").read_bytes(), 0o755)
            add("etc/hecate-twin", mode=0o755)
            add("etc/hecate-twin/node.json", node_conf)
            add("etc/hecate-twin/clock", clock_file(0, ntp_synchronized=True))
            add(f"etc/systemd/system/{unit}", (NODE_FILES / unit).read_bytes())
            add(
                f"etc/systemd/system/multi-user.target.wants/{unit}",
                link=f"/etc/systemd/system/{unit}",
            )
            add("root/.ssh/authorized_keys", public_key, 0o600)
            add("home/hecate/.ssh/authorized_keys", public_key, 0o600, uid=HECATE_UID)
        return buffer.getvalue()

    def _copy_files(self, node: TwinNode) -> None:
        # podman cp now and then loses its own pipe on a loaded host ("passing bulk input to
        # subprocess: write |1: broken pipe"); the copy is idempotent, so it is tried again,
        # a bounded number of times.
        data = self._node_tar(node)
        errors = []
        for attempt in range(COPY_ATTEMPTS):
            if attempt:
                time.sleep(1.0)
            proc = subprocess.run(
                ["podman", "cp", "--archive=false", "-", f"{node.container}:/"],
                input=data,
                capture_output=True,
                timeout=60,
                check=False,
                env=podman_env(),
            )
            if proc.returncode == 0:
                return
            errors.append(proc.stderr.decode(errors="replace").strip())
        raise TwinError(f"podman cp into {node.container} failed {COPY_ATTEMPTS} times: {errors}")

    def wait_ready(self, timeout: float = 60.0, nodes: Iterable[TwinNode] | None = None) -> None:
        """Wait until SSH answers on the nodes, the API is ready and their Nodes are Ready."""
        targets = list(nodes) if nodes is not None else list(self.nodes)
        deadline = time.monotonic() + timeout
        with ThreadPoolExecutor(max_workers=max(len(targets), 1)) as pool:
            list(pool.map(lambda n: self.wait_ssh(n, deadline - time.monotonic()), targets))
        wait_until(
            self.api_ready, max(deadline - time.monotonic(), 1.0), "the twin's API is not ready"
        )
        names = {n.name for n in targets}
        wait_until(
            lambda: names <= {k for k, v in self.nodes_ready().items() if v},
            max(deadline - time.monotonic(), 1.0),
            f"Nodes {sorted(names)} are not Ready",
        )
        self._write_kubeconfig()

    def destroy(self, *, remove_workdir: bool | None = None) -> None:
        """Remove the containers (and the work dir if the twin made it). Idempotent."""
        errors = ""
        for _ in range(3):
            listing = podman(
                "ps",
                "-a",
                "--filter",
                f"label={LABEL_RUN}={self.run_id}",
                "--format",
                "{{.Names}}",
                check=False,
            )
            names = listing.stdout.split()
            if not names:
                break
            removed = podman("rm", "-f", "-t", "0", *names, check=False, timeout=120)
            errors += removed.stderr
        else:
            raise TwinError(f"could not remove the twin's containers {names}: {errors}")
        twin_etcd.remove_network(self.network)
        if remove_workdir if remove_workdir is not None else self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- persistence for scripts/testbed --------------------------------------------------------

    def _save(self) -> None:
        data = {
            "run_id": self.run_id,
            "token": self.token,
            "server_password": self.server_password,
            "prefix": self.prefix,
            "nodes": [asdict(n) for n in self.nodes],
        }
        (self.workdir / "twin.json").write_text(json.dumps(data, indent=1))

    @classmethod
    def attach(cls, workdir: Path) -> Twin:
        """A handle on a twin started earlier (by another process) in ``workdir``."""
        data = json.loads((workdir / "twin.json").read_text())
        nodes = [TwinNode(**n) for n in data["nodes"]]
        twin = cls(
            servers=sum(1 for n in nodes if n.role == "server"),
            agents=sum(1 for n in nodes if n.role == "agent"),
            workdir=workdir,
            seed={"objects": []},
            prefix=data["prefix"],
        )
        twin.run_id, twin.token, twin.nodes = data["run_id"], data["token"], nodes
        twin.server_password = data.get("server_password", twin.server_password)
        return twin

    def _write_kubeconfig(self) -> None:
        ca_data = base64.b64encode(self.ca_cert.read_bytes()).decode()
        lines = ["apiVersion: v1", "kind: Config", "clusters:"]
        for server in self.servers:
            lines += [
                f"- name: {server.name}",
                "  cluster:",
                f"    certificate-authority-data: {ca_data}",
                f"    server: {server.api_url}",
            ]
        lines.append("contexts:")
        for server in self.servers:
            lines += [
                f"- name: {server.name}",
                "  context:",
                f"    cluster: {server.name}",
                "    user: hecate-twin",
            ]
        lines += [
            f"current-context: {self.servers[0].name}",
            "preferences: {}",
            "users:",
            "- name: hecate-twin",
            "  user:",
            f"    token: {self.token}",
            "",
        ]
        self.kubeconfig.write_text("\n".join(lines))
        self.kubeconfig.chmod(0o600)

    # -- nodes: exec, SSH, units, power ---------------------------------------------------------

    def exec(
        self, node: TwinNode | str, *argv: str, timeout: float = 60.0, user: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``podman exec`` in the node (as root unless ``user``); never raises on exit codes."""
        target = self.node(node)
        extra = ["--user", user] if user else []
        return podman("exec", *extra, target.container, *argv, check=False, timeout=timeout)

    def set_clock(
        self, node: TwinNode | str, offset_seconds: int = 0, *, ntp_synchronized: bool = True
    ) -> None:
        """What the node's clock looks like to `date` and `timedatectl` (node/date,
        node/timedatectl): shifted by ``offset_seconds``, NTP-synchronised or not."""
        target = self.node(node)
        data = clock_file(offset_seconds, ntp_synchronized=ntp_synchronized).decode()
        result = self.exec(target, "sh", "-c", f"printf '%s' '{data}' > /etc/hecate-twin/clock")
        if result.returncode != 0:
            raise TwinError(f"set_clock on {target.name} failed: {result.stderr}")

    def ssh_argv(
        self, node: TwinNode | str, user: str | None = None, *, batch: bool = True
    ) -> list[str]:
        """An ``ssh`` command line for the node (append the remote command)."""
        target = self.node(node)
        quiet = ["-o", "BatchMode=yes", "-o", "LogLevel=ERROR"] if batch else []
        return [
            "ssh",
            "-F",
            "/dev/null",
            "-i",
            str(self.ssh_key),
            "-p",
            str(target.ssh_port),
            "-o",
            "IdentitiesOnly=yes",
            *quiet,
            "-o",
            "StrictHostKeyChecking=accept-new",
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "ConnectTimeout=5",
            f"{user or SSH_USER}@127.0.0.1",
        ]

    def ssh(
        self, node: TwinNode | str, command: str, *, user: str | None = None, timeout: float = 30.0
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` on the node over real SSH (as ``hecate`` unless ``user``)."""
        try:
            return subprocess.run(
                [*self.ssh_argv(node, user), command],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            return subprocess.CompletedProcess(exc.cmd, 255, "", f"timed out after {timeout} s")

    def wait_ssh(self, node: TwinNode | str, timeout: float = 30.0) -> float:
        """Wait until the node accepts ``hecate``'s key over SSH."""
        target = self.node(node)
        return wait_until(
            lambda: self.ssh(target, "true", timeout=10).returncode == 0,
            max(timeout, 1.0),
            f"SSH to {target.name} does not answer",
            interval=0.3,
        )

    def systemctl(
        self, node: TwinNode | str, *args: str, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        return self.exec(node, "systemctl", *args, timeout=timeout)

    def unit_active(self, node: TwinNode | str, unit: str | None = None) -> bool:
        """Whether ``unit`` (default: the node's k3s unit) is active."""
        target = self.node(node)
        result = self.systemctl(target, "is-active", "--quiet", unit or target.unit)
        return result.returncode == 0

    def start_unit(
        self, node: TwinNode | str, unit: str | None = None, *, block: bool = True
    ) -> None:
        target = self.node(node)
        args = ["start", unit or target.unit] + ([] if block else ["--no-block"])
        result = self.systemctl(target, *args)
        if result.returncode != 0:
            raise TwinError(f"systemctl start on {target.name} failed: {result.stderr}")

    def stop_unit(self, node: TwinNode | str, unit: str | None = None) -> None:
        target = self.node(node)
        result = self.systemctl(target, "stop", unit or target.unit)
        if result.returncode != 0:
            raise TwinError(f"systemctl stop on {target.name} failed: {result.stderr}")

    def kill_unit(
        self, node: TwinNode | str, unit: str | None = None, signal: str = "KILL"
    ) -> None:
        """Crash the unit's processes (``systemctl kill``); ``Restart=always`` restarts it 5 s
        later, as a real k3s unit would."""
        target = self.node(node)
        self.systemctl(target, "kill", f"--signal={signal}", unit or target.unit)

    def poweroff(self, node: TwinNode | str, timeout: float = 20.0) -> None:
        """Cut the node's power: ``podman kill`` (no shutdown, no goodbye)."""
        target = self.node(node)
        podman("kill", target.container, check=False)
        wait_until(
            lambda: not self.is_running(target),
            timeout,
            f"{target.name} is still running after podman kill",
        )

    def power_on(self, node: TwinNode | str, *, wait: bool = True, timeout: float = 60.0) -> None:
        """Start the node's container again (same ports, same disk); with ``wait``, until SSH
        answers."""
        target = self.node(node)
        podman("start", target.container, timeout=60)
        if wait:
            self.wait_ssh(target, timeout)

    def is_running(self, node: TwinNode | str) -> bool:
        """False once the container has exited: the node is powered off."""
        target = self.node(node)
        result = podman("inspect", "--format", "{{.State.Running}}", target.container, check=False)
        return result.stdout.strip() == "true"

    def memory_bytes(self) -> int:
        """Memory the twin's containers use now (cgroup usage less inactive file cache)."""
        total = 0
        for node in self.nodes:
            result = podman(
                "inspect", "--format", "{{.State.CgroupPath}}", node.container, check=False
            )
            path = result.stdout.strip()
            if not path:
                continue
            total += _cgroup_memory(path)
        return total

    # -- the API --------------------------------------------------------------------------------

    def api(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str | None = None,
        server: TwinNode | str | None = None,
        timeout: float = 10.0,
    ) -> tuple[int, Any]:
        """One request to the API (``server``'s, default the primary): ``(status, json)``.

        ``body`` is sent as JSON with ``content_type`` (default ``application/json``, or
        ``application/merge-patch+json`` for PATCH). Raises :class:`TwinApiDownError` when no
        HTTP answer comes (k3s stopped or node off); HTTP errors are returned, not raised.
        """
        base = self.node(server).api_url if server is not None else self.api_url
        data = None if body is None else json.dumps(body).encode()
        ctype = content_type or (
            "application/merge-patch+json" if method == "PATCH" else "application/json"
        )
        request = urllib.request.Request(  # noqa: S310 - always http://127.0.0.1:PORT
            f"{base}{path}", data=data, method=method
        )
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", ctype)
        if self._tls is None:
            self._tls = ssl.create_default_context(cafile=str(self.ca_cert))
        try:
            with urllib.request.urlopen(  # noqa: S310
                request, timeout=timeout, context=self._tls
            ) as response:
                return response.status, _decode(response.read())
        except urllib.error.HTTPError as err:
            with err:
                return err.code, _decode(err.read())
        except (urllib.error.URLError, OSError) as exc:
            raise TwinApiDownError(f"{method} {base}{path}: {exc}") from exc

    def api_ready(self, server: TwinNode | str | None = None) -> bool:
        """Whether ``/readyz`` answers ok (on ``server``, default: any server)."""
        targets = [self.node(server)] if server is not None else self.servers
        for target in targets:
            try:
                status, _ = self.api("GET", "/readyz", server=target, timeout=3)
            except TwinApiDownError:
                continue
            if status == 200:
                return True
        return False

    def live_server(self) -> TwinNode:
        """A server whose API answers (the primary first)."""
        for target in self.servers:
            if self.api_ready(target):
                return target
        raise TwinApiDownError("no server of the twin answers")

    def get(self, path: str) -> Any:
        """GET through any live server; raises TwinError on a non-200 answer."""
        status, body = self.api("GET", path, server=self.live_server())
        if status != 200:
            raise TwinError(f"GET {path}: {status} {body}")
        return body

    def nodes_ready(self) -> dict[str, bool]:
        """Node name -> Ready condition is True (from the API, through any live server)."""
        listing = self.get("/api/v1/nodes")
        return {item["metadata"]["name"]: kube_standin.is_ready(item) for item in listing["items"]}

    def wait_node_ready(
        self, node: TwinNode | str, ready: bool = True, timeout: float = 15.0
    ) -> float:
        """Wait until the Node's Ready condition is (or is no longer) True; return the seconds."""
        name = self.node(node).name
        return wait_until(
            lambda: self.nodes_ready().get(name, False) == ready,
            timeout,
            f"Node {name} Ready={ready}",
            interval=0.25,
        )

    def set_config(self, patch: Mapping[str, Any]) -> dict[str, Any]:
        """Merge-patch the stand-in's settings (e.g. ``{"gitea": {"branches": {...}}}``).

        Through any live server's ``/twin/v1/config``: the settings are in etcd with the objects,
        so this needs quorum (TwinApiDownError without it).
        """
        status, body = self.api("PATCH", "/twin/v1/config", dict(patch), server=self.live_server())
        if status != 200:
            raise TwinError(f"PATCH /twin/v1/config: {status} {body}")
        return dict(body)


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def _cgroup_memory(cgroup_path: str) -> int:
    v1 = Path("/sys/fs/cgroup/memory") / cgroup_path.lstrip("/")
    v2 = Path("/sys/fs/cgroup") / cgroup_path.lstrip("/")
    if (v1 / "memory.usage_in_bytes").exists():
        usage = int((v1 / "memory.usage_in_bytes").read_text())
        stat_file = v1 / "memory.stat"
        inactive_key = "total_inactive_file"
    elif (v2 / "memory.current").exists():
        usage = int((v2 / "memory.current").read_text())
        stat_file = v2 / "memory.stat"
        inactive_key = "inactive_file"
    else:
        return 0
    stats = dict(line.split() for line in stat_file.read_text().splitlines() if " " in line)
    return max(usage - int(stats.get(inactive_key, 0)), 0)
