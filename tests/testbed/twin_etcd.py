"""The twin's etcd, host side: its network, certificates, server token and the nodes' etcd config.

Each twin has its own podman network (``hecate-<prefix>-<run>``, a free /24 podman picks) and
fixed node addresses in it (``.11`` up), so etcd's peer URLs stay true across power cycles. The
servers' members use k3s's layout (see ``node/etcd_member.py``)::

    /var/lib/rancher/k3s/server/db/etcd            data dir
    /var/lib/rancher/k3s/server/db/snapshots       k3s etcd-snapshot save
    /var/lib/rancher/k3s/server/tls/etcd/          server-ca.crt/.key, server-client.crt/.key,
                                                   peer-ca.crt/.key, peer-server-client.crt/.key,
                                                   client.crt/.key
    /var/lib/rancher/k3s/server/token              K10<sha256 of server-ca.crt>::server:<hex>

Client URLs ``https://127.0.0.1:2379`` and ``https://<node-ip>:2379``, peer ``https://<ip>:2380``;
member name = node name. The CAs are made per twin (openssl) under ``<workdir>/etcd-tls``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.testbed.image import podman

SERVER_DIR = "/var/lib/rancher/k3s/server"
TLS_DIR = f"{SERVER_DIR}/tls/etcd"
DATA_DIR = f"{SERVER_DIR}/db/etcd"
SNAPSHOT_DIR = f"{SERVER_DIR}/db/snapshots"
TOKEN_FILE = f"{SERVER_DIR}/token"
AGENT_TLS_DIR = "/etc/hecate-twin/etcd-client"
BOOTSTRAP_MARKER = "/etc/hecate-twin/etcd-bootstrapped"
CLIENT_PORT = 2379
PEER_PORT = 2380
FIRST_HOST = 11  # node addresses: .11, .12, ... of the twin's network


class TwinNetworkError(RuntimeError):
    """The twin's podman network could not be made."""


def create_network(name: str, labels: list[str]) -> list[str]:
    """Make the twin's network; return the addresses its nodes get, in order (.11 up)."""
    podman("network", "create", *labels, name)
    listing = podman("network", "inspect", name, "--format", "{{range .Subnets}}{{.Subnet}}{{end}}")
    try:
        subnet = ipaddress.ip_network(listing.stdout.strip())
    except ValueError as exc:
        raise TwinNetworkError(f"network {name}: no subnet in {listing.stdout!r}") from exc
    hosts = list(subnet.hosts())
    return [str(h) for h in hosts[FIRST_HOST - 1 :]]


def remove_network(name: str) -> None:
    podman("network", "rm", "-f", name, check=False)


def networks(label: str) -> list[dict[str, Any]]:
    """The twin networks (``podman network ls`` JSON) that carry ``label=1``."""
    listing = podman("network", "ls", "--filter", f"label={label}=1", "--format", "json")
    found: list[dict[str, Any]] = json.loads(listing.stdout or "[]")
    return found


def _openssl(directory: Path, command: str) -> None:
    argv = command.split()
    result = subprocess.run(
        argv, cwd=directory, capture_output=True, text=True, timeout=30, check=False
    )
    if result.returncode != 0:
        raise TwinNetworkError(f"{' '.join(argv)} failed: {result.stderr}")


EC = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"


def _cert(directory: Path, name: str, ca: str, cn: str, sans: list[str], usage: str) -> None:
    ext = directory / f"{name}.ext"
    lines = [f"extendedKeyUsage={usage}", "keyUsage=critical,digitalSignature,keyEncipherment"]
    if sans:
        lines.insert(0, "subjectAltName=" + ",".join(sans))
    ext.write_text("\n".join(lines) + "\n")
    _openssl(directory, f"openssl req -new {EC} -keyout {name}.key -out {name}.csr -subj /CN={cn}")
    _openssl(
        directory,
        f"openssl x509 -req -in {name}.csr -CA {ca}.crt -CAkey {ca}.key -CAcreateserial "
        f"-out {name}.crt -days 3650 -extfile {ext.name}",
    )
    (directory / f"{name}.key").chmod(0o600)


def make_etcd_tls(directory: Path, servers: dict[str, str]) -> None:
    """CAs ``server-ca`` and ``peer-ca`` for the twin, per server ``<name>/server-client`` and
    ``<name>/peer-server-client`` (SANs: its address, 127.0.0.1, localhost, its name), and one
    ``client`` certificate (k3s's ``client.crt``). Kept if already there."""
    if (directory / "client.crt").exists():
        return
    if shutil.which("openssl") is None:
        raise TwinNetworkError("openssl is needed to make the twin's etcd certificates")
    directory.mkdir(parents=True, exist_ok=True)
    for ca in ("server-ca", "peer-ca"):
        subject = f"/CN=etcd-{ca}@{secrets.token_hex(4)}"
        _openssl(
            directory,
            f"openssl req -x509 {EC} -keyout {ca}.key -out {ca}.crt -days 3650 -subj {subject}",
        )
        (directory / f"{ca}.key").chmod(0o600)
    _cert(directory, "client", "server-ca", "etcd-client", [], "clientAuth")
    for name, ip in servers.items():
        node_dir = directory / name
        node_dir.mkdir(exist_ok=True)
        for ca in ("server-ca", "peer-ca"):
            shutil.copyfile(directory / f"{ca}.crt", node_dir / f"{ca}.crt")
            shutil.copyfile(directory / f"{ca}.key", node_dir / f"{ca}.key")
        sans = [f"IP:{ip}", "IP:127.0.0.1", "DNS:localhost", f"DNS:{name}"]
        for cert, ca in (("server-client", "server-ca"), ("peer-server-client", "peer-ca")):
            _cert(node_dir, cert, ca, f"etcd-{cert}", sans, "serverAuth,clientAuth")
        for leftover in [*node_dir.glob("*.csr"), *node_dir.glob("*.ext"), *node_dir.glob("*.srl")]:
            leftover.unlink()


def server_token(tls_dir: Path, password: str) -> str:
    """k3s's full server token: ``K10<sha256 of the server CA>::server:<password>``."""
    digest = hashlib.sha256((tls_dir / "server-ca.crt").read_bytes()).hexdigest()
    return f"K10{digest}::server:{password}"


def server_files(tls_dir: Path, name: str, token: str) -> list[tuple[str, bytes, int]]:
    """(path in the node, content, mode) of a server's etcd TLS files and token."""
    files: list[tuple[str, bytes, int]] = []
    for base in ("server-ca", "peer-ca", "server-client", "peer-server-client"):
        for ext, mode in (("crt", 0o644), ("key", 0o600)):
            data = (tls_dir / name / f"{base}.{ext}").read_bytes()
            files.append((f"{TLS_DIR}/{base}.{ext}", data, mode))
    for ext, mode in (("crt", 0o644), ("key", 0o600)):
        files.append((f"{TLS_DIR}/client.{ext}", (tls_dir / f"client.{ext}").read_bytes(), mode))
    files.append((TOKEN_FILE, f"{token}\n".encode(), 0o600))
    return files


def agent_files(tls_dir: Path) -> list[tuple[str, bytes, int]]:
    """An agent's etcd client files (the stand-in's kubelet writes its Node through etcd)."""
    return [
        (f"{AGENT_TLS_DIR}/ca.crt", (tls_dir / "server-ca.crt").read_bytes(), 0o644),
        (f"{AGENT_TLS_DIR}/client.crt", (tls_dir / "client.crt").read_bytes(), 0o644),
        (f"{AGENT_TLS_DIR}/client.key", (tls_dir / "client.key").read_bytes(), 0o600),
    ]


def node_etcd_conf(name: str, servers: dict[str, str], cluster_token: str) -> dict[str, Any]:
    """``node.json``'s ``etcd`` on a server (see ``node/etcd_member.py``)."""
    ip = servers[name]
    return {
        "name": name,
        "dataDir": DATA_DIR,
        "clientUrls": [f"https://127.0.0.1:{CLIENT_PORT}", f"https://{ip}:{CLIENT_PORT}"],
        "peerUrl": f"https://{ip}:{PEER_PORT}",
        "initialCluster": {n: f"https://{a}:{PEER_PORT}" for n, a in servers.items()},
        "peerClientUrls": {n: f"https://{a}:{CLIENT_PORT}" for n, a in servers.items()},
        "clusterToken": cluster_token,
        "tlsDir": TLS_DIR,
        "bootstrapMarker": BOOTSTRAP_MARKER,
        "runDir": "/run/k3s-twin",
        "snapshotDir": SNAPSHOT_DIR,
        "tokenFile": TOKEN_FILE,
    }


def agent_client_conf(servers: dict[str, str]) -> dict[str, Any]:
    """``node.json``'s ``etcdClient`` on an agent: every server's member."""
    return {
        "endpoints": [f"https://{ip}:{CLIENT_PORT}" for ip in servers.values()],
        "ca": f"{AGENT_TLS_DIR}/ca.crt",
        "cert": f"{AGENT_TLS_DIR}/client.crt",
        "key": f"{AGENT_TLS_DIR}/client.key",
    }


def etcdctl_argv(endpoint: str = f"https://127.0.0.1:{CLIENT_PORT}") -> list[str]:
    """``etcdctl`` on a server with k3s's client certificate (append the command):
    ``twin.exec(server, *etcdctl_argv(), "member", "list", "-w", "json")``."""
    return [
        "etcdctl",
        f"--endpoints={endpoint}",
        f"--cacert={TLS_DIR}/server-ca.crt",
        f"--cert={TLS_DIR}/client.crt",
        f"--key={TLS_DIR}/client.key",
    ]
