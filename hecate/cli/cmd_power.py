"""`hecate power status|on|off [NODE...]`: each node's power, read and switched out of band
(IPMI, Redfish, Wake-on-LAN; issue 25). on and off are dry runs unless --execute."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, TypeVar, cast

import typer

from hecate.adapters.power.port import PowerPort, open_power, ssh_target
from hecate.adapters.power.ssh_answer import ssh_answers
from hecate.cli.common import emit_json, load
from hecate.cli.exits import EXIT_CODES_HELP, EXIT_FAILED, EXIT_USAGE
from hecate.cli.failure import fail
from hecate.cli.options import ConfigOpt, JsonOpt
from hecate.cli.style import BAD, GOOD, NOTE, paint
from hecate.config.load import DEFAULT_CONFIG_PATH
from hecate.config.model import HecateConfig
from hecate.config.power import IpmiPower, RedfishPower, WolPower
from hecate.core.power import PowerAction, PowerMethod, PowerResult, cannot_switch

_HELP = """Each node's power, read and switched out of band: IPMI or Redfish BMCs, Wake-on-LAN.

The method of each node is in the config under power.nodes (a node not listed has method none:
its BIOS powers it on when mains returns). Wake-on-LAN and none cannot read a power state: such
a node is on when its SSH answers, unknown otherwise, and is powered off over SSH (hecate
shutdown does it). on and off are dry runs unless --execute.

Examples: hecate power status; hecate power on titan-1 --execute;
hecate power off titan-0 --hard --execute.
"""

app = typer.Typer(help=_HELP, no_args_is_help=True, epilog=EXIT_CODES_HELP)

NodesArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="Node names (nodes.servers/agents); none given: every node (for on: every node "
        "under power.nodes with a method other than none).",
        show_default=False,
    ),
]
ExecuteOpt = Annotated[
    bool, typer.Option("--execute", help="Really do it (without it: print what would be done).")
]
PARALLEL = 8  # BMC calls at once: each is bounded; a dead BMC must not hold up the others
T = TypeVar("T")


def _nodes(
    cfg: HecateConfig, names: Sequence[str] | None, *, switchable_only: bool = False
) -> list[str]:
    known = cfg.nodes.all
    if not names and switchable_only:
        found = [n for n in known if cfg.power.method_of(n) != "none"]
        if not found:
            fail("no node has out-of-band power: see power.nodes in the config", EXIT_USAGE)
        return found
    if not names:
        return list(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        fail(
            f"unknown node(s) {', '.join(unknown)}: not in nodes.servers or nodes.agents",
            EXIT_USAGE,
            "NODE",
        )
    return list(dict.fromkeys(names))


def _each(nodes: list[str], job: Callable[[str], T]) -> list[T]:
    with ThreadPoolExecutor(max_workers=min(PARALLEL, max(1, len(nodes)))) as pool:
        return list(pool.map(job, nodes))


def _how(cfg: HecateConfig, node: str) -> str:
    """Where the node's power is switched, for the dry run."""
    entry = cfg.power.nodes.get(node)
    if isinstance(entry, IpmiPower):
        return f"ipmi BMC {entry.address.host}:{entry.port}"
    if isinstance(entry, RedfishPower):
        return f"redfish {entry.url} system {entry.system}"
    if isinstance(entry, WolPower):
        return f"wol magic packet for {entry.mac} to {entry.broadcast}:{entry.port}"
    return "none (the BIOS; no out-of-band power)"


def _status_row(cfg: HecateConfig, power: PowerPort, node: str) -> dict[str, Any]:
    reading = power.status(node)
    row: dict[str, Any] = reading.to_json()
    has_bmc = reading.method in ("ipmi", "redfish")
    row["failed"] = has_bmc and reading.state == "unknown" and not reading.in_between
    if has_bmc and reading.state == "on":
        answers, seen = ssh_answers(ssh_target(cfg, node))
        row["ssh"] = {"answers": answers, "reason": seen}
        if not answers:
            row["note"] = "the BMC says on but SSH does not answer (booting, or the OS is hung)"
    elif not has_bmc:
        row["ssh"] = {"answers": reading.state == "on", "reason": reading.reason}
    return row


def _paint_state(state: str) -> str:
    colour = {"on": GOOD, "off": NOTE}.get(state, BAD)
    return paint(f"{state:<7}", colour)


def _report_failures(lines: list[tuple[str, str]]) -> None:
    for node, reason in lines:
        typer.echo(f"{paint('error:', BAD, err=True, bold=True)} {node}: {reason}", err=True)


@app.command("status")
def status(
    nodes: NodesArg = None, config: ConfigOpt = DEFAULT_CONFIG_PATH, as_json: JsonOpt = False
) -> None:
    """Read each node's power state: on, off or unknown, with the reason.

    A BMC (ipmi, redfish) is asked for its chassis power; this also proves it accepts its
    credentials, and changes nothing. A wol or none node is on when its SSH answers, unknown
    otherwise. A BMC that says on while SSH does not answer is noted. A BMC that could not be
    read is one `error:` line on stderr naming the node and why; exit 1 then.
    """
    cfg = load(config)
    names = _nodes(cfg, nodes)
    power = open_power(cfg)
    rows = _each(names, lambda node: _status_row(cfg, power, node))
    failed = [(r["node"], r["reason"]) for r in rows if r["failed"]]
    if as_json:
        emit_json({"ok": not failed, "nodes": rows})
    else:
        width = max(len(n) for n in names)
        for row in rows:
            if row["failed"]:
                continue  # said once, on stderr, below
            line = f"{row['node']:<{width}}  {row['method']:<7}  {_paint_state(row['state'])}  "
            line += row["reason"]
            if "note" in row:
                line += f"; {paint(row['note'], NOTE)}"
            typer.echo(line)
    if failed:
        _report_failures(failed)
        raise typer.Exit(EXIT_FAILED)


def _switch(
    nodes: list[str] | None,
    config: ConfigOpt,
    execute: bool,
    as_json: bool,
    verb: PowerAction,
    act: Callable[[PowerPort, str], PowerResult],
) -> None:
    cfg = load(config)
    names = _nodes(cfg, nodes, switchable_only=True)
    if not execute:
        plan: list[dict[str, Any]] = []
        for n in names:
            method = cast(PowerMethod, cfg.power.method_of(n))
            step = {"node": n, "method": method, "via": _how(cfg, n)}
            reason = cannot_switch(method, verb)  # what --execute would fail with
            plan.append(step if reason is None else {**step, "reason": reason})
        cannot = [(step["node"], step["reason"]) for step in plan if "reason" in step]
        if as_json:
            emit_json({"executed": False, "action": verb, "ok": not cannot, "plan": plan})
        else:
            for step in plan:
                if "reason" not in step:
                    typer.echo(f"would power {verb} {step['node']} ({step['via']})")
            typer.echo("dry run: nothing was switched; add --execute to do it")
        if cannot:
            _report_failures(cannot)
            raise typer.Exit(EXIT_FAILED)
        return
    power = open_power(cfg)
    results = _each(names, lambda node: act(power, node))
    failed = [(r.node, r.reason) for r in results if not r.ok]
    if as_json:
        emit_json(
            {
                "executed": True,
                "action": verb,
                "ok": not failed,
                "results": [r.to_json() for r in results],
            }
        )
    else:
        for result in results:
            if result.ok:
                typer.echo(f"{result.node}: {result.reason}")
    if failed:
        _report_failures(failed)
        raise typer.Exit(EXIT_FAILED)


@app.command("on")
def power_on(
    nodes: NodesArg = None,
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
    execute: ExecuteOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Power nodes on through their BMC or a Wake-on-LAN packet (dry run unless --execute).

    The BMC (or the network) accepting it is reported, not the node being up: `hecate power
    status` and SSH tell when it is. A node with method none cannot be powered on by Hecate.
    Exit 1 when a node could not be (one line per such node on stderr).
    """
    _switch(nodes, config, execute, as_json, "on", lambda power, node: power.on(node))


@app.command("off")
def power_off(
    nodes: Annotated[
        list[str], typer.Argument(help="Node names (at least one: nothing is off by default).")
    ],
    config: ConfigOpt = DEFAULT_CONFIG_PATH,
    hard: Annotated[
        bool,
        typer.Option(
            "--hard",
            help="Cut the power (IPMI chassis power off, Redfish ForceOff) instead of asking the "
            "OS to shut down (soft: ACPI, Redfish GracefulShutdown).",
        ),
    ] = False,
    execute: ExecuteOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Power nodes off through their BMC (dry run unless --execute); soft unless --hard.

    This does not stop k3s first: use hecate shutdown for the cluster. A wol or none node has no
    BMC: its off goes through SSH (hecate shutdown), and it is reported as failed here.
    """
    _switch(nodes, config, execute, as_json, "off", lambda power, node: power.off(node, hard=hard))
