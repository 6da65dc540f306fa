"""Properties of the strict NUT answer reader (hecate/adapters/nut/protocol.py), with hypothesis:

- any well-formed answer, encoded as upsd encodes it, reads back to exactly what was sent
  (names, and values byte for byte), also through a real socket and the whole client;
- any line naming another UPS, wherever it sits, makes no reading: the read fails;
- whatever lines arrive, the reader either fails with ProtocolViolation/ErrAnswer or returns
  variables that re-encode to exactly the lines it read (it never accepts a line it would not
  write itself).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hecate.adapters.nut.client import NutClient
from hecate.adapters.nut.port import Ups
from hecate.adapters.nut.protocol import (
    ErrAnswer,
    ProtocolViolation,
    read_get_var,
    read_list_var,
)
from hecate.config.addresses import UpsTarget
from hecate.core.readings import CommError, UpsReading
from tests.testbed.fake_upsd import FakeUpsd

UPS_NAMES = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,15}", fullmatch=True)
# Any word the grammar allows as a variable name (printable ASCII, no space, '"' or '\'),
# not only NUT's documented names.
VAR_NAMES = st.text(
    alphabet=st.sampled_from([chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"\\']),
    min_size=1,
    max_size=40,
)
# upsd's values are C strings on one line: any byte but NUL and LF (not only UTF-8).
VALUES = st.binary(max_size=300).filter(lambda raw: b"\x00" not in raw and b"\n" not in raw)
VARIABLES = st.dictionaries(VAR_NAMES, VALUES, max_size=30)


def encode(value: bytes) -> bytes:
    """As upsd's pconf_encode: a backslash before '#', '\\' and '"'."""
    out = bytearray()
    for byte in value:
        if byte in b'#\\"':
            out += b"\\"
        out.append(byte)
    return bytes(out)


def var_line(ups: str, name: str, value: bytes) -> bytes:
    return f"VAR {ups} {name} ".encode() + b'"' + encode(value) + b'"'


def list_lines(ups: str, variables: dict[str, bytes]) -> list[bytes]:
    return [
        f"BEGIN LIST VAR {ups}".encode(),
        *(var_line(ups, name, value) for name, value in variables.items()),
        f"END LIST VAR {ups}".encode(),
    ]


def feeder(lines: list[bytes]) -> Iterator[bytes]:
    yield from lines
    raise ProtocolViolation("the answer ended")  # as a closed connection would


def read(lines: list[bytes], ups: str) -> dict[str, bytes]:
    source = feeder(lines)
    return read_list_var(lambda: next(source), ups)


@given(ups=UPS_NAMES, variables=VARIABLES)
def test_a_well_formed_answer_round_trips(ups: str, variables: dict[str, bytes]) -> None:
    assert read(list_lines(ups, variables), ups) == variables


@given(ups=UPS_NAMES, name=VAR_NAMES, value=VALUES)
def test_a_well_formed_get_answer_round_trips(ups: str, name: str, value: bytes) -> None:
    lines = iter([var_line(ups, name, value)])
    assert read_get_var(lambda: next(lines), ups, name) == value


@given(
    ups=UPS_NAMES,
    other=UPS_NAMES,
    variables=VARIABLES,
    name=VAR_NAMES,
    value=VALUES,
    where=st.integers(min_value=1),
)
def test_a_line_for_another_ups_makes_no_reading(
    ups: str, other: str, variables: dict[str, bytes], name: str, value: bytes, where: int
) -> None:
    assume(other != ups)
    lines = list_lines(ups, variables)
    at = 1 + where % (len(lines) - 1)  # after BEGIN, before or instead of nothing else
    lines.insert(at, var_line(other, name, value))
    with pytest.raises(ProtocolViolation):
        read(lines, ups)


@given(ups=UPS_NAMES, other=UPS_NAMES, name=VAR_NAMES, value=VALUES)
def test_a_get_answer_for_another_ups_or_variable_is_refused(
    ups: str, other: str, name: str, value: bytes
) -> None:
    assume(other != ups)
    lines = iter([var_line(other, name, value)])
    with pytest.raises(ProtocolViolation):
        read_get_var(lambda: next(lines), ups, name)
    lines = iter([var_line(ups, name + "x", value)])
    with pytest.raises(ProtocolViolation):
        read_get_var(lambda: next(lines), ups, name)


def _mutations(ups: str) -> st.SearchStrategy[bytes]:
    """Lines near the grammar (well formed, cut, with bytes flipped) and arbitrary bytes."""
    good = st.builds(lambda n, v: var_line(ups, n, v), VAR_NAMES, VALUES)
    cut = st.tuples(good, st.integers(min_value=0)).map(lambda p: p[0][: p[1] % (len(p[0]) + 1)])
    flipped = st.tuples(good, st.integers(min_value=0), st.integers(0, 255)).map(
        lambda p: p[0][: p[1] % len(p[0])] + bytes([p[2]]) + p[0][p[1] % len(p[0]) + 1 :]
    )
    noise = st.binary(max_size=60).map(lambda raw: raw.replace(b"\n", b""))
    return st.one_of(good, cut, flipped, noise)


@given(data=st.data(), ups=UPS_NAMES)
def test_whatever_arrives_only_exact_lines_are_accepted(data: st.DataObject, ups: str) -> None:
    body = data.draw(st.lists(_mutations(ups), max_size=12))
    lines = [f"BEGIN LIST VAR {ups}".encode(), *body, f"END LIST VAR {ups}".encode()]
    try:
        found = read(lines, ups)
    except (ProtocolViolation, ErrAnswer):
        return
    # Accepted: then it is exactly what upsd would have written for these variables.
    assert list_lines(ups, found) == lines


# -- through a socket and the whole client -------------------------------------------------------


@pytest.fixture(scope="module")
def upsd() -> Iterator[FakeUpsd]:
    with FakeUpsd(ups="pyrphoros") as server:
        yield server


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(variables=VARIABLES)
def test_round_trip_through_the_client(upsd: FakeUpsd, variables: dict[str, bytes]) -> None:
    upsd.answers["LIST VAR pyrphoros"] = b"".join(
        line + b"\n" for line in list_lines("pyrphoros", variables)
    )
    client = NutClient(UpsTarget.parse(upsd.target()), timeout_s=2.0, auth_check="none")
    assert client.read_vars() == variables


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    variables=VARIABLES,
    other=UPS_NAMES.filter(lambda name: name != "pyrphoros"),
    status=st.sampled_from([b"OB LB", b"OL", b"FSD", b"OB DISCHRG"]),
    where=st.integers(min_value=0),
)
def test_no_reading_with_a_foreign_line_through_the_client(
    upsd: FakeUpsd, variables: dict[str, bytes], other: str, status: bytes, where: int
) -> None:
    lines = list_lines("pyrphoros", variables)
    lines.insert(1 + where % (len(lines) - 1), var_line(other, "ups.status", status))
    upsd.answers["LIST VAR pyrphoros"] = b"".join(line + b"\n" for line in lines)
    polled = Ups(NutClient(UpsTarget.parse(upsd.target()), timeout_s=2.0, auth_check="none")).poll()
    assert not isinstance(polled, UpsReading)
    assert isinstance(polled, CommError)
    assert polled.kind == "protocol"
