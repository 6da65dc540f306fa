"""The dry run's look at the cluster before it prints the plan: the Kubernetes API, each node's
SSH port, the jump host and the UPS, all at once and bounded (PROBE_DEADLINE_S in all). A thin
shell: it only gathers what it sees into hecate.core.plan_marks.Probes; what that means for each
stage is hecate.core.plan_marks.plan_marks's to say. Never raises; a `--execute` run never calls it
(its stages have their own checks).
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar
from urllib.parse import urlsplit

from hecate.adapters.ansible.inventory import node_problems, node_target
from hecate.config.model import HecateConfig
from hecate.core.doctor.cluster import EXAMPLE_ADDRESSES
from hecate.core.plan_marks import ApiProbe, Probes, Reach
from hecate.core.readings import CommError, Poll
from hecate.errors import HecateError

# Each probe's own bound, and the bound on them all (they run in parallel).
CONNECT_TIMEOUT_S = 2.0
PROBE_DEADLINE_S = 3.0
SSH_BANNER = b"SSH-"

T = TypeVar("T")


def _ssh_banner(conn: socket.socket, where: str) -> Reach:
    try:
        banner = conn.recv(64)
    except TimeoutError:
        return Reach(False, f"{where} accepts connections but says nothing (not SSH?)")
    if banner.startswith(SSH_BANNER):
        return Reach(True, f"ssh answers on {where}")
    return Reach(False, f"{where} answers, but not as an SSH server")


def tcp_reach(host: str, port: int, timeout_s: float = CONNECT_TIMEOUT_S, *, ssh: bool) -> Reach:
    """Connect to host:port; with `ssh`, also read the server's first bytes (an SSH server
    speaks first: `SSH-2.0-...`)."""
    where = f"{host}:{port}"
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as conn:
            return _ssh_banner(conn, where) if ssh else Reach(True, f"{where} accepts connections")
    except ConnectionRefusedError:
        what = "ssh port" if ssh else "port"
        return Reach(False, f"{what} {port} closed on {host} (connection refused)")
    except TimeoutError:
        return Reach(False, f"no answer from {where} within {timeout_s:g}s")
    except socket.gaierror:
        return Reach(False, f"cannot resolve {host}")
    except OSError as exc:
        return Reach(False, f"{where}: {exc.strerror or type(exc).__name__}")


def _ssh_config_route(
    config: HecateConfig, host: str, port: int, user: str
) -> tuple[str, int, str]:
    """(host, port, proxy) as `ssh -G` resolves them through ssh_config_file ("" when direct)."""
    argv = ["ssh", "-G", "-F", str(config.ssh_config_file), "-p", str(port), "-l", user, host]
    done = subprocess.run(  # noqa: S603 - fixed argv, no shell
        argv, capture_output=True, text=True, timeout=CONNECT_TIMEOUT_S, check=False
    )
    seen: dict[str, str] = {}
    for line in done.stdout.splitlines():
        key, _, value = line.partition(" ")
        seen.setdefault(key.lower(), value.strip())
    proxy = next(
        (seen[k] for k in ("proxyjump", "proxycommand") if seen.get(k, "none") != "none"), ""
    )
    return seen.get("hostname", host), int(seen.get("port", port)), proxy


def node_reach(config: HecateConfig, node: str) -> Reach:
    target = node_target(config, node)
    host, port = target.host, target.port
    if host in EXAMPLE_ADDRESSES:
        # as `doctor`: the example's addresses are nobody's nodes, never dialled
        return Reach(None, f"{host} is a placeholder from the example: not probed")
    if config.ssh_config_file is not None:
        try:
            host, port, proxy = _ssh_config_route(config, host, port, target.user)
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            return Reach(None, f"ssh_config_file not resolved ({exc}): not probed")
        if proxy:
            return Reach(None, f"reached through {proxy} (ssh_config_file): not probed")
    return tcp_reach(host, port, ssh=True)


def api_probe(config: HecateConfig) -> ApiProbe:
    """/readyz through the kubeconfig, as the flows ask it; when it fails, a TCP connect to the
    server says what is in the way (refused, silent, or answering but not ready)."""
    from hecate.adapters.kube.client import Kube  # noqa: PLC0415 - lightkube: only when the API is probed

    try:
        kube = Kube(config.kubeconfig, timeout_s=CONNECT_TIMEOUT_S)
    except HecateError as exc:
        return ApiProbe("no_client", str(exc))
    with kube:
        server = kube.server
        if kube.readyz():
            return ApiProbe("up", f"API {server} ready")
    parts = urlsplit(server)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    reach = tcp_reach(parts.hostname or "", port, ssh=False)
    if reach.ok:
        return ApiProbe("down", f"API {server} answers but is not ready (/readyz)")
    if "connection refused" in reach.detail:
        return ApiProbe("down", f"API {server} refused connection")
    return ApiProbe("down", f"API {server}: {reach.detail}")


def _ups_reach(config: HecateConfig, poll: Poll) -> Reach:
    target = str(config.ups.target)
    if isinstance(poll, CommError):
        said = poll.message
        return Reach(False, f"UPS {said}" if target in said else f"UPS {target}: {said}")
    return Reach(True, f"UPS {target} answers")


class _Job(Generic[T]):
    """One probe in a daemon thread: a probe that outlives the deadline is left behind (it is
    bounded itself) and never holds up the command's exit."""

    def __init__(self, work: Callable[[], T]) -> None:
        self.result: T | None = None
        self._work = work
        self.thread = threading.Thread(target=self._run, daemon=True, name="hecate-dry-probe")
        self.thread.start()

    def _run(self) -> None:
        self.result = self._work()

    def wait(self, deadline: float) -> T | None:
        self.thread.join(max(0.0, deadline - time.monotonic()))
        return self.result


def _bind(
    probe: Callable[[HecateConfig, str], Reach], config: HecateConfig, node: str
) -> Callable[[], Reach]:
    return lambda: probe(config, node)


def probe_cluster(
    config: HecateConfig,
    *,
    read_ups: Callable[[], Poll] | None,
    deadline_s: float = PROBE_DEADLINE_S,
) -> tuple[Probes, Poll | None]:
    """Every probe at once, all answered within `deadline_s`. Returns what was seen and the UPS
    poll itself (the startup's guards use that one reading; None when `read_ups` is None)."""
    late = f"no answer within {deadline_s:g}s"
    left_out = node_problems(config)
    nodes = [n for n in config.nodes.all if n not in left_out]
    api_job = _Job(lambda: api_probe(config))
    node_jobs = {n: _Job(_bind(node_reach, config, n)) for n in nodes}
    jump = config.ssh_jump_host
    jump_job = _Job(lambda: tcp_reach(jump.host, jump.port or 22, ssh=True)) if jump else None
    ups_job = _Job(read_ups) if read_ups is not None else None
    deadline = time.monotonic() + deadline_s
    api = api_job.wait(deadline) or ApiProbe("down", f"API: {late}")
    reaches = {n: job.wait(deadline) or Reach(False, late) for n, job in node_jobs.items()}
    jump_reach = (jump_job.wait(deadline) or Reach(False, late)) if jump_job else None
    poll: Poll | None = None
    if ups_job is not None:
        poll = ups_job.wait(deadline) or CommError(late, "timeout")
    probes = Probes(
        api=api,
        nodes=reaches,
        jump=jump_reach,
        left_out=left_out,
        ups=_ups_reach(config, poll) if poll is not None else None,
    )
    return probes, poll


def probes_json(probes: Probes) -> dict[str, object]:
    def reach(r: Reach) -> dict[str, object]:
        return {"ok": r.ok, "detail": r.detail}

    return {
        "api": {"state": probes.api.state, "detail": probes.api.detail},
        "ssh": {node: reach(r) for node, r in probes.nodes.items()},
        "jump_host": reach(probes.jump) if probes.jump is not None else None,
        "left_out": dict(probes.left_out),
        "ups": reach(probes.ups) if probes.ups is not None else None,
    }


def probes_summary(probes: Probes) -> str:
    """One line: what the probes saw."""
    answers = [r.ok for r in probes.nodes.values()]
    ssh = f"ssh {answers.count(True)}/{len(answers) - answers.count(None)} node(s) answer"
    if None in answers:
        ssh += f" ({answers.count(None)} not probed)"
    parts = [probes.api.detail, ssh]
    if probes.jump is not None:
        parts.append(f"jump host: {probes.jump.detail}")
    if probes.ups is not None:
        parts.append(probes.ups.detail)
    return "; ".join(parts)


__all__ = [
    "PROBE_DEADLINE_S",
    "api_probe",
    "node_reach",
    "probe_cluster",
    "probes_json",
    "probes_summary",
    "tcp_reach",
]
