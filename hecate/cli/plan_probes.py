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
from collections import Counter
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
TOLD_NOTHING = "could not tell"  # Reach.why_untold of a probe that failed or ran out of time

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
        # silence within the probe's bound is not a failure: the run waits longer
        # (ssh_connect_timeout_seconds); no mark
        return Reach(None, f"no answer from {where} within {timeout_s:g}s: could not tell",
                     TOLD_NOTHING)  # fmt: skip
    except socket.gaierror:
        return Reach(False, f"cannot resolve {host}")
    except OSError as exc:
        return Reach(False, f"{where}: {exc.strerror or type(exc).__name__}")


def ssh_route(
    config: HecateConfig, host: str, port: int | None, user: str | None
) -> tuple[str, int, str] | Reach:
    """(host, port, proxy) as the run's ssh would dial them: `ssh -G` (no connection made)
    reads the same files it does, ssh_config_file when set, else ~/.ssh/config and
    /etc/ssh/ssh_config. proxy is the ProxyJump/ProxyCommand in force ("" when direct). A
    Reach instead when the config cannot be resolved: ssh would fail on it (False), or it
    could not be asked (None)."""
    argv = ["ssh", "-G"]
    if config.ssh_config_file is not None:
        argv += ["-F", str(config.ssh_config_file)]
    if port is not None:
        argv += ["-p", str(port)]
    if user:
        argv += ["-l", user]
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [*argv, "--", host],
            capture_output=True,
            text=True,
            timeout=CONNECT_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Reach(
            None, f"ssh -G gave no answer within {CONNECT_TIMEOUT_S:g}s: not probed", TOLD_NOTHING
        )
    except OSError as exc:
        return Reach(None, f"cannot run ssh -G ({exc.strerror or exc}): not probed", TOLD_NOTHING)
    if done.returncode != 0:
        # every real ssh fails the same way on this config: say so rather than dial the host
        where = "ssh_config_file" if config.ssh_config_file is not None else "ssh config"
        lines = done.stderr.strip().splitlines()
        return Reach(False, f"{where}: {lines[0] if lines else f'ssh -G exited {done.returncode}'}")
    seen: dict[str, str] = {}
    for line in done.stdout.splitlines():
        key, _, value = line.partition(" ")
        seen.setdefault(key.lower(), value.strip())
    proxy = next(
        (seen[k] for k in ("proxyjump", "proxycommand") if seen.get(k, "none") != "none"), ""
    )
    try:
        resolved_port = int(seen.get("port", port or 22))
    except ValueError:
        return Reach(None, f"ssh -G gave no usable port for {host}: not probed", TOLD_NOTHING)
    return seen.get("hostname", host), resolved_port, proxy


def _placeholder(host: str) -> Reach | None:
    if host in EXAMPLE_ADDRESSES:
        # as `doctor`: the example's addresses are nobody's nodes, never dialled
        return Reach(None, f"{host} is a placeholder from the example: not probed", "placeholders")
    return None


def _dial(config: HecateConfig, host: str, port: int | None, user: str | None) -> Reach:
    """Resolve as ssh would, then dial the SSH port, unless the result is a placeholder or
    goes through a proxy (what sits behind one is not this host's to dial)."""
    early = _placeholder(host)
    if early is not None:
        return early
    route = ssh_route(config, host, port, user)
    if isinstance(route, Reach):
        return route
    real_host, real_port, proxy = route
    if proxy:
        return Reach(None, f"not probed (reached through {proxy}, ssh config)", "behind a proxy")
    # again after resolving: a HostName in an ssh config may point at the example's addresses
    return _placeholder(real_host) or tcp_reach(real_host, real_port, ssh=True)


def node_reach(config: HecateConfig, node: str) -> Reach:
    if config.ssh_jump_host is not None:
        # through the jump host, the nodes' addresses are the jump host's to reach: from here
        # they may be other machines, or nothing (the jump host alone is probed)
        return Reach(None, "not probed (reached through the jump host)", "behind the jump host")
    target = node_target(config, node)
    return _dial(config, target.host, target.port, target.user)


def jump_reach(config: HecateConfig) -> Reach | None:
    """The jump host's SSH port, resolved as the run's preflight resolves it (None: no jump
    host)."""
    jump = config.ssh_jump_host
    if jump is None:
        return None
    return _dial(config, jump.host, jump.port, config.ssh_jump_user)


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
        try:
            ready = kube.readyz()
        except Exception as exc:  # a probe reports, it never raises
            return ApiProbe("unknown", f"API {server}: could not tell ({exc})")
    return ApiProbe("up", f"API {server} ready") if ready else _api_not_ready(server)


def _api_not_ready(server: str) -> ApiProbe:
    """What a TCP connect to the server says about a /readyz that failed."""
    parts = urlsplit(server)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    reach = tcp_reach(parts.hostname or "", port, ssh=False)
    if reach.ok:
        return ApiProbe("down", f"API {server} answers but is not ready (/readyz)")
    if reach.ok is None:
        return ApiProbe("unknown", f"API {server}: {reach.detail}")
    if "connection refused" in reach.detail:
        return ApiProbe("down", f"API {server} refused connection")
    return ApiProbe("down", f"API {server}: {reach.detail}")


def _ups_reach(config: HecateConfig, poll: Poll) -> Reach:
    """What a UPS poll read in time says."""
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
        self.error: str | None = None  # what the probe raised: it could not tell
        self._work = work
        self.thread = threading.Thread(target=self._run, daemon=True, name="hecate-dry-probe")
        self.thread.start()

    def _run(self) -> None:
        try:
            self.result = self._work()
        except Exception as exc:  # a probe reports, it never raises
            self.error = f"could not tell: {str(exc) or type(exc).__name__}"

    def wait(self, deadline: float) -> T | None:
        self.thread.join(max(0.0, deadline - time.monotonic()))
        return self.result


def _bind(
    probe: Callable[[HecateConfig, str], Reach], config: HecateConfig, node: str
) -> Callable[[], Reach]:
    return lambda: probe(config, node)


def _reach_of(job: _Job[Reach], deadline: float, late: str) -> Reach:
    """A probe's answer; one that raised or missed the deadline could not tell (no mark)."""
    result = job.wait(deadline)
    if result is not None:
        return result
    if job.error is not None:
        return Reach(None, job.error, TOLD_NOTHING)
    return Reach(None, late, TOLD_NOTHING)


def probe_cluster(
    config: HecateConfig,
    *,
    read_ups: Callable[[], Poll] | None,
    deadline_s: float = PROBE_DEADLINE_S,
) -> tuple[Probes, Poll | None]:
    """Every probe at once, all answered within `deadline_s`. Returns what was seen and the UPS
    poll itself when it was read in time (the startup's guards use that one reading; None when
    `read_ups` is None, raised or is still reading: the guards then read the UPS themselves,
    within the UPS's own timeout, rather than take a probe's deadline for the UPS's silence).

    A probe that misses the deadline could not tell: it marks nothing, as the run itself
    waits longer (ssh_connect_timeout_seconds, the API's and the UPS's timeouts)."""
    late = f"no answer within {deadline_s:g}s: could not tell"
    left_out = node_problems(config)
    nodes = [n for n in config.nodes.all if n not in left_out]
    api_job = _Job(lambda: api_probe(config))
    node_jobs = {n: _Job(_bind(node_reach, config, n)) for n in nodes}
    jump_job = _Job(lambda: jump_reach(config)) if config.ssh_jump_host is not None else None
    ups_job = _Job(read_ups) if read_ups is not None else None
    deadline = time.monotonic() + deadline_s
    api = api_job.wait(deadline) or ApiProbe("unknown", f"API: {api_job.error or late}")
    ssh_late = f"{late} (the run waits up to {config.ssh_connect_timeout_seconds}s)"
    reaches = {n: _reach_of(job, deadline, ssh_late) for n, job in node_jobs.items()}
    jump: Reach | None = None
    if jump_job is not None:
        jump = jump_job.wait(deadline) or Reach(None, jump_job.error or ssh_late, TOLD_NOTHING)
    poll: Poll | None = None
    ups: Reach | None = None
    if ups_job is not None:
        poll = ups_job.wait(deadline)
        target = str(config.ups.target)
        if poll is None:
            ups = Reach(None, f"UPS {target}: {ups_job.error or late}", TOLD_NOTHING)
        else:
            ups = _ups_reach(config, poll)
    probes = Probes(api=api, nodes=reaches, jump=jump, left_out=left_out, ups=ups)
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
    untold = Counter(r.why_untold or TOLD_NOTHING for r in probes.nodes.values() if r.ok is None)
    if untold:
        ssh += " (" + ", ".join(f"{n} not probed ({why})" for why, n in untold.items()) + ")"
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
