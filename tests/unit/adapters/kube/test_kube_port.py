"""The Kubernetes port says whether it is available, and its /readyz goes through lightkube's
public client adapter with the kubeconfig's own credentials (a local HTTP server checks them)."""

from __future__ import annotations

import secrets
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from hecate.adapters.kube.client import Kube
from hecate.adapters.kube.types import KubeUnavailableError
from hecate.adapters.kube.unavailable import UnavailableKube
from hecate.errors import KubeError

TOKEN = secrets.token_hex(16)


class _Api(BaseHTTPRequestHandler):
    seen: list[tuple[str, str | None]]

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Authorization")))
        ok = self.path == "/readyz" and self.headers.get("Authorization") == f"Bearer {TOKEN}"
        body = b"ok" if ok else b"forbidden"
        self.send_response(200 if ok else 403)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def api() -> Iterator[tuple[str, list[tuple[str, str | None]]]]:
    seen: list[tuple[str, str | None]] = []
    handler = type("Handler", (_Api,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def kubeconfig(tmp_path: Path, server: str, token: str = TOKEN) -> Path:
    path = tmp_path / "kubeconfig.yaml"
    data = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path.write_text(yaml.safe_dump(data))
    return path


def test_readyz_carries_the_kubeconfig_credentials(
    tmp_path: Path, api: tuple[str, list[tuple[str, str | None]]]
) -> None:
    url, seen = api
    with Kube(kubeconfig(tmp_path, url), timeout_s=3) as kube:
        assert kube.available
        assert kube.server == url
        assert kube.readyz()
    assert seen == [("/readyz", f"Bearer {TOKEN}")]


def test_readyz_is_false_for_wrong_credentials(
    tmp_path: Path, api: tuple[str, list[tuple[str, str | None]]]
) -> None:
    url, _ = api
    with Kube(kubeconfig(tmp_path, url, token=TOKEN[::-1]), timeout_s=3) as kube:
        assert kube.available  # a client exists ...
        assert not kube.readyz()  # ... but the API does not say ready (403)


def test_readyz_is_false_when_nothing_listens(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with Kube(kubeconfig(tmp_path, f"http://127.0.0.1:{port}"), timeout_s=2) as kube:
        assert kube.available
        assert not kube.readyz()
        with pytest.raises(KubeUnavailableError, match="unreachable"):
            kube.nodes()


def test_a_missing_kubeconfig_is_a_kube_error(tmp_path: Path) -> None:
    with pytest.raises(KubeError, match="cannot load kubeconfig"):
        Kube(tmp_path / "none.yaml")


def test_the_unavailable_port_says_so_and_why() -> None:
    kube = UnavailableKube("cannot load kubeconfig /etc/hecate/kubeconfig.yaml")
    assert not kube.available
    assert kube.reason == "cannot load kubeconfig /etc/hecate/kubeconfig.yaml"
    assert not kube.readyz()
    with pytest.raises(KubeUnavailableError, match="not available: cannot load kubeconfig"):
        kube.nodes()
    kube.close()  # nothing to close, and no error
