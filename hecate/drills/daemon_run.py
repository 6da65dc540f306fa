"""The daemon run in a drill: in a thread, on a simulated UPS, with drill settings."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from hecate.config.model import CoordinationConfig, HecateConfig, MetricsConfig
from hecate.daemon.service import Daemon
from hecate.drills.base import DrillEnv
from hecate.drills.simulated_ups import SimulatedUps
from hecate.errors import UpsError
from hecate.flows.context import FlowContext


def drill_config(config: HecateConfig, shutdown: Mapping[str, Any] | None = None) -> HecateConfig:
    """The daemon settings for a drill: fast polls, cluster-only (unless `shutdown` says
    otherwise: the power race powers the nodes off), no network listeners."""
    return config.model_copy(
        update={
            "ups": config.ups.model_copy(
                update={"poll_interval_seconds": 1.0, "debounce_polls": 2}
            ),
            "shutdown": config.shutdown.model_copy(
                update={"ups_mode": "cluster-only", "etcd_snapshot": False, **(shutdown or {})}
            ),
            "startup": config.startup.model_copy(
                update={"power_stable_seconds": 2.0, "min_battery_charge": 0.0}
            ),
            "metrics": MetricsConfig(listen="127.0.0.1:0"),
            "coordination": CoordinationConfig(),
        }
    )


class DaemonRun:
    """The daemon in a thread, polling a simulated UPS."""

    def __init__(
        self,
        env: DrillEnv,
        ups: SimulatedUps,
        *,
        shutdown: Mapping[str, Any] | None = None,
        ups_command: Callable[[str], None] | None = None,
    ) -> None:
        config = drill_config(env.config, shutdown)

        def factory(cancel: threading.Event) -> _Ctx:
            return _Ctx(env, cancel, shutdown, ups_command)

        self.daemon = Daemon(config, reader=ups.read, context_factory=factory)
        self.thread = threading.Thread(target=self.daemon.run, name="hecate-drill-daemon")

    def __enter__(self) -> Daemon:
        self.thread.start()
        return self.daemon

    def __exit__(self, *exc: object) -> None:
        self.daemon.request_stop()
        self.thread.join(600)


class _Ctx:
    """Opens the drill's flow context, wiring in the daemon's cancel event."""

    def __init__(
        self,
        env: DrillEnv,
        cancel: threading.Event,
        shutdown: Mapping[str, Any] | None = None,
        ups_command: Callable[[str], None] | None = None,
    ) -> None:
        self.env, self.cancel = env, cancel
        self.shutdown, self.ups_command = shutdown, ups_command
        self._cm = env.context_factory()

    def __enter__(self) -> FlowContext:
        ctx = self._cm.__enter__()
        ctx.config = drill_config(self.env.config, self.shutdown)  # see drill_config
        ctx.cancel = self.cancel
        ctx.read_ups = None  # the guards must not read the real UPS during a simulated outage
        # nor may a drill ever send the real UPS a command: the simulated one answers
        ctx.ups_command = self.ups_command or _no_ups_command
        return ctx

    def __exit__(self, *exc: object) -> None:
        self._cm.__exit__(None, None, None)


def _no_ups_command(command: str) -> None:
    raise UpsError(f"drill: {command} not sent (a drill never commands the real UPS)")
