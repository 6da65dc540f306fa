"""`hecate startup` and `hecate shutdown`: dry-run plans by default, guarded execution."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, NoReturn

import typer

from hecate.adapters.statedir.store import StateStore
from hecate.cli.common import emit_json, load, now, read_ups_or_error
from hecate.cli.execute import execute_flow, exit_code_for_report
from hecate.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_REFUSED
from hecate.cli.feed_text import check_feed_names, feed_lines
from hecate.cli.options import ConfigOpt, JsonOpt
from hecate.cli.peer_startup import ask_coordinator_to_start
from hecate.cli.plan_text import plan_json, plan_lines
from hecate.config.load import DEFAULT_CONFIG_PATH
from hecate.config.model import HecateConfig
from hecate.core.budget import budget_from_config
from hecate.core.etcd import stopped_at
from hecate.core.feeds import feed_loss
from hecate.core.plan_marks import Probes, StageMark, plan_marks, would_fail
from hecate.core.plans import (
    ClusterView,
    FlowPlan,
    ShutdownOptions,
    StartupOptions,
    shutdown_plan,
    startup_plan,
)
from hecate.core.readings import Poll
from hecate.core.startup_refusals import Refusal, StartupOverrides
from hecate.errors import StateError
from hecate.flows.guard_facts import StartupRefusedError, startup_facts
from hecate.flows.shutdown import run_shutdown
from hecate.flows.startup import run_startup

ExecuteOpt = Annotated[
    bool, typer.Option("--execute", help="Really do it. Without it only the plan is printed.")
]
NoProbeOpt = Annotated[
    bool,
    typer.Option(
        "--no-probe",
        help="Dry run: print the plan without first probing the API, SSH and the UPS "
        "(offline planning).",
    ),
]


class Mode(StrEnum):
    poweroff = "poweroff"
    cluster_only = "cluster-only"


def _print_plan(
    title: str, plan: FlowPlan, footer: str, marks: dict[str, StageMark] | None = None
) -> None:
    for line in plan_lines(title, plan, marks):
        typer.echo(line)
    typer.echo(footer)


def _probe(cfg: HecateConfig, *, ups: bool) -> tuple[Probes, Poll | None]:
    """The dry run's look before it plans (hecate/cli/plan_probes.py): bounded, in parallel."""
    from hecate.cli.plan_probes import probe_cluster  # noqa: PLC0415 - only for a probing dry run

    return probe_cluster(cfg, read_ups=(lambda: read_ups_or_error(cfg)) if ups else None)


def _dry_run_exit(marks: dict[str, StageMark]) -> None:
    """A dry run exits 1 when the probes say a stage would fail (the run would not succeed),
    else 0: skips and warnings are what a run on that cluster would do, and still succeed."""
    if would_fail(marks):
        raise typer.Exit(EXIT_FAILED)


def _probe_lines(probes: Probes | None, marks: dict[str, StageMark]) -> list[str]:
    from hecate.cli.plan_probes import probes_summary  # noqa: PLC0415

    if probes is None:
        return ["not probed (--no-probe): nothing says which stages would be skipped or fail"]
    if would_fail(marks):
        verdict = "a stage would fail (marked !): the run would not end in success"
    else:
        verdict = "no stage would fail" + (" (see the marks !)" if marks else "")
    return [f"probed: {probes_summary(probes)}", f"  {verdict}"]


def _probes_json(probes: Probes | None) -> dict[str, object] | None:
    from hecate.cli.plan_probes import probes_json  # noqa: PLC0415

    return probes_json(probes) if probes is not None else None


def startup_command(
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
    execute: ExecuteOpt = False,
    force_flux_branch: Annotated[
        str | None,
        typer.Option("--force-flux-branch", help="Point Flux's GitRepository at this branch."),
    ] = None,
    allow_peer_startup: Annotated[
        bool, typer.Option("--allow-peer-startup", help="Allow startup on a peer host.")
    ] = False,
    auto_peer_failover: Annotated[
        bool,
        typer.Option(
            "--auto-peer-failover",
            help="On a peer: ask the coordinator to start up; start locally only when the "
            "coordinator cannot be reached.",
        ),
    ] = False,
    allow_on_battery: Annotated[
        bool, typer.Option("--allow-on-battery", help="Start even while the UPS is on battery.")
    ] = False,
    allow_peer_ups_down: Annotated[
        bool,
        typer.Option(
            "--allow-peer-ups-down",
            help="Start even though the UPS of the peer whose trigger shut the cluster down is "
            "not back on mains and stable yet (hecate status names it).",
        ),
    ] = False,
    as_json: JsonOpt = False,
    no_probe: NoProbeOpt = False,
) -> None:
    """Bring the cluster up in stages (dry run unless --execute).

    Servers, API, agents, Nodes Ready, Flux resumed.

    Refused (exit 3) on a peer host, on battery, below startup.min_battery_charge, while
    a shutdown intent is active and not stale, or while an instance in
    coordination.peer_hosts is starting or shutting down, or while the UPS of the peer whose
    trigger shut the cluster down is not back. The same guards as the daemon's and
    the boot unit's startups, checked once inside the startup's lock. Dry-run unless --execute.

    The dry run first probes the API, each node's SSH port and the UPS (3 s at most, all at
    once) and marks each stage that would be skipped, warn or fail, and why; it exits 1 when
    one would fail, else 0 (--no-probe: the plan alone, for offline planning).
    """
    cfg = load(config)
    overrides = StartupOverrides(
        allow_peer_startup=allow_peer_startup or auto_peer_failover,
        allow_on_battery=allow_on_battery,
        allow_peer_ups_down=allow_peer_ups_down,
    )
    if execute and auto_peer_failover and cfg.coordination.role == "peer":
        answer = ask_coordinator_to_start(cfg)
        if answer is not None:
            typer.echo(f"the coordinator handles the startup: {answer}")
            raise typer.Exit(EXIT_OK)
        typer.echo("coordinator unreachable: starting up from this peer", err=True)
    # One options value for the dry run and the run: the plan printed is the plan walked.
    options = StartupOptions(force_flux_branch, overrides, reason="manual startup")
    plan = startup_plan(cfg, options, _cluster_view(cfg))
    if execute:
        if not as_json:
            _print_plan("startup plan:", plan, "")
        # The guards are evaluated once, inside the startup's lock (hecate/flows/guard_facts.py).
        try:
            report = execute_flow(cfg, lambda ctx: run_startup(ctx, options), as_json=as_json)
        except StartupRefusedError as exc:
            _refused(exc.refusals, plan, execute=True, as_json=as_json)
        raise typer.Exit(exit_code_for_report(report))
    store = StateStore(cfg.state_dir)
    probes: Probes | None = None
    marks: dict[str, StageMark] = {}
    if no_probe:
        refusals = startup_facts(
            cfg, store, lambda: read_ups_or_error(cfg), now(), overrides, move=False
        )
    else:
        # One UPS reading, taken with the other probes, for the guards and the marks alike;
        # when the probe's read did not finish in time, the guards read the UPS as a run does
        # (within ups.timeout_seconds): a probe's deadline is not the UPS's silence.
        probes, poll = _probe(cfg, ups=True)
        marks = plan_marks(cfg, plan, probes)
        refusals = startup_facts(
            cfg,
            store,
            lambda: poll if poll is not None else read_ups_or_error(cfg),
            now(),
            overrides,
            move=False,
        )
    if refusals:
        _refused(refusals, plan, execute=False, as_json=as_json, marks=marks, probes=probes)
    if as_json:
        emit_json(
            {
                "command": "startup",
                "execute": False,
                "refused": [],
                "plan": plan_json(plan, marks),
                "probes": _probes_json(probes),
                "would_fail": would_fail(marks),
            }
        )
    else:
        _print_plan("startup plan:", plan, "", marks)
        for line in _probe_lines(probes, marks):
            typer.echo(line)
        typer.echo("dry run: add --execute to start up")
    _dry_run_exit(marks)


def _cluster_view(cfg: HecateConfig) -> ClusterView:
    """What the run will know too: the servers' stop times (the start order)."""
    try:
        return ClusterView(stopped_at=stopped_at(StateStore(cfg.state_dir).load_runs(move=False)))
    except StateError:
        return ClusterView()


def _refused(
    refusals: list[Refusal],
    plan: FlowPlan,
    *,
    execute: bool,
    as_json: bool,
    marks: dict[str, StageMark] | None = None,
    probes: Probes | None = None,
) -> NoReturn:
    if as_json:
        # the dry run's keys whether refused or not: one shape for scripts
        emit_json(
            {
                "command": "startup",
                "execute": execute,
                "refused": [{"guard": r.guard, "message": r.message} for r in refusals],
                "plan": plan_json(plan, marks),
                "probes": _probes_json(probes),
                "would_fail": would_fail(marks or {}),
            }
        )
    else:
        for refusal in refusals:
            typer.echo(f"refused ({refusal.guard}): {refusal.message}", err=True)
    raise typer.Exit(EXIT_REFUSED)


def shutdown_command(
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
    execute: ExecuteOpt = False,
    mode: Annotated[
        Mode,
        typer.Option(
            "--mode",
            help="poweroff: stop Kubernetes and power the hosts off. cluster-only: stop "
            "Kubernetes, leave hosts running (maintenance).",
        ),
    ] = Mode.poweroff,
    reason: Annotated[
        str, typer.Option("--reason", help="Why; recorded in the intent and run history.")
    ] = "manual",
    skip_drain: Annotated[bool, typer.Option("--skip-drain", help="Do not drain agents.")] = False,
    skip_etcd_snapshot: Annotated[
        bool, typer.Option("--skip-etcd-snapshot", help="Do not take an etcd snapshot first.")
    ] = False,
    as_json: JsonOpt = False,
    no_probe: NoProbeOpt = False,
    feed: Annotated[
        list[str] | None,
        typer.Option(
            "--feed",
            help="The UPS feed that lost power (repeat for several; power.feeds): only the "
            "nodes whose every feed is lost are stopped, unless power.partial_policy refuses "
            "it (then the whole cluster).",
        ),
    ] = None,
) -> None:
    """Shut the cluster down in stages (dry run unless --execute).

    Flux suspended, nodes cordoned, k3s-agent stopped on agents, k3s on servers, then hardware
    poweroff (in poweroff mode). The plan shows the nodes, the stages and the estimated duration.

    The dry run first probes the API, each node's SSH port and the UPS (3 s at most, all at
    once) and marks each stage that would be skipped, warn or fail, and why; it exits 1 when
    one would fail, else 0 (--no-probe: the plan alone, for offline planning).
    """
    cfg = load(config)
    try:
        # a dry run moves nothing: a corrupt history is reported and left in place
        runs = StateStore(cfg.state_dir).load_runs(move=execute)
    except StateError as exc:
        typer.echo(f"warning: {exc}; the budget uses its fallback", err=True)
        runs = []
    budget = budget_from_config(cfg, runs)
    loss = None
    if feed:
        check_feed_names(cfg, feed)
        loss = feed_loss(cfg, feed)
    # One options value for the dry run and the run: the plan printed is the plan walked.
    nodes = loss.nodes if loss is not None else None
    options = ShutdownOptions(mode.value, reason, skip_drain, skip_etcd_snapshot, nodes)
    plan = shutdown_plan(cfg, options)
    title = (
        f"shutdown plan ({mode.value}, estimated {budget.estimate_s:.0f}s from {budget.source}):"
    )
    if loss is not None and not as_json:
        for line in feed_lines(loss):
            typer.echo(line)
    if loss is not None and loss.scope == "none":
        if as_json:
            emit_json(
                {"command": "shutdown", "execute": execute, "feeds": loss.to_json(cfg.nodes.all)}
            )
        raise typer.Exit(EXIT_OK)
    if execute:
        # no probes here: the run's stages check what they need as they go
        if not as_json:
            _print_plan(title, plan, "")
        report = execute_flow(cfg, lambda ctx: run_shutdown(ctx, options), as_json=as_json)
        raise typer.Exit(exit_code_for_report(report))
    probes: Probes | None = None
    marks: dict[str, StageMark] = {}
    if not no_probe:
        needs_ups = any(s.name == "ups_kill_power" for s in plan.stages)
        probes, _ = _probe(cfg, ups=needs_ups)
        marks = plan_marks(cfg, plan, probes)
    if as_json:
        emit_json(
            {
                "command": "shutdown",
                "execute": execute,
                "mode": mode.value,
                "reason": reason,
                "feeds": loss.to_json(cfg.nodes.all) if loss is not None else None,
                "estimated_duration_s": budget.estimate_s,
                "plan": plan_json(plan, marks),
                "probes": _probes_json(probes),
                "would_fail": would_fail(marks),
            }
        )
    else:
        _print_plan(title, plan, "", marks)
        for line in _probe_lines(probes, marks):
            typer.echo(line)
        typer.echo("dry run: add --execute to shut down")
    _dry_run_exit(marks)
