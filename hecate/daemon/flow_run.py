"""One flow run by the daemon's worker thread: the shutdown or startup with its options."""

from __future__ import annotations

import threading

from hecate.config.model import HecateConfig
from hecate.core import supervisor_vocabulary as sv
from hecate.core.plans import ShutdownOptions, StartupOptions
from hecate.core.run_history import Outcome
from hecate.daemon import wiring
from hecate.flows.report import FlowReport

# A report's outcome as the supervisor's vocabulary names it (others are FAILED).
OUTCOMES = {o: sv.FlowOutcome(o.value) for o in Outcome if o.value in set(sv.FlowOutcome)}


def run_flow(
    config: HecateConfig,
    context_factory: wiring.ContextFactory,
    kind: sv.FlowKind,
    reason: str,
    cancel: threading.Event,
    nodes: tuple[str, ...] | None = None,
) -> FlowReport:
    """Run the `kind` flow to its report; raises what the flow raises (the caller counts it).
    `nodes`: a partial flow's (power feeds, issue 28); None: the whole cluster."""
    # The flows load Ansible and lightkube: imported with the first flow (idle RSS, #16), in
    # the caller's try: an import that fails is a flow that could not run (retried), never a
    # worker that dies without telling the supervisor.
    from hecate.flows.shutdown import run_shutdown  # noqa: PLC0415
    from hecate.flows.startup import run_startup  # noqa: PLC0415

    with context_factory(cancel) as ctx:
        if kind is sv.FlowKind.SHUTDOWN:
            options = ShutdownOptions(mode=config.shutdown.ups_mode, reason=reason, nodes=nodes)
            return run_shutdown(ctx, options)
        return run_startup(ctx, StartupOptions(reason=reason, nodes=nodes))
