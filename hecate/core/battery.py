"""Battery truth: what the UPS claimed against what it delivered, from recorded outage traces.

Pure functions of traces (read through hecate.core.trace). For each stretch on battery:

- if the UPS ran out (the stretch ends low-battery, forced-shutdown, or with the UPS gone while on
  battery), the runtime it delivered is known exactly: from the first claim to the end. The
  ratio is delivered / claimed;
- otherwise (mains came back, or the cluster was shut down first), the claim's burn rate says it:
  an honest UPS's claimed runtime falls by one second per second at a steady load. If it fell by
  500 s in 300 s, each claimed second is worth 300/500 = 0.6 real seconds.

The correction factor is the duration-weighted mean of the last outages' ratios. A factor below
1 means the UPS overstates its runtime. Advisory unless `ups.runtime_correction: learned`, and
then it only ever moves the shutdown earlier (`corrected_threshold`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hecate.core.readings import CommError, UpsReading
from hecate.core.trace import TracePoint

MIN_STRETCH_S = 60.0  # shorter stretches say nothing about the battery
MIN_BURN_S = 30.0  # a claim that fell by less than this is too noisy to use
OUTAGES_USED = 5  # the last outages behind the correction factor
RATIO_RANGE = (0.05, 5.0)  # ratios outside this are firmware noise, not battery truth


@dataclass(frozen=True)
class OutageTruth:
    source: str
    start_t: float
    on_battery_s: float  # time from the first runtime claim to the end of the stretch
    claimed_start_s: float
    claimed_end_s: float | None
    load_pct: float | None  # mean load on battery, when reported
    ran_out: bool
    ratio: float  # delivered / claimed (1 = honest)

    @property
    def discharge_rate(self) -> float:
        """Claimed seconds burnt per real second (1 = honest)."""
        return 1.0 / self.ratio

    def to_json(self) -> dict[str, object]:
        return {
            "source": self.source,
            "start_t": self.start_t,
            "on_battery_s": round(self.on_battery_s, 1),
            "claimed_start_s": self.claimed_start_s,
            "claimed_end_s": self.claimed_end_s,
            "load_pct": None if self.load_pct is None else round(self.load_pct, 1),
            "ran_out": self.ran_out,
            "ratio": round(self.ratio, 3),
        }


@dataclass(frozen=True)
class BatteryTruth:
    outages: tuple[OutageTruth, ...]
    correction: float | None  # None: no usable outage yet

    def to_json(self) -> dict[str, object]:
        return {
            "outages": [o.to_json() for o in self.outages],
            "correction": None if self.correction is None else round(self.correction, 3),
        }


@dataclass(frozen=True)
class Coverage:
    load_pct: float | None
    claimed_s: float
    covered_s: float  # claimed x correction (the claim itself without a correction)
    needed_s: float  # the shutdown threshold (budget x safety factor)
    corrected: bool

    @property
    def margin_s(self) -> float:
        return self.covered_s - self.needed_s

    @property
    def ok(self) -> bool:
        return self.margin_s >= 0

    def sentence(self) -> str:
        load = f"at {self.load_pct:.0f} % load" if self.load_pct is not None else "at this load"
        how = "covers about" if self.corrected else "claims (no outage learned yet)"
        verdict = "" if self.ok else f" - {-self.margin_s:.0f} s short"
        return (
            f"{load} the UPS {how} {self.covered_s:.0f} s; a shutdown needs "
            f"{self.needed_s:.0f} s{verdict}"
        )

    def to_json(self) -> dict[str, object]:
        return {
            "load_pct": self.load_pct,
            "claimed_s": self.claimed_s,
            "covered_s": round(self.covered_s, 1),
            "needed_s": round(self.needed_s, 1),
            "margin_s": round(self.margin_s, 1),
            "corrected": self.corrected,
            "ok": self.ok,
        }


def _stretches(points: Sequence[TracePoint]) -> list[tuple[list[TracePoint], bool]]:
    """On-battery stretches, each with whether it ended with the UPS running out."""
    found: list[tuple[list[TracePoint], bool]] = []
    current: list[TracePoint] = []
    for point in points:
        poll = point.poll
        if isinstance(poll, UpsReading) and poll.on_battery:
            current.append(point)
            if poll.low_battery or poll.forced_shutdown:
                found.append((current, True))
                current = []
            continue
        if current:
            # Mains back: not run out. The UPS gone while on battery: it died (run out).
            found.append((current, isinstance(poll, CommError)))
            current = []
    if current:
        found.append((current, False))  # the trace ends on battery: the recording stopped
    return found


def analyse_trace(points: Sequence[TracePoint], source: str = "") -> list[OutageTruth]:
    """The usable on-battery stretches of one trace."""
    truths: list[OutageTruth] = []
    for stretch, ran_out in _stretches(points):
        claims = [
            (p.t, p.poll.runtime_s)
            for p in stretch
            if isinstance(p.poll, UpsReading) and p.poll.runtime_s is not None
        ]
        if not claims:
            continue
        t0, claimed0 = claims[0]
        end_t = stretch[-1].t
        elapsed = end_t - t0
        if elapsed < MIN_STRETCH_S or claimed0 <= 0:
            continue
        loads = [
            p.poll.load_pct
            for p in stretch
            if isinstance(p.poll, UpsReading) and p.poll.load_pct is not None
        ]
        t1, claimed1 = claims[-1]
        if ran_out:
            ratio = elapsed / claimed0
        else:
            burnt = claimed0 - claimed1
            if burnt < MIN_BURN_S or t1 - t0 < MIN_STRETCH_S:
                continue
            ratio = (t1 - t0) / burnt
        if not RATIO_RANGE[0] <= ratio <= RATIO_RANGE[1]:
            continue
        truths.append(
            OutageTruth(
                source=source,
                start_t=t0,
                on_battery_s=elapsed,
                claimed_start_s=claimed0,
                claimed_end_s=claimed1,
                load_pct=sum(loads) / len(loads) if loads else None,
                ran_out=ran_out,
                ratio=ratio,
            )
        )
    return truths


def battery_truth(traces: Sequence[tuple[str, Sequence[TracePoint]]]) -> BatteryTruth:
    """From traces in recording order (oldest first): the outages and the correction factor."""
    outages = [truth for source, points in traces for truth in analyse_trace(points, source)]
    recent = outages[-OUTAGES_USED:]
    weight = sum(o.on_battery_s for o in recent)
    correction = sum(o.ratio * o.on_battery_s for o in recent) / weight if recent else None
    return BatteryTruth(tuple(recent), correction)


def coverage(
    truth: BatteryTruth, runtime_s: float, load_pct: float | None, needed_s: float
) -> Coverage:
    """Whether the battery, as learned, covers a shutdown at the current claim and load."""
    factor = truth.correction
    return Coverage(
        load_pct=load_pct,
        claimed_s=runtime_s,
        covered_s=runtime_s * factor if factor is not None else runtime_s,
        needed_s=needed_s,
        corrected=factor is not None,
    )


def corrected_threshold(threshold_s: float, truth: BatteryTruth) -> float:
    """The shutdown threshold against the UPS's raw claims under `runtime_correction: learned`.

    A claim is worth `correction` real seconds, so `claim x correction < threshold` is
    `claim < threshold / correction`. Only ever raised (shutdown earlier), never lowered.
    """
    factor = truth.correction
    if factor is None or factor >= 1.0:
        return threshold_s
    return threshold_s / factor
