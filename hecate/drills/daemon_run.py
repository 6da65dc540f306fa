"""The daemon run in a drill: in a thread, on a simulated UPS, with drill settings."""

from __future__ import annotations

import threading

from hecate.config.model import CoordinationConfig, HecateConfig, MetricsConfig
from hecate.daemon.service import Daemon
from hecate.drills.base import DrillEnv
from hecate.drills.simulated_ups import SimulatedUps
from hecate.flows.context import FlowContext


def drill_config(config: HecateConfig) -> HecateConfig:
    """The daemon settings for a drill: fast polls, cluster-only, no network listeners."""
    return config.model_copy(
        update={
            "ups": config.ups.model_copy(
                update={"poll_interval_seconds": 1.0, "debounce_polls": 2}
            ),
            "shutdown": config.shutdown.model_copy(
                update={"ups_mode": "cluster-only", "etcd_snapshot": False}
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

    def __init__(self, env: DrillEnv, ups: SimulatedUps) -> None:
        config = drill_config(env.config)

        def factory(cancel: threading.Event) -> _Ctx:
            return _Ctx(env, cancel)

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

    def __init__(self, env: DrillEnv, cancel: threading.Event) -> None:
        self.env, self.cancel = env, cancel
        self._cm = env.context_factory()

    def __enter__(self) -> FlowContext:
        ctx = self._cm.__enter__()
        ctx.config = drill_config(self.env.config)  # cluster-only, no snapshot: see drill_config
        ctx.cancel = self.cancel
        ctx.read_ups = None  # the guards must not read the real UPS during a simulated outage
        return ctx

    def __exit__(self, *exc: object) -> None:
        self._cm.__exit__(None, None, None)
