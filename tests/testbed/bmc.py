"""The twin's hardware: per node a real IPMI BMC, a Wake-on-LAN listener and a Redfish endpoint,
all on 127.0.0.1, switching the node's power (issue 25).

A node's power is a *switch*: a podman container (on = ``podman start``, hard off = ``podman
kill``, soft off = ``systemctl poweroff`` inside it) or a file holding ``on``/``off`` (a fake
node for tests that need no container: much faster). The hardware runs in a child process
(``python -m tests.testbed.bmc SPEC.json``): pyghmi's BMC keeps process-wide sockets and an I/O
loop that cannot be stopped, so killing the process is the clean way to stop it.

- IPMI: ``pyghmi.ipmi.bmc.Bmc`` (IPMI 2.0 / RMCP+ over UDP), one port per node; Debian's
  ``ipmitool -I lanplus`` talks to it (tests check that, so it is known to speak standard IPMI).
- Wake-on-LAN: one UDP port; a magic packet naming a node's MAC powers that node on.
- Redfish: one HTTPS port serving ``/redfish/v1/Systems/<node>`` (ComputerSystem: PowerState,
  Actions/ComputerSystem.Reset with On, ForceOff, GracefulShutdown, ForceRestart), HTTP Basic
  auth, shaped after DMTF's schemas for the calls Hecate makes. Not sushy-tools' emulator: it
  drives libvirt, OpenStack or Ironic (or an in-memory fake), chosen from its own config, none
  of them a podman container; a driver of our own would patch its Flask app's internals, and it
  pulls Flask and sushy into the dev venv.

Every power action is appended to ``events.jsonl`` in the work dir ({"node", "via", "action"},
and {"via": "wol", "mac"} for every magic packet, known or not), which tests read.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

from tests.testbed.image import podman, podman_env


class Switch(Protocol):
    def is_on(self) -> bool: ...

    def power_on(self) -> None: ...

    def power_off(self, *, soft: bool) -> None: ...


@dataclass
class FileSwitch:
    """A fake node: its power is the word in a file (``on``/``off``)."""

    path: Path

    def is_on(self) -> bool:
        try:
            return self.path.read_text().strip() == "on"
        except FileNotFoundError:
            return False

    def power_on(self) -> None:
        self.path.write_text("on\n")

    def power_off(self, *, soft: bool) -> None:
        self.path.write_text("off\n")


@dataclass
class ContainerSwitch:
    """A twin node's container."""

    container: str

    def is_on(self) -> bool:
        result = podman("inspect", "--format", "{{.State.Running}}", self.container, check=False)
        return result.stdout.strip() == "true"

    def power_on(self) -> None:
        podman("start", self.container, check=False, timeout=60)

    def power_off(self, *, soft: bool) -> None:
        if soft:  # the ACPI button: the OS shuts down on its own
            podman("exec", self.container, "systemctl", "poweroff", "--no-block", check=False)
        else:
            podman("kill", self.container, check=False)


def cycle(switch: Switch) -> None:
    switch.power_off(soft=False)
    switch.power_on()


def make_switch(spec: dict[str, Any]) -> Switch:
    if "container" in spec:
        return ContainerSwitch(spec["container"])
    return FileSwitch(Path(spec["file"]))


class Events:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()

    def add(self, **event: Any) -> None:
        with self.lock, self.path.open("a") as out:
            out.write(json.dumps({"t": time.time(), **event}) + "\n")


def _in_background(name: str, job: Any) -> None:
    # A real BMC answers the command at once and switches afterwards: podman start takes about
    # a second, and pyghmi's single I/O loop would stall every other BMC meanwhile.
    threading.Thread(target=job, name=name, daemon=True).start()


def _ipmi_bmc_class() -> Any:
    from pyghmi.ipmi.bmc import Bmc  # noqa: PLC0415 - only the hardware process imports pyghmi

    class NodeBmc(Bmc):  # type: ignore[misc]
        def __init__(
            self, node: str, switch: Switch, events: Events, user: str, password: str
        ) -> None:
            super().__init__({user: password}, port=0, address="127.0.0.1")
            self.node, self.switch, self.events = node, switch, events
            self.port = self.serversocket.getsockname()[1]

        def _do(self, action: str, job: Any) -> None:
            self.events.add(node=self.node, via="ipmi", action=action)
            _in_background(f"ipmi-{self.node}-{action}", job)

        def get_power_state(self) -> str:
            return "on" if self.switch.is_on() else "off"

        def power_on(self) -> None:
            self._do("on", self.switch.power_on)

        def power_off(self) -> None:
            self._do("hard_off", lambda: self.switch.power_off(soft=False))

        def power_shutdown(self) -> None:
            self._do("off", lambda: self.switch.power_off(soft=True))

        def power_reset(self) -> None:
            self._do("reset", lambda: cycle(self.switch))

    return NodeBmc


def serve_wol(sock: socket.socket, macs: dict[str, tuple[str, Switch]], events: Events) -> None:
    from hecate.core.power import mac_in_packet  # noqa: PLC0415

    while True:
        packet, _ = sock.recvfrom(2048)
        mac = mac_in_packet(packet)
        known = macs.get(mac or "")
        events.add(via="wol", mac=mac, node=known[0] if known else None, action="on")
        if known is not None:
            _in_background(f"wol-{known[0]}", known[1].power_on)


_RESET_TYPES = ("On", "ForceOff", "GracefulShutdown", "ForceRestart")


class RedfishHandler(BaseHTTPRequestHandler):
    server: RedfishServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: Any = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json")
            self.send_header("OData-Version", "4.0")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        self._send(
            status,
            {"error": {"code": "Base.1.8.GeneralError", "message": message}},
        )

    def _authorized(self) -> bool:
        expected = base64.b64encode(f"{self.server.user}:{self.server.password}".encode())
        if self.headers.get("Authorization", "") == f"Basic {expected.decode()}":
            return True
        self._error(401, "authentication required")
        return False

    def _system(self, node: str) -> dict[str, Any]:
        path = f"/redfish/v1/Systems/{node}"
        return {
            "@odata.type": "#ComputerSystem.v1_20_0.ComputerSystem",
            "@odata.id": path,
            "Id": node,
            "Name": node,
            "PowerState": "On" if self.server.nodes[node].is_on() else "Off",
            "Actions": {
                "#ComputerSystem.Reset": {
                    "target": f"{path}/Actions/ComputerSystem.Reset",
                    "ResetType@Redfish.AllowableValues": list(_RESET_TYPES),
                }
            },
        }

    def do_GET(self) -> None:
        path = self.path.rstrip("/")
        if path == "/redfish/v1":  # the service root needs no authentication (DSP0266)
            self._send(
                200,
                {
                    "@odata.type": "#ServiceRoot.v1_15_0.ServiceRoot",
                    "@odata.id": "/redfish/v1",
                    "Id": "RootService",
                    "RedfishVersion": "1.15.0",
                    "Systems": {"@odata.id": "/redfish/v1/Systems"},
                },
            )
            return
        if not self._authorized():
            return
        if path == "/redfish/v1/Systems":
            members = [{"@odata.id": f"/redfish/v1/Systems/{n}"} for n in self.server.nodes]
            self._send(
                200,
                {
                    "@odata.type": "#ComputerSystemCollection.ComputerSystemCollection",
                    "@odata.id": "/redfish/v1/Systems",
                    "Members": members,
                    "Members@odata.count": len(members),
                },
            )
            return
        node = path.removeprefix("/redfish/v1/Systems/")
        if node in self.server.nodes:
            self._send(200, self._system(node))
            return
        self._error(404, f"no resource {path}")

    def do_POST(self) -> None:
        if not self._authorized():
            return
        path = self.path.rstrip("/")
        prefix, _, node = path.removesuffix("/Actions/ComputerSystem.Reset").rpartition("/")
        if prefix != "/redfish/v1/Systems" or node not in self.server.nodes:
            self._error(404, f"no action {path}")
            return
        length = int(self.headers.get("Content-Length") or 0)
        try:
            reset = json.loads(self.rfile.read(length) or b"{}").get("ResetType")
        except (ValueError, AttributeError):
            self._error(400, "the body is not a JSON object")
            return
        if reset not in _RESET_TYPES:
            self._error(400, f"ResetType {reset!r} is not one of {', '.join(_RESET_TYPES)}")
            return
        switch = self.server.nodes[node]
        jobs = {
            "On": switch.power_on,
            "ForceOff": lambda: switch.power_off(soft=False),
            "GracefulShutdown": lambda: switch.power_off(soft=True),
            "ForceRestart": lambda: cycle(switch),
        }
        self.server.events.add(node=node, via="redfish", action=reset)
        _in_background(f"redfish-{node}", jobs[reset])
        self._send(204)


class RedfishServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, nodes: dict[str, Switch], events: Events, user: str, password: str, tls: Path
    ) -> None:
        super().__init__(("127.0.0.1", 0), RedfishHandler)
        self.nodes, self.events, self.user, self.password = nodes, events, user, password
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls / "server.crt", tls / "server.key")
        self.socket = context.wrap_socket(self.socket, server_side=True)


def run(spec_path: Path) -> None:
    """The hardware process: start everything in the spec, print the ports as one JSON line."""
    spec = json.loads(spec_path.read_text())
    events = Events(Path(spec["events"]))
    switches = {name: make_switch(node["switch"]) for name, node in spec["nodes"].items()}
    ports: dict[str, Any] = {"ipmi": {}}
    bmc_class = _ipmi_bmc_class()
    for name in spec["nodes"]:
        bmc = bmc_class(name, switches[name], events, spec["user"], spec["password"])
        ports["ipmi"][name] = bmc.port
    wol = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    wol.bind(("127.0.0.1", 0))
    ports["wol"] = wol.getsockname()[1]
    macs = {n["mac"]: (name, switches[name]) for name, n in spec["nodes"].items() if "mac" in n}
    threading.Thread(target=serve_wol, args=(wol, macs, events), daemon=True).start()
    redfish = RedfishServer(switches, events, spec["user"], spec["password"], Path(spec["tls"]))
    ports["redfish"] = redfish.server_address[1]
    threading.Thread(target=redfish.serve_forever, daemon=True).start()
    print(json.dumps(ports), flush=True)
    bmc_class.listen(timeout=1)


@dataclass
class Hardware:
    """The running hardware process, seen from the test: ports, events, stop."""

    process: subprocess.Popen[str]
    ipmi_ports: dict[str, int]
    wol_port: int
    redfish_port: int
    events_path: Path

    def events(self) -> list[dict[str, Any]]:
        if not self.events_path.exists():
            return []
        return [json.loads(line) for line in self.events_path.read_text().splitlines()]

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()


@contextlib.contextmanager
def hardware(
    workdir: Path,
    nodes: dict[str, dict[str, Any]],
    *,
    user: str = "admin",
    password: str = "bmc-secret",  # noqa: S107 - the twin's BMC
    tls: Path,
) -> Iterator[Hardware]:
    """Start the hardware for `nodes` (name -> {"switch": {"file": PATH} or {"container": C},
    optional "mac"}); stopped on exit. `tls` holds server.crt/server.key (see twin.make_tls)."""
    workdir.mkdir(parents=True, exist_ok=True)
    spec = workdir / "hardware.json"
    events = workdir / "events.jsonl"
    spec.write_text(
        json.dumps(
            {
                "nodes": nodes,
                "user": user,
                "password": password,
                "events": str(events),
                "tls": str(tls),
            }
        )
    )
    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.testbed.bmc", str(spec)],
        cwd=root,
        env={**podman_env(), "PYTHONPATH": str(root)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"the hardware process exited ({process.wait(10)})")
        ports = json.loads(line)
        found = Hardware(process, ports["ipmi"], ports["wol"], ports["redfish"], events)
        yield found
    finally:
        process.kill()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


if __name__ == "__main__":
    run(Path(sys.argv[1]))
