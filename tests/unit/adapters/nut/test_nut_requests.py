"""The strict NUT reader in use (issue 23, item 2): what a rejected answer does to the policy and
the daemon (nothing but a failed poll, counted and logged), and the other requests' answers
(GET VAR, LIST UPS, the handshake, INSTCMD) from a scripted upsd on 127.0.0.1
(tests/testbed/fake_upsd.py). The LIST VAR corpus is in tests/unit/adapters/nut/test_nut_answers.py.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hecate.adapters.metrics.exposition import render_text
from hecate.adapters.nut.client import NutClient, UpsProtocolError
from hecate.adapters.nut.port import Ups
from hecate.config.addresses import UpsTarget
from hecate.config.model import parse_config
from hecate.core.policy.step import step
from hecate.core.policy.values import PolicyParams, initial_state
from hecate.core.readings import CommError
from hecate.daemon.service import Daemon
from hecate.errors import UpsDriverDownError, UpsTimeoutError, UpsUnreachableError
from hecate.flows.context import FlowContext
from tests.testbed.fake_upsd import (
    ON_MAINS,
    Answer,
    FakeUpsd,
    answer,
    then_close,
    then_hang,
    var,
)

pytestmark = pytest.mark.timeout(60)

UPS = "pyrphoros"
OTHER = "otherups1"  # as long as ours: main's fixed-offset reader took its lines for ours
PASSWORD = "pw-" + secrets.token_hex(6)


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
        ups = Ups(NutClient(UpsTarget.parse(u.target()), timeout_s=1.0, auth_check="none"))
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
        {
            "state_dir": str(tmp_path / "state"),
            "nodes": {"servers": ["s1"], "agents": []},
            "ups": {"target": "pyrphoros@localhost"},
        }
    )
    now = [1_000_000.0]

    @contextlib.contextmanager
    def no_flow(cancel: threading.Event) -> Iterator[FlowContext]:
        raise AssertionError("a flow was started")
        yield  # pragma: no cover

    with FakeUpsd({f"LIST VAR {UPS}": answer(*ON_MAINS, var("ups.status", "OB LB", OTHER))}) as u:
        ups = Ups(NutClient(UpsTarget.parse(u.target()), timeout_s=1.0, auth_check="none"))
        daemon = Daemon(config, reader=ups.poll, context_factory=no_flow, clock=lambda: now[0])
        actions = []
        for _ in range(6):
            now[0] += 5
            actions += daemon.poll_once()
        assert daemon.wait_idle(10)
    assert actions == []
    text = render_text(daemon.metrics.registry).decode()
    assert 'hecate_nut_errors_total{kind="protocol",ups="pyrphoros"} 6.0' in text
    assert 'hecate_ups_readable{ups="pyrphoros"} 0.0' in text


def test_rejected_answers_are_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    """Why a poll failed is kept: a count per reason on the port, one warning per new reason."""
    caplog.set_level(logging.WARNING, logger="hecate.adapters.nut")
    foreign = answer(*ON_MAINS, var("ups.status", "OB LB", OTHER))
    with FakeUpsd({f"LIST VAR {UPS}": foreign}) as upsd:
        ups = Ups(NutClient(UpsTarget.parse(upsd.target()), timeout_s=1.0, auth_check="none"))
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
        client = NutClient(UpsTarget.parse(upsd.target()), "hecate", PASSWORD, timeout_s=0.5)
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
        client = NutClient(UpsTarget.parse(upsd.target()), timeout_s=0.5)
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
        client = NutClient(UpsTarget.parse(upsd.target()), "hecate", PASSWORD, timeout_s=0.5)
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
        client = NutClient(UpsTarget.parse(upsd.target()), "hecate", PASSWORD, timeout_s=0.5)
        if ok:
            client.instant_command("shutdown.return")
        else:
            with pytest.raises(UpsProtocolError):
                client.instant_command("shutdown.return")


def test_what_the_client_sends() -> None:
    """Credentials are quoted and escaped as upsd parses them (a '#' would start a comment)."""
    with FakeUpsd({f"LIST VAR {UPS}": answer(*ON_MAINS)}) as upsd:
        client = NutClient(UpsTarget.parse(upsd.target()), "he#cate", "p w#d", timeout_s=1.0)
        assert client.read().on_mains
    assert upsd.commands == [
        'USERNAME "he\\#cate"',
        'PASSWORD "p w\\#d"',
        "PRIMARY pyrphoros",
        "LIST VAR pyrphoros",
        "LOGOUT",
    ]
