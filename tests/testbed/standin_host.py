"""The twin's k3s stand-in run as plain processes on this host (no podman, no SSH).

What the API and the controllers do is the same code as in the twin's nodes
(``node/kube_standin.py``); only the node side is missing (systemd units, Ansible). Each "server"
is one ``kube_standin.py server`` process on 127.0.0.1 (plain HTTP) with its own etcd member (a
real etcd, plain HTTP on 127.0.0.1: ``etcd`` from Debian's etcd-server must be installed), each
"agent" one ``kube_standin.py agent`` process; the servers' members make one etcd cluster, and
heartbeats, token and seed are in one state directory, as in the twin. Use it for tests of
Hecate's Kubernetes calls and of the stand-in's behaviours, which need no node.

```python
with LocalCluster(tmp_path, servers=["s1"], agents=["a1"]) as cluster:
    kube = Kube(cluster.kubeconfig)
    cluster.stop("a1")
```
"""

from __future__ import annotations

import contextlib
import copy
import json
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import yaml

from tests.testbed import twin
from tests.testbed.node import kube_standin

STANDIN = Path(kube_standin.__file__).resolve()


class LocalCluster:
    """Servers and agents of the stand-in as local processes; ``audit`` logs every request."""

    def __init__(
        self,
        workdir: Path,
        *,
        servers: list[str] | None = None,
        agents: list[str] | None = None,
        seed: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
        audit: bool = True,
    ) -> None:
        self.workdir = workdir
        self.servers = list(servers if servers is not None else ["s1"])
        self.agents = list(agents if agents is not None else [])
        self.token = secrets.token_hex(16)
        ports = iter(twin._free_ports(3 * len(self.servers)))
        self.ports = {name: next(ports) for name in self.servers}
        self.etcd_ports = {name: (next(ports), next(ports)) for name in self.servers}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        seed_data = copy.deepcopy(dict(seed)) if seed is not None else twin.default_seed()
        cfg = seed_data.setdefault("config", {})
        cfg.update(copy.deepcopy(dict(config or {})))
        cfg["audit"] = audit
        cfg.setdefault("initialNodes", [*self.servers, *self.agents])
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "token").write_text(self.token + "\n")
        (self.state_dir / "seed.json").write_text(json.dumps(seed_data), encoding="utf-8")
        self.write_kubeconfig(self.servers[0] if self.servers else "")
        for name in [*self.servers, *self.agents]:
            self.conf_path(name).write_text(json.dumps(self.node_conf(name)), encoding="utf-8")

    def conf_path(self, name: str) -> Path:
        return self.workdir / f"{name}.node.json"

    def node_conf(self, name: str) -> dict[str, Any]:
        """The node's JSON (as the twin's ``/etc/hecate-twin/node.json``), etcd in plain HTTP."""
        client_urls = {s: f"http://127.0.0.1:{self.etcd_ports[s][0]}" for s in self.servers}
        peer_urls = {s: f"http://127.0.0.1:{self.etcd_ports[s][1]}" for s in self.servers}
        conf: dict[str, Any] = {
            "name": name,
            "role": "server" if name in self.servers else "agent",
            "stateDir": str(self.state_dir),
            "etcdClient": {"endpoints": list(client_urls.values())},
        }
        if name in self.servers:
            home = self.workdir / name
            conf["etcd"] = {
                "name": name,
                "dataDir": str(home / "db" / "etcd"),
                "clientUrls": [client_urls[name]],
                "peerUrl": peer_urls[name],
                "initialCluster": peer_urls,
                "peerClientUrls": client_urls,
                "clusterToken": f"local-{self.token[:8]}",
                "tlsDir": None,
                "bootstrapMarker": str(home / "etcd-bootstrapped"),
                "runDir": str(home / "run"),
                "snapshotDir": str(home / "db" / "snapshots"),
                "tokenFile": str(self.state_dir / "token"),
                "checkUnit": False,
            }
        return conf

    @property
    def state_dir(self) -> Path:
        return self.workdir / "state"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig.yaml"

    def url(self, server: str) -> str:
        return f"http://127.0.0.1:{self.ports[server]}"

    def write_kubeconfig(self, server: str) -> None:
        """A kubeconfig naming one server (as k3s's does: the node it was copied from)."""
        url = self.url(server) if server else "http://127.0.0.1:1"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "local", "cluster": {"server": url}}],
            "users": [{"name": "local", "user": {"token": self.token}}],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": "local"}}],
            "current-context": "local",
        }
        self.kubeconfig.write_text(yaml.safe_dump(config), encoding="utf-8")

    # -- processes ---------------------------------------------------------------------------

    def start(self, name: str | None = None) -> None:
        """Start one node's k3s (or every node's, servers first, when ``name`` is None)."""
        if name is None:
            for node in [*self.servers, *self.agents]:
                self.start(node)
            return
        if name in self.procs and self.procs[name].poll() is None:
            return
        argv = [sys.executable, str(STANDIN), "--conf", str(self.conf_path(name)), "--no-shim"]
        if name in self.servers:
            argv += ["server", "--host", "127.0.0.1", "--port", str(self.ports[name])]
        else:
            argv += ["agent"]
        log = (self.workdir / f"{name}.log").open("ab")
        with log:
            self.procs[name] = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )

    def stop(self, name: str, *, timeout: float = 10.0) -> None:
        """What ``systemctl stop k3s`` does to the stand-in: SIGTERM, and wait."""
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)

    def running(self, name: str) -> bool:
        proc = self.procs.get(name)
        return proc is not None and proc.poll() is None

    def close(self) -> None:
        for name in list(self.procs):
            self.stop(name)

    def __enter__(self) -> Self:
        self.start()
        self.wait_api()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the API ----------------------------------------------------------------------------

    def api(
        self, method: str, path: str, body: Any = None, *, server: str | None = None
    ) -> tuple[int, Any]:
        """One request to a server's API (the first running one by default)."""
        name = server or next((s for s in self.servers if self.running(s)), self.servers[0])
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - http://127.0.0.1 only
            self.url(name) + path, data=data, method=method
        )
        request.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            ctype = "application/merge-patch+json" if method == "PATCH" else "application/json"
            request.add_header("Content-Type", ctype)
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
                text = answer.read().decode()
                code = answer.status
        except urllib.error.HTTPError as err:
            text, code = err.read().decode(), err.code
        try:
            return code, json.loads(text)
        except ValueError:
            return code, text

    def readyz(self, server: str) -> bool:
        try:
            with urllib.request.urlopen(self.url(server) + "/readyz", timeout=2) as answer:  # noqa: S310
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def wait_api(self, timeout: float = 20.0) -> None:
        wait_for(
            lambda: any(self.readyz(s) for s in self.servers if self.running(s)),
            timeout,
            "the stand-in's API to answer",
        )

    def set_config(self, patch: Mapping[str, Any]) -> None:
        code, answer = self.api("PATCH", "/twin/v1/config", dict(patch))
        if code != 200:
            raise AssertionError(f"config patch failed: {code} {answer}")

    def node_ready(self, name: str) -> bool | None:
        code, node = self.api("GET", f"/api/v1/nodes/{name}")
        if code != 200:
            return None
        for cond in node.get("status", {}).get("conditions", []):
            if cond.get("type") == "Ready":
                return bool(cond.get("status") == "True")
        return False


def wait_for(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> float:
    """Poll ``check`` until true; the seconds it took. AssertionError naming ``what`` after
    ``timeout``."""
    started = time.monotonic()
    while True:
        with contextlib.suppress(OSError):
            if check():
                return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
