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


def exec_kubeconfig(tmp_path: Path, server: str, command: str) -> Path:
    """A kubeconfig whose credentials come from an exec plugin (run locally, at request time)."""
    path = tmp_path / "kubeconfig-exec.yaml"
    plugin = {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": command}
    data = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"exec": plugin}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("command", ["/bin/false", "/nonexistent/credential-helper"])
def test_a_failing_exec_plugin_means_the_api_is_unreachable(
    tmp_path: Path, api: tuple[str, list[tuple[str, str | None]]], command: str
) -> None:
    # lightkube raises its own ConfigError (or OSError) from the request: on main it escaped
    # readyz() and a shutdown died before its first stage ("shutdown could not run")
    url, seen = api
    with Kube(exec_kubeconfig(tmp_path, url, command), timeout_s=3) as kube:
        assert kube.readyz() is False
        with pytest.raises(KubeUnavailableError, match="no credentials"):
            kube.nodes()
    assert seen == []  # nothing was sent without credentials


def test_a_shutdown_with_a_failing_exec_plugin_skips_the_api_stages_and_runs_the_nodes(
    tmp_path: Path, api: tuple[str, list[tuple[str, str | None]]]
) -> None:
    from hecate.adapters.statedir.store import StateStore  # noqa: PLC0415
    from hecate.config.model import parse_config  # noqa: PLC0415
    from hecate.core.plans import ShutdownOptions  # noqa: PLC0415
    from hecate.core.readings import UpsReading, parse_status  # noqa: PLC0415
    from hecate.flows.context import FlowContext  # noqa: PLC0415
    from hecate.flows.shutdown import run_shutdown  # noqa: PLC0415
    from tests.fakes import FakeAnsible  # noqa: PLC0415

    url, _ = api
    config = parse_config(
        {
            "state_dir": str(tmp_path / "state"),
            "nodes": {"servers": ["s1"], "agents": ["a1"]},
            "ups": {"target": "pyrphoros@localhost"},
        }
    )
    ansible = FakeAnsible()
    with Kube(exec_kubeconfig(tmp_path, url, "/bin/false"), timeout_s=3) as kube:
        ctx = FlowContext(
            config=config,
            ansible=ansible,
            kube=kube,
            store=StateStore(config.state_dir),
            read_ups=lambda: UpsReading(parse_status("OL"), 1800, 100),
            sleep=lambda _: None,
        )
        report = run_shutdown(ctx, ShutdownOptions(mode="cluster-only", skip_etcd_snapshot=True))
    stages = {s.name: s for s in report.stages}
    assert stages["flux_suspend"].status == "skipped", report.to_json()
    assert [r.playbook for r in ansible.requests] == ["stop_agents", "stop_servers"]
