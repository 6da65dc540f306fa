"""The one guard set every startup goes through, gathered once.

`run_startup` calls `guard_startup` inside its flow lock, so the CLI (`hecate startup
--execute`), the bootstrap unit (the same command at boot) and the daemon's power-return startup
are refused by the same rules, from ONE UPS reading, the local intent and the peers' intents,
all judged at the context's clock. A dry run gathers the same facts with `startup_facts` (no
lock: it changes nothing).
"""

from __future__ import annotations

from collections.abc import Callable

from hecate.adapters.peers.http import peers_from_config
from hecate.adapters.statedir.awaiting import load_awaiting
from hecate.adapters.statedir.store import StateStore
from hecate.config.model import HecateConfig
from hecate.core.intent import initial_intent
from hecate.core.peers import Peers
from hecate.core.readings import CommError, Poll
from hecate.core.startup_refusals import Refusal, StartupOverrides, startup_refusals
from hecate.errors import (
    GuardRefusedError,
    HecateError,
    IntentCorruptError,
    StartupStateError,
    StateError,
)
from hecate.flows.context import FlowContext


class StartupRefusedError(GuardRefusedError):
    """Startup refused: every refusal, for the CLI's text and --json output."""

    def __init__(self, refusals: list[Refusal]) -> None:
        super().__init__("; ".join(f"{r.guard}: {r.message}" for r in refusals))
        self.refusals = refusals


def startup_facts(
    config: HecateConfig,
    store: StateStore,
    read_ups: Callable[[], Poll] | None,
    now: float,
    overrides: StartupOverrides,
    peers: Peers | None = None,
    *,
    move: bool = True,
) -> list[Refusal]:
    """Every refusal right now; the UPS is read once and each peer asked once. A dry run
    passes move=False: a corrupt intent refuses but is left as it is."""
    unknown: list[Refusal] = []
    try:
        intent = store.read_intent(now, move=move)
    except IntentCorruptError as exc:  # fail closed: an unknown intent refuses the startup
        intent = initial_intent(now, store.host)
        unknown = [Refusal("intent", str(exc))]
    except StateError as exc:  # cannot be read at all (a failing disk): one error, exit 3
        raise StartupStateError(
            f"startup refused: the intent cannot be read ({exc}); check the state "
            "directory's disk and run it again"
        ) from None
    ups: Poll | None = None
    if read_ups is not None:
        try:
            ups = read_ups()
        except HecateError as exc:  # no reading: mains unconfirmed, the "ups" guard refuses
            ups = CommError(str(exc))
    coordination = config.coordination
    if peers is None:
        peers = peers_from_config(coordination.peer_hosts, coordination.token_file)
    # Whose UPS the startup waits for (a peer's trigger shut the cluster down). Read, never
    # moved here (the daemon sets a corrupt file aside); unreadable, every peer (fail closed).
    awaiting = load_awaiting(config.state_dir, move=False)
    if awaiting is None:
        awaiting = frozenset(f"@{address}" for address in coordination.peer_hosts)
    return unknown + startup_refusals(
        config, intent, ups, now, overrides, peers.intents(), awaiting
    )


def guard_startup(
    ctx: FlowContext, overrides: StartupOverrides, peers: Peers | None = None
) -> None:
    """Raise StartupRefusedError listing every refusal (the CLI maps it to exit 3)."""
    refusals = startup_facts(ctx.config, ctx.store, ctx.read_ups, ctx.clock(), overrides, peers)
    if refusals:
        raise StartupRefusedError(refusals)
