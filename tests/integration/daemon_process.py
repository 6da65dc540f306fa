"""A real `hecate daemon` process for tests that send it real signals, and silent SSH targets.

`SilentSsh` accepts TCP connections on 127.0.0.1 and never answers, as a node whose sshd hangs:
ssh waits for its banner until `ssh_connect_timeout_seconds`, so a warm-up or a stage against it
takes that long unless it is cancelled.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from tests.testbed.nut import NutServer

# A kubeconfig whose API never answers (port 9 on this host): the flows' API stages are skipped.
KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


class SilentSsh:
    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = int(self.sock.getsockname()[1])
        self.held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def daemon_config_data(
    tmp: Path, nut: NutServer, nodes: dict[str, int], **extra: Any
) -> dict[str, Any]:
    """A config for nodes (name -> SSH port on 127.0.0.1, agents first) and the NUT server."""
    key = tmp / "id_ed25519"
    key.write_text("not a key\n")
    key.chmod(0o600)
    names = list(nodes)
    data: dict[str, Any] = {
        "state_dir": str(tmp / "state"),
        "nodes": {"servers": names[-1:], "agents": names[:-1]},
        "ssh_node_hosts": {name: f"127.0.0.1:{port}" for name, port in nodes.items()},
        "ssh_identity_file": str(key),
        "ssh_connect_timeout_seconds": 10,
        "kubeconfig": str(tmp / "no-kubeconfig"),
        "ups": {
            "target": nut.target(),
            "user": nut.user,
            "password_file": str(nut.password_file),
            "poll_interval_seconds": 1,
            "timeout_seconds": 3,
        },
        "shutdown": {"ups_mode": "cluster-only", "etcd_snapshot": False},
        "metrics": {"listen": "127.0.0.1:0"},
        "coordination": {"listen": "127.0.0.1:0"},
    }
    for key_name, value in extra.items():
        if isinstance(value, dict) and isinstance(data.get(key_name), dict):
            data[key_name] = {**data[key_name], **value}
        else:
            data[key_name] = value
    return data


class DaemonProcess:
    """`python -m hecate daemon` with its stderr collected line by line."""

    def __init__(self, config: Path, *, umask: int | None = None) -> None:
        def preexec() -> None:
            if umask is not None:
                os.umask(umask)

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hecate", "daemon", "--config", str(config)],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            preexec_fn=preexec,  # noqa: PLW1509 - only os.umask, before exec
        )
        self.lines: list[str] = []
        assert self.proc.stderr is not None
        stderr = self.proc.stderr
        self._reader = threading.Thread(target=lambda: self.lines.extend(stderr), daemon=True)
        self._reader.start()

    @property
    def text(self) -> str:
        return "".join(list(self.lines))

    def wait_for(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while True:
            for line in list(self.lines):
                if text in line:
                    return line
            assert self.proc.poll() is None, f"the daemon died: {self.text[-3000:]}"
            assert time.monotonic() < deadline, f"no {text!r} in {self.text[-3000:]}"
            time.sleep(0.05)

    def metrics(self) -> str:
        line = self.wait_for("metrics on")
        match = re.search(r"\(port (\d+)\)", line)
        assert match is not None, line
        url = f"http://127.0.0.1:{match.group(1)}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 60) -> tuple[int, float]:
        """Send `signum`; the exit code and the seconds it took to exit."""
        started = time.monotonic()
        self.proc.send_signal(signum)
        code = self.proc.wait(timeout)
        took = time.monotonic() - started
        self._reader.join(5)
        return code, took

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._reader.join(5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


def processes_mentioning(*needles: str) -> list[str]:
    """Command lines of the live processes that contain any of `needles` (leftover children)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        cmdline = raw.replace(b"\0", b" ").decode(errors="replace")
        if any(needle in cmdline for needle in needles):
            found.append(f"{entry.name}: {cmdline}")
    return found


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path
