"""The corpus, continued (issue 27 item 7): traces for `ups.max_on_battery_seconds`, each with
its expected triggers, the words the trigger's reason must say, and why.

A battery whose runtime estimate lies keeps claiming plenty until it dies: nothing is critical,
so only the cap (apcupsd's TIMEOUT) shuts down in time. The default config otherwise (threshold
330 s, polls every 5 s, outage over after 30 s of mains, dead time 30 s), with the cap at 120 s
as in the issue. Same helpers as tests/unit/core/test_policy_corpus.py.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from hecate.core.policy.step import step
from hecate.core.policy.values import PolicyParams, initial_state
from tests.unit.core.test_policy_corpus import DEFAULT, ERR, MAINS, Trace, cat, polls, u

CAP = replace(DEFAULT, max_on_battery_s=120.0)
CAP_WORDS = "(ups.max_on_battery_seconds 120)"

# The lying battery: on battery from t=15, the UPS claims 1500 s the whole time, then dies after
# its poll at t=210 (upsd loses it: silence). Without the cap only the dead time catches it, when
# the load is already dark.
LIAR = cat(
    MAINS, polls(15, 40, lambda i: u("OB DISCHRG", 1500, 95 - i)), polls(215, 8, lambda i: ERR)
)


@dataclass(frozen=True)
class CapCase:
    name: str
    trace: Trace
    triggers: list[float]  # when trigger_shutdown must fire (exactly)
    words: list[str]  # what the (first) trigger's reason must say
    why: str
    params: PolicyParams = CAP


CASES = [
    CapCase(
        "lying-battery-capped",
        LIAR,
        [135.0],
        ["on battery for 120s", CAP_WORDS, "whatever the runtime estimate says (1500s)"],
        "runtime 1500 s on every poll, never critical: 120 s after the first OB poll (t=15)",
    ),
    CapCase(
        "lying-battery-uncapped",
        LIAR,
        [240.0],
        ["silent for 30s"],
        "the cap off (the default): only the dead time, 30 s after the last answer at t=210",
        params=DEFAULT,
    ),
    CapCase(
        "flicker-shorter-than-outage-clear",
        cat(
            MAINS,
            polls(15, 12, lambda i: u("OB", 1500)),  # t=15..70
            polls(75, 5, lambda i: u("OL", 1500)),  # mains 75..95: 20 s < outage_clear 30 s
            polls(100, 20, lambda i: u("OB", 1500)),
        ),
        [135.0],
        ["120s since the outage went on battery", "flickers", CAP_WORDS],
        "the flicker does not restart the count: 120 s after t=15, not after t=100",
    ),
    CapCase(
        "flicker-longer-than-outage-clear",
        cat(
            MAINS,
            polls(15, 12, lambda i: u("OB", 1500)),  # t=15..70
            polls(75, 8, lambda i: u("OL", 1500)),  # mains 75..110: over at t=105
            polls(115, 30, lambda i: u("OB", 1500)),
        ),
        [235.0],
        ["on battery for 120s", CAP_WORDS],
        "mains stable 30 s ended the episode: the new one starts at t=115, so 235",
    ),
    CapCase(
        "mains-at-the-cap-moment",
        cat(
            MAINS,
            polls(15, 20, lambda i: u("OB", 1500)),  # t=15..110
            polls(115, 6, lambda i: u("OL", 1500)),  # mains 115..140: 25 s, the episode goes on
            polls(145, 5, lambda i: u("OB", 1500)),
        ),
        [145.0],
        ["130s since the outage went on battery", CAP_WORDS],
        "no shutdown on a mains poll (t=135, 140): at the next poll on battery",
    ),
    CapCase(
        "brownout-flapping-capped",
        cat(*[cat([(k * 10.0, u("OB", 1500))], [(k * 10.0 + 5, u("OL"))]) for k in range(30)]),
        [120.0],
        ["120s since the outage went on battery", CAP_WORDS],
        "mains back 5 s in every 10 never clears the episode: its clock runs from t=0",
    ),
    CapCase(
        "transfer-blip-capped",
        cat(
            *[
                cat(
                    polls(k * 100.0, 2, lambda i: u("OB", 1500)),
                    polls(k * 100 + 10, 18, lambda i: u("OL")),
                )
                for k in range(5)
            ]
        ),
        [],
        [],
        "blips 100 s apart, mains stable 85 s after each: every one is an episode of its own",
    ),
    CapCase(
        "calibration-capped",
        cat(MAINS, polls(15, 60, lambda i: u("OB CAL DISCHRG", 1500, max(100 - i, 40)))),
        [],
        [],
        "CAL drains the battery with mains present: it is not time without mains",
    ),
    CapCase(
        "calibration-then-outage",
        cat(
            MAINS,
            polls(15, 30, lambda i: u("OB CAL", 1500, 90)),  # t=15..160
            polls(165, 30, lambda i: u("OB", 1500, 80)),
        ),
        [285.0],
        ["on battery for 120s", CAP_WORDS],
        "the clock starts at the first poll on battery outside CAL (t=165)",
    ),
    CapCase(
        "silent-on-battery-at-the-cap",
        cat(MAINS, polls(15, 23, lambda i: u("OB", 1500)), polls(130, 6, lambda i: ERR)),
        [135.0],
        ["on battery for 120s", CAP_WORDS, "silent for 10s"],
        "last seen on battery at t=125: the outage's clock runs on while upsd is silent",
    ),
    CapCase(
        "evidence-before-the-cap",
        cat(MAINS, polls(15, 20, lambda i: u("OB DISCHRG", 1500 - 100 * i, 90))),
        [85.0],
        ["runtime", "< threshold 330s", "3 critical polls"],
        "the runtime falls below the threshold first: the evidence triggers at t=85, as uncapped",
    ),
    CapCase(
        "cap-the-same-poll-as-evidence",
        cat(MAINS, polls(15, 30, lambda i: u("OB", 1500 if i < 22 else 200))),
        [135.0],
        ["runtime 200s < threshold 330s", "3 critical polls"],
        "both due at t=135: the reason is the evidence, it says more",
    ),
]


def _run(case: CapCase) -> tuple[list[float], list[str]]:
    state = initial_state()
    triggers: list[float] = []
    reasons: list[str] = []
    for t, poll in case.trace:
        state, events = step(state, poll, t, case.params)
        for e in events:
            if e.event == "trigger_shutdown":
                triggers.append(e.t)
                reasons.append(e.reason)
    return triggers, reasons


def test_the_cap_cases_are_named_once() -> None:
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_cap_corpus(case: CapCase) -> None:
    triggers, reasons = _run(case)
    assert triggers == case.triggers, case.why
    for word in case.words:
        assert word in reasons[0], (word, reasons[0], case.why)
