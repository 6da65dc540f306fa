"""Opening a flow context on the real ports (Ansible through the runner port, the Kubernetes API).

The CLI, the daemon and the drills all run flows this way; tests build FlowContext by hand.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from hecate.adapters.ansible.port import open_port
from hecate.adapters.kube.client import Kube
from hecate.adapters.kube.unavailable import UnavailableKube
from hecate.adapters.nut.port import Ups
from hecate.adapters.power.port import open_power, ssh_target
from hecate.adapters.power.ssh_answer import ssh_answers
from hecate.adapters.statedir.store import StateStore
from hecate.config.model import HecateConfig
from hecate.core.clock import Clock
from hecate.core.readings import Poll
from hecate.errors import KubeError
from hecate.flows.context import FlowContext, KubeApi, ProgressFn, no_progress
from hecate.flows.warmup import ConnectionWarmer

SYSTEMCTL = "/usr/bin/systemctl"


# hecate.service runs unprivileged: it asks hecate-poweroff.path (a root unit that does nothing
# else) by creating this file in its runtime directory.
POWEROFF_REQUEST = Path("/run/hecate/poweroff")


def poweroff_this_host() -> None:
    """Power the Hecate host off (shutdown.poweroff_local_host): as root `systemctl poweroff`;
    as the unprivileged daemon, a request to hecate-poweroff.path."""
    if os.geteuid() != 0 and POWEROFF_REQUEST.parent.is_dir():
        POWEROFF_REQUEST.write_text(f"requested by pid {os.getpid()}\n", encoding="utf-8")
        return
    subprocess.run(  # noqa: S603 - a fixed argv, no input from outside
        [SYSTEMCTL, "poweroff"], check=False, timeout=60, stdin=subprocess.DEVNULL
    )


@contextlib.contextmanager
def open_flow_context(
    config: HecateConfig,
    *,
    read_ups: Callable[[], Poll] | None,
    ups_command: Callable[[str], None] | None = None,
    clock: Clock | None = None,
    progress: ProgressFn = no_progress,
    cancel: threading.Event | None = None,
    warmer: ConnectionWarmer | None = None,
    warm: bool = False,
) -> Iterator[FlowContext]:
    """The real ports for one flow. With `warmer` (the daemon's, long-lived) its port is used
    and kept open; without, a port is opened for this flow. `warm`: open its ssh connections in
    the background at once, beside the flow's first stages. Off by default: measured on a
    2-core host (bench/flows.py --compare-cli-warmup), a warm-up beside a shutdown's API stages
    cost more than it saved (two ansible-playbook processes opening the same connections at
    once), and a startup's first stage is a node stage that opens them itself. The daemon warms
    its port on its own schedule instead, on battery, well before any shutdown decision
    (hecate/daemon/service.py); its flows find the connections open.
    `ups_command` is the UPS port's instant command (the daemon's, its credentials read once at
    start); without it one is built when the command is sent, so a bad password file fails only
    `ups_kill_power`.
    `clock` is the caller's clock port (the daemon's); the system clocks without it."""
    clocks = clock or Clock()
    try:
        kube: KubeApi = Kube(config.kubeconfig)
    except KubeError as exc:
        # Without the API the node stages must still run: a shutdown protects hardware first.
        progress("kube", "warning", str(exc))
        kube = UnavailableKube(str(exc))
    with contextlib.ExitStack() as stack:
        stack.enter_context(contextlib.closing(kube))  # type: ignore[type-var]
        if warmer is None:
            port = stack.enter_context(open_port(config))
            for warning in port.warnings:
                progress("inventory", "warning", warning)
            warmer = ConnectionWarmer(lambda: port)
            # joined before the port (and its control dir) goes away
            stack.callback(warmer.join, 30.0)
        if warm:
            warmer.warm(clocks.monotonic())
        ansible = warmer.ansible
        yield FlowContext(
            config=config,
            ansible=ansible,
            kube=kube,
            store=StateStore(config.state_dir),
            read_ups=read_ups,
            ups_command=ups_command or (lambda c: Ups.from_config(config).instant_command(c)),
            poweroff_local=poweroff_this_host,
            power=open_power(config),
            node_answers=lambda node: ssh_answers(ssh_target(config, node)),
            clock=clocks.wall,
            monotonic=clocks.monotonic,
            progress=progress,
            cancel=cancel or threading.Event(),
        )
