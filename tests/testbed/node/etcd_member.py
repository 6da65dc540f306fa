"""The etcd member a twin server runs, as k3s's embedded etcd: started and stopped with k3s.

Stdlib only (runs with the node's python3). The node's settings (``/etc/hecate-twin/node.json``,
key ``etcd``; made by ``tests/testbed/twin.py``, or by ``standin_host.py`` on this host) says::

    {"name": "twin-s1", "dataDir": "/var/lib/rancher/k3s/server/db/etcd",
     "clientUrls": ["https://127.0.0.1:2379", "https://10.89.0.11:2379"],
     "peerUrl": "https://10.89.0.11:2380",
     "initialCluster": {"twin-s1": "https://10.89.0.11:2380", ...},
     "peerClientUrls": {"twin-s2": "https://10.89.0.12:2379", ...},
     "clusterToken": "...", "tlsDir": "/var/lib/rancher/k3s/server/tls/etcd",
     "bootstrapMarker": "/etc/hecate-twin/etcd-bootstrapped", "runDir": "/run/k3s-twin",
     "snapshotDir": "/var/lib/rancher/k3s/server/db/snapshots",
     "tokenFile": "/var/lib/rancher/k3s/server/token"}

How a member starts (:func:`start`), as k3s decides it:

* its data dir has a member: etcd starts on it (the initial-cluster flags are then ignored);
* empty, and this node never bootstrapped (no marker): the twin's first boot, a static bootstrap
  of every server (``--initial-cluster-state new``);
* empty otherwise (data lost or moved aside): it joins the existing cluster, as a k3s server with
  ``--server`` does: member list from a peer; if it is listed (same name and peer URL) it starts
  with ``--initial-cluster-state existing``, else ``member add`` first. No peer answering: it
  keeps asking (a single-server twin starts a new cluster instead).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

if __package__:  # imported by the tests (tests.testbed.node.etcd_member)
    from . import etcd_client as ec
else:  # imported by kube_standin.py run as a script: its directory is on sys.path
    import etcd_client as ec  # type: ignore[import-not-found,no-redef]

Obj = dict[str, Any]

RESET_DONE = (
    "Managed etcd cluster membership has been reset, restart without --cluster-reset flag now. "
    "Backup and delete ${datadir}/server/db on each peer etcd server and rejoin the nodes"
)


def client_tls(conf: Obj) -> ec.EtcdTls | None:
    """TLS of a server's own clients (k3s's ``client.crt``), None for a plain-http member."""
    tls_dir = conf.get("tlsDir")
    if not tls_dir:
        return None
    root = Path(tls_dir)
    return ec.EtcdTls(root / "server-ca.crt", root / "client.crt", root / "client.key")


def local_client(conf: Obj, timeout: float = 2.0) -> ec.EtcdClient:
    """A client of this node's own member (its first client URL)."""
    return ec.EtcdClient([conf["clientUrls"][0]], client_tls(conf), timeout)


def _has_member(data_dir: Path) -> bool:
    return (data_dir / "member").is_dir()


def _tls_flags(conf: Obj) -> list[str]:
    tls_dir = conf.get("tlsDir")
    if not tls_dir:
        return []
    root = Path(tls_dir)
    return [
        f"--cert-file={root / 'server-client.crt'}",
        f"--key-file={root / 'server-client.key'}",
        f"--trusted-ca-file={root / 'server-ca.crt'}",
        "--client-cert-auth",
        f"--peer-cert-file={root / 'peer-server-client.crt'}",
        f"--peer-key-file={root / 'peer-server-client.key'}",
        f"--peer-trusted-ca-file={root / 'peer-ca.crt'}",
        "--peer-client-cert-auth",
    ]


def etcd_argv(conf: Obj, cluster: dict[str, str] | None, state: str, *extra: str) -> list[str]:
    """etcd's command line; ``cluster`` None: start on the existing data (no bootstrap flags)."""
    urls = conf["clientUrls"]
    argv = [
        "etcd",
        f"--name={conf['name']}",
        f"--data-dir={conf['dataDir']}",
        f"--listen-client-urls={','.join(urls)}",
        f"--advertise-client-urls={urls[-1]}",
        f"--listen-peer-urls={conf['peerUrl']}",
        f"--initial-advertise-peer-urls={conf['peerUrl']}",
        "--logger=zap",
        "--log-level=warn",
        "--auto-compaction-mode=periodic",
        "--auto-compaction-retention=1m",
        *_tls_flags(conf),
    ]
    if cluster is not None:
        argv += [
            f"--initial-cluster={','.join(f'{n}={u}' for n, u in cluster.items())}",
            f"--initial-cluster-state={state}",
            f"--initial-cluster-token={conf.get('clusterToken', 'hecate-twin')}",
        ]
    return [*argv, *extra]


def _pid_file(conf: Obj) -> Path:
    return Path(conf.get("runDir") or "/run/k3s-twin") / "etcd.pid"


def kill_leftover(conf: Obj) -> None:
    """A member a crashed k3s left behind (KillMode=process) would hold the ports: end it."""
    pid_file = _pid_file(conf)
    try:
        pid = int(pid_file.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return
    if cmdline and Path(cmdline[0].decode()).name == "etcd":
        os.kill(pid, signal.SIGKILL)
        for _ in range(50):
            if not Path(f"/proc/{pid}").exists():
                break
            time.sleep(0.05)
    pid_file.unlink(missing_ok=True)


def spawn(argv: list[str], conf: Obj) -> subprocess.Popen[bytes]:
    # SIGKILL when k3s dies (even by SIGKILL, with KillMode=process), as an embedded etcd would.
    proc = subprocess.Popen(
        ["setpriv", "--pdeathsig", "KILL", "--", *argv], stdin=subprocess.DEVNULL, close_fds=True
    )
    pid_file = _pid_file(conf)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(f"{proc.pid}\n")
    return proc


def _log(message: str) -> None:
    print(f"k3s (twin etcd): {message}", file=sys.stderr, flush=True)


def join_cluster(conf: Obj, stopping: threading.Event) -> dict[str, str] | None:
    """The initial cluster to start with as ``existing`` (after ``member add`` if needed); None
    when stopping."""
    peers = [u for n, u in (conf.get("peerClientUrls") or {}).items() if n != conf["name"]]
    while not stopping.is_set():
        for url in peers:
            client = ec.EtcdClient([url], client_tls(conf), timeout=2.0)
            try:  # one request or two, then the connection is closed (finally)
                members = client.members()
                listed = any(
                    m.get("name") in (conf["name"], "") and conf["peerUrl"] in m.get("peerURLs", [])
                    for m in members
                )
                if not listed:
                    _log(f"adding member {conf['name']} ({conf['peerUrl']}) through {url}")
                    members = client.member_add([conf["peerUrl"]])
            except ec.EtcdUnavailable as exc:
                _log(f"cannot join through {url} yet: {exc}")
                continue
            finally:
                client.close()
            cluster: dict[str, str] = {}
            for member in members:
                urls = member.get("peerURLs") or []
                name = member.get("name") or (conf["name"] if conf["peerUrl"] in urls else "")
                if name and urls:
                    cluster[name] = urls[0]
            return cluster
        stopping.wait(1.0)
    return None


def start(conf: Obj, stopping: threading.Event) -> subprocess.Popen[bytes] | None:
    """Start this server's member (see the module's docstring); None when stopped meanwhile."""
    kill_leftover(conf)
    data_dir = Path(conf["dataDir"])
    marker = Path(conf.get("bootstrapMarker") or data_dir.parent / ".bootstrapped")
    alone = set(conf.get("initialCluster") or {}) <= {conf["name"]}
    if _has_member(data_dir):
        argv = etcd_argv(conf, None, "existing")
    elif not marker.exists() or alone:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"{time.time()}\n")
        argv = etcd_argv(conf, conf["initialCluster"], "new")
    else:
        cluster = join_cluster(conf, stopping)
        if cluster is None:
            return None
        argv = etcd_argv(conf, cluster, "existing")
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    return spawn(argv, conf)


def stop(proc: subprocess.Popen[bytes] | None, conf: Obj, timeout: float = 10.0) -> None:
    if proc is None:
        return
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
    _pid_file(conf).unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------
# k3s etcd-snapshot save, k3s server --cluster-reset


def etcdctl(conf: Obj, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    argv = ["etcdctl", f"--endpoints={conf['clientUrls'][0]}"]
    tls = client_tls(conf)
    if tls is not None:
        argv += [f"--cacert={tls.ca}", f"--cert={tls.cert}", f"--key={tls.key}"]
    env = dict(os.environ, ETCDCTL_API="3")
    return subprocess.run(
        [*argv, *args], capture_output=True, text=True, timeout=timeout, check=False, env=env
    )


def snapshot_save(conf: Obj, name: str, directory: Path) -> int:
    """``k3s etcd-snapshot save``: ``etcdctl snapshot save`` to ``<dir>/<name>-<node>-<unix>``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-{conf['name']}-{int(time.time())}"
    result = etcdctl(conf, "snapshot", "save", str(path))
    if result.returncode != 0:
        print(
            f'level=fatal msg="etcd-snapshot error: {result.stderr.strip()[-300:]}"',
            file=sys.stderr,
        )
        return 1
    path.chmod(0o600)
    print(f'level=info msg="Snapshot {path.name} saved."', file=sys.stderr)
    print(path)
    return 0


def _password(token: str) -> str:
    """``K10<ca-hash>::server:<password>`` or a bare password: the password part."""
    return token.rsplit(":", 1)[-1].strip() if "::" in token else token.strip()


def _fatal(message: str) -> int:
    print(f'level=fatal msg="{message}"', file=sys.stderr)
    return 1


def cluster_reset(conf: Obj, restore_path: str | None, token: str | None) -> int:
    """``k3s server --cluster-reset [--cluster-reset-restore-path P] [--token T]``, then exit.

    With a path: the old data dir moves to ``etcd-old-<unix>`` beside it (never deleted) and
    ``etcdctl snapshot restore`` makes a new single-member cluster of this node from the snapshot;
    the server token is required. Without: etcd runs once with ``--force-new-cluster`` on the data
    it has. k3s must be stopped first.
    """
    active = subprocess.run(["systemctl", "is-active", "--quiet", "k3s"], check=False)
    if conf.get("checkUnit", True) and active.returncode == 0:
        return _fatal("k3s is running on this node: stop it (systemctl stop k3s) first")
    problem = _restore(conf, restore_path, token) if restore_path else _force_new_cluster(conf)
    if problem:
        return _fatal(problem)
    print(f'level=info msg="{RESET_DONE}"', file=sys.stderr)
    return 0


def _restore(conf: Obj, restore_path: str, token: str | None) -> str | None:
    """Restore the snapshot as a new one-member cluster; what went wrong, or None."""
    data_dir = Path(conf["dataDir"])
    token_file = Path(conf.get("tokenFile") or "/var/lib/rancher/k3s/server/token")
    known = token_file.read_text().strip() if token_file.exists() else ""
    if not token and not known:
        return (
            "starting kubernetes: preparing server: token is required to restore a snapshot: "
            f"pass --token (the cluster's server token; {token_file} is missing)"
        )
    if token and known and _password(token) != _password(known):
        return (
            "starting kubernetes: preparing server: bootstrap data already found and "
            "encrypted with different token"
        )
    snapshot = Path(restore_path)
    if not snapshot.is_file():
        return f"starting kubernetes: etcd: snapshot path does not exist: {snapshot}"
    if data_dir.exists():
        aside = data_dir.with_name(f"{data_dir.name}-old-{int(time.time())}")
        data_dir.rename(aside)
        print(f'level=info msg="Moved {data_dir} to {aside}"', file=sys.stderr)
    result = etcdctl(
        conf,
        "snapshot",
        "restore",
        str(snapshot),
        f"--name={conf['name']}",
        f"--data-dir={data_dir}",
        f"--initial-cluster={conf['name']}={conf['peerUrl']}",
        f"--initial-advertise-peer-urls={conf['peerUrl']}",
        f"--initial-cluster-token=restored-{int(time.time())}",
    )
    if result.returncode != 0:
        return f"etcd: snapshot restore failed: {result.stderr.strip()[-400:]}"
    if token and not known:
        token_file.parent.mkdir(parents=True, exist_ok=True)
        token_file.write_text(token.strip() + "\n")
        token_file.chmod(0o600)
    return None


def _force_new_cluster(conf: Obj) -> str | None:
    """Run the member once with ``--force-new-cluster``; what went wrong, or None."""
    if not _has_member(Path(conf["dataDir"])):
        return f"etcd: no data to reset in {conf['dataDir']}"
    kill_leftover(conf)
    proc = spawn(etcd_argv(conf, None, "existing", "--force-new-cluster"), conf)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with local_client(conf) as client:
                    client.get("health", keys_only=True)
                return None
            except ec.EtcdUnavailable:
                time.sleep(0.3)
        return "etcd: the reset member did not come up within 30 s"
    finally:
        stop(proc, conf)
