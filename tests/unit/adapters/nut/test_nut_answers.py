"""upsd answers read strictly (issue 23, item 2): an adversarial corpus of raw answers, served by
a scripted upsd on 127.0.0.1 (tests/testbed/fake_upsd.py) to the real client.

Each case says what the answer is, what must come of it, and why. A malformed or foreign answer
must be a failed poll (a CommError, the path a refused connection takes), never a reading, not
even part of one. What a rejected answer does to the policy and the daemon, and the other
requests' answers, are in tests/unit/adapters/nut/test_nut_requests.py; the real upsd's answers in
tests/integration/test_nut_adapter.py.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from hecate.adapters.nut.client import NutClient
from hecate.adapters.nut.port import Ups
from hecate.config.addresses import UpsTarget
from hecate.core.readings import CommError, PowerSource, UpsReading
from tests.testbed.fake_upsd import (
    ON_BATTERY,
    ON_MAINS,
    Answer,
    FakeUpsd,
    answer,
    stream,
    then_close,
    then_hang,
    var,
)

pytestmark = pytest.mark.timeout(60)

UPS = "pyrphoros"
# A foreign UPS whose name is as long as ours: a reader that cuts lines at the offset of
# "VAR pyrphoros " takes its lines for ours (main did).
OTHER = "otherups1"
PASSWORD = "pw-" + secrets.token_hex(6)


@dataclass(frozen=True)
class Case:
    """One raw answer to `LIST VAR pyrphoros`, what must come of it, and why."""

    id: str
    answer: Answer
    expect: str | Callable[[UpsReading], bool]  # a CommError kind, or a check of the reading
    why: str


def status(*flags: str) -> Callable[[UpsReading], bool]:
    return lambda reading: reading.status == frozenset(flags)


CORPUS = [
    # -- well formed: readings ------------------------------------------------------------------
    Case("on-mains", answer(*ON_MAINS), status("OL"), "the plain answer upsd gives"),
    Case(
        "escapes",
        answer(*ON_MAINS, rb'VAR pyrphoros ups.id "a \"b\" c\\d \#e #f"'),
        lambda r: r.on_mains and r.extra["ups.id"] == 'a "b" c\\d #e #f',
        'upsd escapes ", \\ and # with a backslash (pconf_encode); a bare # inside quotes is text',
    ),
    Case(
        "utf-8-value",
        answer(*ON_MAINS, var("ups.model", "Zasilacz ±")),
        lambda r: r.on_mains and r.extra["ups.model"] == "Zasilacz ±",
        "a UTF-8 value is text",
    ),
    Case(
        "non-utf-8-model",
        answer(*ON_MAINS, b'VAR pyrphoros ups.model "Onduleur \xe9"'),
        lambda r: r.on_mains and "ups.model" not in r.extra,
        "a value that is not UTF-8 (Latin-1 here) is unknown for that variable only",
    ),
    Case(
        "non-utf-8-status",
        answer(b'VAR pyrphoros ups.status "OB \xff\xfe"', *ON_MAINS[1:]),
        lambda r: r.status == frozenset() and r.power_source is PowerSource.NO_DATA,
        "a status that is not UTF-8 is unknown: no flag is guessed from part of it; no data",
    ),
    Case(
        "non-utf-8-runtime",
        answer(var("ups.status", "OB"), b'VAR pyrphoros battery.runtime "9\xff"'),
        lambda r: r.on_battery and r.runtime_s is None,
        "a number that is not UTF-8 is unknown, like any garbage number",
    ),
    Case(
        "empty-list",
        answer(),
        lambda r: r.power_source is PowerSource.NO_DATA,
        "a well-formed empty list: nothing usable, so no data (like an empty status)",
    ),
    Case(
        "empty-value",
        answer(var("ups.status", ""), var("battery.charge", "50")),
        lambda r: r.power_source is PowerSource.NO_DATA and r.charge_pct == 50.0,
        "an empty status is no data, as before",
    ),
    # -- foreign lines: never a reading --------------------------------------------------------
    Case(
        "foreign-lb-on-mains",
        answer(*ON_MAINS, var("ups.status", "OB LB", OTHER)),
        "protocol",
        "the issue's case: another UPS's OB LB must not trigger a shutdown while ours is OL",
    ),
    Case(
        "foreign-ol-on-battery",
        answer(*ON_BATTERY, var("ups.status", "OL", OTHER)),
        "protocol",
        "the issue's case: another UPS's OL must not hide our outage",
    ),
    Case(
        "foreign-short-name",
        answer(*ON_MAINS, var("ups.status", "OB LB", "other")),
        "protocol",
        "a foreign name of any length is refused",
    ),
    Case(
        "foreign-prefix-name",
        answer(*ON_MAINS, var("ups.status", "OB LB", UPS + "2")),
        "protocol",
        "a name that starts with ours is still another UPS",
    ),
    Case(
        "foreign-only",
        answer(*(line.replace(UPS.encode(), OTHER.encode()) for line in ON_BATTERY)),
        "protocol",
        "a list of another UPS's variables under our BEGIN",
    ),
    Case(
        "begin-other-ups",
        answer(*ON_MAINS, begin=OTHER, end=OTHER),
        "protocol",
        "the whole list is another UPS's",
    ),
    Case(
        "end-other-ups",
        then_hang(answer(*ON_MAINS, end=OTHER)),
        "protocol",
        "an END for another UPS does not end ours",
    ),
    Case(
        "other-list-kind",
        answer(b'RW pyrphoros ups.status "OL"'),
        "protocol",
        "a LIST RW line is not a LIST VAR line",
    ),
    # -- lists that do not end -----------------------------------------------------------------
    Case(
        "missing-end-held",
        then_hang(answer(*ON_BATTERY, end=None)),
        "timeout",
        "no END, the connection held open: the deadline cuts it; the lines read are dropped",
    ),
    Case(
        "missing-end-closed",
        then_close(answer(*ON_BATTERY, end=None)),
        "unreachable",
        "no END, the connection closed: an answer cut short is no answer",
    ),
    Case(
        "endless-list",
        stream(var("ups.status", "OL") + b"\n"),
        "protocol",
        "an answer that never ends is bounded by size as well as by time",
    ),
    Case(
        "endless-distinct",
        then_hang(
            answer(*(var(f"x.v{i}", "1") for i in range(5000)), end=None),
        ),
        "protocol",
        "more lines than any UPS has variables",
    ),
    Case(
        "over-long-line",
        then_hang(answer(var("ups.status", "OL " + "X" * 10_000))),
        "protocol",
        "a line over 4096 bytes is not upsd (values are at most 256 bytes)",
    ),
    Case(
        "over-long-no-newline",
        then_hang(b"BEGIN LIST VAR pyrphoros\n" + b"V" * 100_000),
        "protocol",
        "a line that never ends is cut at 4096 bytes, not buffered",
    ),
    # -- quoting -------------------------------------------------------------------------------
    Case(
        "unbalanced-quote",
        answer(b'VAR pyrphoros ups.status "OL', *ON_MAINS[1:]),
        "protocol",
        "a value without its closing quote",
    ),
    Case(
        "bare-quote-inside",
        answer(b'VAR pyrphoros ups.status "O"L"', *ON_MAINS[1:]),
        "protocol",
        "an unescaped quote inside a value",
    ),
    Case(
        "escaped-closing-quote",
        answer(b'VAR pyrphoros ups.status "OL\\"', *ON_MAINS[1:]),
        "protocol",
        'the last quote is escaped (\\"): the value never closes',
    ),
    Case(
        "bad-escape",
        answer(b'VAR pyrphoros ups.status "OB\\nLB"', *ON_MAINS[1:]),
        "protocol",
        '\\n is not an escape upsd writes (only \\", \\\\ and \\#)',
    ),
    Case(
        "bare-backslash",
        answer(b'VAR pyrphoros ups.model "a\\b"', *ON_MAINS),
        "protocol",
        "a lone backslash inside a value",
    ),
    Case(
        "unquoted-value",
        answer(b"VAR pyrphoros ups.status OL", *ON_MAINS[1:]),
        "protocol",
        "a value must be quoted",
    ),
    Case(
        "text-after-value",
        answer(b'VAR pyrphoros ups.status "OL" "OB LB"', *ON_MAINS[1:]),
        "protocol",
        "a second quoted word after the value",
    ),
    Case(
        "two-spaces",
        answer(b'VAR  pyrphoros ups.status "OL"', *ON_MAINS[1:]),
        "protocol",
        "words are separated by one space",
    ),
    Case(
        "missing-var-name",
        answer(b'VAR pyrphoros "OL"', *ON_MAINS[1:]),
        "protocol",
        "three words where four are due",
    ),
    Case(
        "crlf",
        answer(*ON_MAINS).replace(b"\n", b"\r\n"),
        "protocol",
        "upsd ends lines with LF; a CR is not part of its grammar",
    ),
    Case(
        "nul-in-value",
        answer(b'VAR pyrphoros ups.status "OL\x00OB LB"', *ON_MAINS[1:]),
        "protocol",
        "upsd is C: a NUL cannot be in what it sends",
    ),
    Case(
        "nul-in-begin",
        answer(*ON_MAINS).replace(b"BEGIN", b"BEG\x00IN"),
        "protocol",
        "a NUL anywhere",
    ),
    Case(
        "control-in-name",
        answer(b'VAR pyrphoros ups.sta\x01tus "OL"', *ON_MAINS[1:]),
        "protocol",
        "a variable name is printable ASCII",
    ),
    # -- structure -----------------------------------------------------------------------------
    Case(
        "duplicate-variable",
        answer(*ON_MAINS, var("ups.status", "OB LB")),
        "protocol",
        "a variable listed twice: which one would be ours?",
    ),
    Case(
        "interleaved-err",
        answer(*ON_MAINS[:2], b"ERR DATA-STALE", *ON_MAINS[2:]),
        "protocol",
        "an ERR inside a list is not something upsd sends",
    ),
    Case(
        "err-first",
        b"ERR DRIVER-NOT-CONNECTED\n",
        "driver_down",
        "upsd's own answer when the driver is gone: handled as before",
    ),
    Case(
        "err-data-stale",
        b"ERR DATA-STALE\n",
        "driver_down",
        "stale data is no data, as before",
    ),
    Case("err-lowercase", b"ERR driver-not-connected\n", "protocol", "an ERR code is upper case"),
    Case("err-alone", b"ERR\n", "protocol", "an ERR without its code"),
    Case(
        "missing-begin",
        answer(*ON_MAINS)[len(b"BEGIN LIST VAR pyrphoros\n") :],
        "protocol",
        "the list must open with BEGIN LIST VAR <ups>",
    ),
    Case("ok-instead", b"OK\n" + answer(*ON_MAINS), "protocol", "a stray line before BEGIN"),
    Case(
        "begin-with-trailing-space",
        answer(*ON_MAINS).replace(b"BEGIN LIST VAR pyrphoros\n", b"BEGIN LIST VAR pyrphoros \n"),
        "protocol",
        "BEGIN must repeat the request exactly",
    ),
    Case(
        "end-for-ups-list",
        then_hang(answer(*ON_MAINS, end=None) + b"END LIST UPS\n"),
        "protocol",
        "an END for another list",
    ),
    Case("http", b"HTTP/1.0 400 Bad Request\r\n\r\n", "protocol", "not a NUT server at all"),
]


@pytest.mark.parametrize("case", CORPUS, ids=[case.id for case in CORPUS])
def test_corpus(case: Case) -> None:
    with FakeUpsd({f"LIST VAR {UPS}": case.answer}) as upsd:
        ups = Ups(NutClient(UpsTarget.parse(upsd.target()), "hecate", PASSWORD, timeout_s=0.5))
        started = time.monotonic()
        polled = ups.poll()
        assert time.monotonic() - started < 2.0, case.why
    if isinstance(case.expect, str):
        assert isinstance(polled, CommError), f"{case.why}: got {polled}"
        assert polled.kind == case.expect, f"{case.why}: {polled}"
        assert PASSWORD not in polled.message
    else:
        assert isinstance(polled, UpsReading), f"{case.why}: got {polled}"
        assert case.expect(polled), f"{case.why}: {polled}"
