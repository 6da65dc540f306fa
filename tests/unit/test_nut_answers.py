"""upsd answers read strictly (issue 23, item 2): an adversarial corpus of raw answers, served by
a scripted upsd on 127.0.0.1 (tests/testbed/fake_upsd.py) to the real client.

Each case says what the answer is, what must come of it, and why. A malformed or foreign answer
must be a failed poll (a CommError, the path a refused connection takes), never a reading, not
even part of one. The real upsd's answers are covered by tests/integration/test_nut_adapter.py.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from hecate.config import parse_config
from hecate.daemon.service import Daemon
from hecate.errors import UpsDriverDownError, UpsTimeoutError, UpsUnreachableError
from hecate.flows.context import FlowContext
from hecate.nut import NutClient, Ups, UpsProtocolError, parse_target
from hecate.policy import step
from hecate.policy_types import PolicyParams, initial_state
from hecate.readings import CommError, PowerSource, UpsReading
from tests.testbed.fake_upsd import Answer, FakeUpsd, stream, then_close, then_hang

pytestmark = pytest.mark.timeout(60)

UPS = "pyrphoros"
# A foreign UPS whose name is as long as ours: a reader that cuts lines at the offset of
# "VAR pyrphoros " takes its lines for ours (main did).
OTHER = "otherups1"
PASSWORD = "pw-" + secrets.token_hex(6)


def var(name: str, value: str, ups: str = UPS) -> bytes:
    return f'VAR {ups} {name} "{value}"'.encode()


def answer(*lines: bytes, begin: str = UPS, end: str | None = UPS) -> bytes:
    body = [f"BEGIN LIST VAR {begin}".encode(), *lines]
    if end is not None:
        body.append(f"END LIST VAR {end}".encode())
    return b"".join(line + b"\n" for line in body)


ON_MAINS = (
    var("ups.status", "OL"),
    var("battery.charge", "100"),
    var("battery.runtime", "1800"),
    var("ups.load", "20"),
)
ON_BATTERY = (
    var("ups.status", "OB DISCHRG"),
    var("battery.charge", "60"),
    var("battery.runtime", "900"),
    var("ups.load", "20"),
)


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
        ups = Ups(NutClient(parse_target(upsd.target()), "hecate", PASSWORD, timeout_s=0.5))
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


def test_the_foreign_lines_never_reach_the_policy() -> None:
    """End to end with the decision core: on main, the foreign `OB LB` line made the policy
    trigger a shutdown while our UPS was on mains; now the poll fails and nothing triggers."""
    params = PolicyParams(
        threshold_s=300.0,
        debounce_polls=2,
        comm_loss_dead_s=30.0,
        power_stable_s=60.0,
        min_charge_pct=20.0,
    )
    with FakeUpsd({f"LIST VAR {UPS}": answer(*ON_MAINS, var("ups.status", "OB LB", OTHER))}) as u:
        ups = Ups(NutClient(parse_target(u.target()), timeout_s=1.0, auth_check="none"))
        state = initial_state()
        names: list[str] = []
        for t in range(5):
            state, events = step(state, ups.poll(), float(t * 5), params)
            names += [event.event for event in events]
    assert "trigger_shutdown" not in names
    assert names == ["comm_lost"]


def test_the_daemon_counts_them_and_never_shuts_down(tmp_path: Path) -> None:
    """The daemon on the real port: foreign `OB LB` lines decide nothing and are counted as
    failed polls of kind `protocol` in the metrics."""
    config = parse_config(
        {"state_dir": str(tmp_path / "state"), "nodes": {"servers": ["s1"], "agents": []}}
    )
    now = [1_000_000.0]

    @contextlib.contextmanager
    def no_flow(cancel: threading.Event) -> Iterator[FlowContext]:
        raise AssertionError("a flow was started")
        yield  # pragma: no cover

    with FakeUpsd({f"LIST VAR {UPS}": answer(*ON_MAINS, var("ups.status", "OB LB", OTHER))}) as u:
        ups = Ups(NutClient(parse_target(u.target()), timeout_s=1.0, auth_check="none"))
        daemon = Daemon(config, reader=ups.poll, context_factory=no_flow, clock=lambda: now[0])
        actions = []
        for _ in range(6):
            now[0] += 5
            actions += daemon.poll_once()
        assert daemon.wait_idle(10)
    assert actions == []
    text = generate_latest(daemon.metrics.registry).decode()
    assert 'hecate_nut_errors_total{kind="protocol",ups="pyrphoros"} 6.0' in text
    assert 'hecate_ups_readable{ups="pyrphoros"} 0.0' in text


def test_rejected_answers_are_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    """Why a poll failed is kept: a count per reason on the port, one warning per new reason."""
    caplog.set_level(logging.WARNING, logger="hecate.nut")
    foreign = answer(*ON_MAINS, var("ups.status", "OB LB", OTHER))
    with FakeUpsd({f"LIST VAR {UPS}": foreign}) as upsd:
        ups = Ups(NutClient(parse_target(upsd.target()), timeout_s=1.0, auth_check="none"))
        for _ in range(3):
            polled = ups.poll()
            assert isinstance(polled, CommError)
            assert "another UPS" in polled.message
            assert OTHER in polled.message
    assert ups.rejected_answers == {"a VAR line for another UPS": 3}
    warnings = [r for r in caplog.records if "rejected" in r.getMessage()]
    assert len(warnings) == 1


# -- GET VAR -----------------------------------------------------------------------------------

GET_CORPUS = [
    (b'VAR pyrphoros ups.status "OL"\n', b"OL", "the answer upsd gives"),
    (b'VAR pyrphoros ups.status "a\\\\b\\"c\\#"\n', b'a\\b"c#', "escapes undone"),
    (b'VAR pyrphoros battery.charge "5"\n', "protocol", "another variable than the one asked"),
    (b'VAR otherups1 ups.status "OB LB"\n', "protocol", "another UPS"),
    (b'VAR pyrphoros ups.status "OL" x\n', "protocol", "text after the value"),
    (b'VAR pyrphoros ups.status "OL\n', "protocol", "unbalanced quote"),
    (b"ERR VAR-NOT-SUPPORTED\n", "protocol", "upsd refuses: an error, not a value"),
    (b"ERR DRIVER-NOT-CONNECTED\n", "driver_down", "the driver is gone"),
    (b'BEGIN LIST VAR pyrphoros\nVAR pyrphoros ups.status "OL"\n', "protocol", "a list"),
]


@pytest.mark.parametrize(("raw", "expect", "why"), GET_CORPUS, ids=[c[2] for c in GET_CORPUS])
def test_get_var_corpus(raw: bytes, expect: bytes | str, why: str) -> None:
    with FakeUpsd({f"GET VAR {UPS} ups.status": raw}) as upsd:
        client = NutClient(parse_target(upsd.target()), "hecate", PASSWORD, timeout_s=0.5)
        if isinstance(expect, bytes):
            assert client.get_var("ups.status") == expect, why
            return
        errors = {
            "protocol": UpsProtocolError,
            "driver_down": UpsDriverDownError,
        }
        with pytest.raises(errors[expect]):
            client.get_var("ups.status")


# -- LIST UPS and the handshake ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expect"),
    [
        (b'BEGIN LIST UPS\nUPS pyrphoros "Main \\"rack\\""\nUPS b "x"\nEND LIST UPS\n', None),
        (b'BEGIN LIST UPS\nUPS pyrphoros "desc\nEND LIST UPS\n', UpsProtocolError),
        (b'BEGIN LIST UPS\nUPS pyrphoros "a"\nUPS pyrphoros "b"\nEND LIST UPS\n', UpsProtocolError),
        (b'BEGIN LIST UPS\nVAR pyrphoros x "a"\nEND LIST UPS\n', UpsProtocolError),
        (b'BEGIN LIST UPS\nUPS pyrphoros "a"\n', UpsUnreachableError),
    ],
)
def test_list_ups(raw: bytes, expect: type[Exception] | None) -> None:
    with FakeUpsd({"LIST UPS": then_close(raw) if expect else raw}) as upsd:
        client = NutClient(parse_target(upsd.target()), timeout_s=0.5)
        if expect is None:
            assert client.ups_names() == {"pyrphoros": 'Main "rack"', "b": "x"}
        else:
            with pytest.raises(expect):
                client.ups_names()


@pytest.mark.parametrize(
    ("script", "expect"),
    [
        ({"PRIMARY pyrphoros": b"OKAY\n"}, UpsProtocolError),
        ({"PRIMARY pyrphoros": b"ERR ACCESS-DENIED\n"}, "auth"),
        ({"PRIMARY pyrphoros": then_hang(b"OK PRI")}, UpsTimeoutError),
    ],
)
def test_handshake_answers(script: dict[str, Answer], expect: type[Exception] | str) -> None:
    with FakeUpsd({**script, f"LIST VAR {UPS}": answer(*ON_MAINS)}) as upsd:
        client = NutClient(parse_target(upsd.target()), "hecate", PASSWORD, timeout_s=0.5)
        polled = Ups(client).poll()
    assert isinstance(polled, CommError)
    if isinstance(expect, str):
        assert polled.kind == expect
    else:
        assert polled.kind in {UpsProtocolError: "protocol", UpsTimeoutError: "timeout"}[expect]


@pytest.mark.parametrize(
    ("raw", "ok"),
    [
        (b"OK\n", True),
        (b"OK TRACKING 1bd31808-cb49-4aec-9d75-d056e6f018d2\n", True),  # TRACKING enabled
        (b"OKAY\n", False),
        (b"OK \n", False),
        (b"ERR CMD-NOT-SUPPORTED\n", False),
        (b"ERR INSTCMD-FAILED\n", False),
    ],
)
def test_instant_command_answers(raw: bytes, ok: bool) -> None:
    with FakeUpsd({f"INSTCMD {UPS} shutdown.return": raw}) as upsd:
        client = NutClient(parse_target(upsd.target()), "hecate", PASSWORD, timeout_s=0.5)
        if ok:
            client.instant_command("shutdown.return")
        else:
            with pytest.raises(UpsProtocolError):
                client.instant_command("shutdown.return")


def test_what_the_client_sends() -> None:
    """Credentials are quoted and escaped as upsd parses them (a '#' would start a comment)."""
    with FakeUpsd({f"LIST VAR {UPS}": answer(*ON_MAINS)}) as upsd:
        client = NutClient(parse_target(upsd.target()), "he#cate", "p w#d", timeout_s=1.0)
        assert client.read().on_mains
    assert upsd.commands == [
        'USERNAME "he\\#cate"',
        'PASSWORD "p w\\#d"',
        "PRIMARY pyrphoros",
        "LIST VAR pyrphoros",
        "LOGOUT",
    ]
