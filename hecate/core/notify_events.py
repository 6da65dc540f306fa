"""Messages for people, as data: what happened, on which host and UPS, and what Hecate does next.

Pure: facts in, `Notice`s out (the daemon's shell spools and sends them, hecate.adapters.notify).
Each builder makes one short, human message; the event names and severities are the config's
(hecate.config.notify.EVENT_SEVERITY), so `events:` and `--event` use the same words.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hecate.config.notify import EVENT_SEVERITY, SEVERITY_RANK, Severity


@dataclass(frozen=True)
class Notice:
    """One message: its event and severity, a title and a body, when it was made (wall clock,
    kept through the spool), and its fold key (one message per key and episode)."""

    event: str
    severity: Severity
    title: str
    body: str
    at: float
    key: str = ""

    def to_json(self) -> dict[str, object]:
        return {
            "event": self.event,
            "severity": self.severity,
            "title": self.title,
            "body": self.body,
            "at": self.at,
            "key": self.key,
        }

    @staticmethod
    def from_json(data: dict[str, object]) -> Notice:
        event, severity = str(data["event"]), str(data["severity"])
        if event not in EVENT_SEVERITY or severity not in SEVERITY_RANK:
            raise ValueError(f"unknown event {event!r} or severity {severity!r}")
        at = data["at"]
        if not isinstance(at, int | float):
            raise ValueError("at is not a number")
        return Notice(
            event,
            severity,  # type: ignore[arg-type]  # checked against SEVERITY_RANK above
            str(data["title"]),
            str(data["body"]),
            float(at),
            str(data.get("key", "")),
        )


@dataclass(frozen=True)
class Where:
    """Who speaks: this host and its UPS."""

    host: str
    ups: str


def _minutes(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"


def notice(
    where: Where, event: str, what: str, nxt: str, at: float, *, key: str = "", worse: bool = False
) -> Notice:
    """A message in the common shape: "[host] UPS ups: what. Next: what Hecate does next."
    `worse`: the event's severity raised to critical (the UPS unreadable while on battery)."""
    severity: Severity = "critical" if worse else EVENT_SEVERITY[event]
    title = f"Hecate on {where.host}: {event.replace('_', ' ')}"
    body = f"[{where.host}] UPS {where.ups}: {what}. Next: {nxt}."
    return Notice(event, severity, title, body, at, key or f"{event}:{where.ups}")


def on_battery(
    where: Where, runtime_s: float | None, threshold_s: float, charge: float | None, at: float
) -> Notice:
    charge_text = "unknown" if charge is None else f"{charge:.0f} %"
    what = (
        f"on battery: runtime {_minutes(runtime_s)}, charge {charge_text}; a shutdown starts "
        f"below {_minutes(threshold_s)} of runtime"
    )
    return notice(where, "on_battery", what, "watching the battery; no action yet", at)


def power_restored(where: Where, outage_s: float, startup_pending: bool, at: float) -> Notice:
    nxt = (
        "the cluster starts up once the power gate opens"
        if startup_pending
        else "nothing: the cluster kept running"
    )
    what = f"mains back and stable; the outage lasted {_minutes(outage_s)}"
    return notice(where, "power_restored", what, nxt, at)


def shutdown_triggered(where: Where, reason: str, budget_s: float, at: float) -> Notice:
    what = f"shutdown triggered ({reason}); budget {_minutes(budget_s)}"
    return notice(where, "shutdown_triggered", what, "the cluster shuts down in stages", at)


@dataclass(frozen=True)
class FlowSummary:
    """What a finished flow tells people (from its report, by the shell)."""

    kind: str  # shutdown | startup
    outcome: str  # success | partial | failed | aborted | refused | error
    duration_s: float
    failed_stages: Sequence[tuple[str, str]] = ()  # (stage, why)
    unreached: Sequence[str] = ()  # nodes not reached
    detail: str = ""  # the report's message, or why it could not run


def flow_finished(where: Where, flow: FlowSummary, budget_s: float, at: float) -> list[Notice]:
    """stage_failed for each failed stage, then shutdown_finished or startup_finished/failed."""
    out = [
        notice(
            where,
            "stage_failed",
            f"{flow.kind} stage {stage} failed: {why}",
            f"the {flow.kind} goes on with the next stage",
            at,
            key=f"stage_failed:{flow.kind}:{stage}",
        )
        for stage, why in flow.failed_stages
    ]
    unreached = f"; nodes not reached: {', '.join(flow.unreached)}" if flow.unreached else ""
    if flow.kind == "shutdown":
        what = (
            f"shutdown {flow.outcome} in {_minutes(flow.duration_s)} "
            f"(budget {_minutes(budget_s)}){unreached}"
        )
        nxt = "the cluster starts up when power is back and stable"
        if flow.outcome not in ("success", "partial"):
            nxt = "the shutdown is retried while the battery lasts"
        out.append(notice(where, "shutdown_finished", what, nxt, at))
    elif flow.outcome in ("success", "partial"):
        what = f"startup {flow.outcome} in {_minutes(flow.duration_s)}{unreached}"
        out.append(notice(where, "startup_finished", what, "watching the UPS", at))
    else:
        why = f": {flow.detail}" if flow.detail else ""
        what = f"startup {flow.outcome}{why}"
        out.append(notice(where, "startup_failed", what, "the startup is retried in a minute", at))
    return out


def ups_unreadable(
    where: Where, detail: str, seconds: float, on_battery: bool, at: float
) -> Notice:
    if on_battery:
        what = f"the UPS cannot be read while on battery ({detail})"
        nxt = "a shutdown starts if it stays unreadable (ups.comm_loss_dead_seconds)"
    else:
        what = f"the UPS has been unreadable for {_minutes(seconds)} on mains ({detail})"
        nxt = "an outage now would go unseen: check upsd and the UPS's cable"
    return notice(where, "ups_unreadable", what, nxt, at, worse=on_battery)


def battery_replace(where: Where, why: str, at: float) -> Notice:
    what = f"the battery needs replacing ({why})"
    return notice(where, "battery_replace", what, "shutdowns start earlier on a weak battery", at)


def peer_unreachable(where: Where, who: str, detail: str, at: float) -> Notice:
    what = f"{who} cannot be reached ({detail})"
    nxt = "a trigger is retried; see coordination.fallback_local_shutdown"
    return notice(where, "peer_unreachable", what, nxt, at, key=f"peer_unreachable:{who}")


def state_set_aside(where: Where, files: Sequence[str], at: float) -> Notice:
    what = f"state file(s) found unreadable and set aside: {', '.join(files)}"
    nxt = "Hecate goes on with fresh files; inspect the *.corrupt-* copies (hecate state)"
    return notice(where, "state_set_aside", what, nxt, at)


def load_shed(where: Where, what: str, reason: str, at: float) -> Notice:
    """Load shedding (issue 28) scaled workloads down or powered agents off."""
    nxt = "restored once mains is stable (hecate status shows what is shed)"
    return notice(where, "load_shed", f"load shed to buy runtime ({reason}): {what}", nxt, at)


def load_restored(where: Where, what: str, left: str, at: float) -> Notice:
    nxt = f"what is left is tried again: {left}" if left else "nothing: all is as before"
    return notice(where, "load_restored", f"mains stable, restored what was shed: {what}", nxt, at)


def self_update_failed(where: Where, at: float) -> Notice:
    what = "the last hecate-update run failed"
    nxt = "Hecate keeps running this version; see journalctl -u hecate-update"
    return notice(where, "self_update_failed", what, nxt, at)


# The bound of the alert HecateDrillNotRun (configs/prometheus/hecate-rules.yml): the same month.
DRILL_MAX_AGE_S = 30 * 86400.0


def overdue_drills(
    last_runs: Mapping[str, float], known: Sequence[str], now: float, max_age_s: float
) -> tuple[str, ...]:
    """The drills never run, or last run more than `max_age_s` before `now`."""
    return tuple(sorted(n for n in known if n not in last_runs or now - last_runs[n] > max_age_s))


def drills_overdue(where: Where, names: Sequence[str], at: float) -> Notice:
    shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
    what = f"{len(names)} drill(s) not run for {DRILL_MAX_AGE_S / 86400:.0f} days: {shown}"
    nxt = "run `hecate drill run NAME --execute` in a maintenance window (`hecate drill list`)"
    return notice(where, "drills_overdue", what, nxt, at)


def startup_waiting(where: Where, seconds: float, waits_for: str, at: float) -> Notice:
    what = f"the startup has waited {_minutes(seconds)} for {waits_for}"
    return notice(where, "startup_waiting", what, "it starts as soon as that is so", at)


def test_message(where: Where, event: str, at: float) -> Notice:
    """`hecate notify test [--event NAME]`: a test in that event's words and severity."""
    if event == "test":
        return notice(where, "test", "a test message from `hecate notify test`", "nothing", at)
    sample = notice(where, event, f"TEST of the {event} message", "nothing (a test)", at)
    return Notice(sample.event, sample.severity, f"[TEST] {sample.title}", sample.body, at)
