"""The pods on a node as the Kubernetes port reads them from a real HTTP answer: which of them
stay on the node whatever is evicted (a DaemonSet's, a static pod's mirror), which load
shedding's drain does not wait for (issue 28)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from hecate.adapters.kube.client import Kube
from hecate.adapters.kube.types import PodRef
from tests.unit.adapters.kube.test_kube_port import kubeconfig


def _pod(name: str, owner: str | None = None, mirror: bool = False) -> dict[str, object]:
    meta: dict[str, object] = {"name": name, "namespace": "apps"}
    if owner:
        meta["ownerReferences"] = [
            {"apiVersion": "apps/v1", "kind": owner, "name": "x", "uid": "u1"}
        ]
    if mirror:
        meta["annotations"] = {"kubernetes.io/config.mirror": "abc"}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta}


PODS = {
    "apiVersion": "v1",
    "kind": "PodList",
    "metadata": {},
    "items": [
        _pod("web-1", "ReplicaSet"),
        _pod("svclb-1", "DaemonSet"),
        _pod("etcd-static", mirror=True),
        _pod("bare"),
    ],
}


class _Api(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps(PODS).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_daemonset_and_mirror_pods_are_marked_as_staying(tmp_path: Path, api: str) -> None:
    with Kube(kubeconfig(tmp_path, api), timeout_s=3) as kube:
        pods = kube.pods_on_node("a2")
    assert pods == [
        PodRef("apps", "web-1"),
        PodRef("apps", "svclb-1", stays=True),
        PodRef("apps", "etcd-static", stays=True),
        PodRef("apps", "bare"),
    ]
