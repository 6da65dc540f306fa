"""The one reading parser: status-flag classification and traces parsing like the NUT adapter."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hecate.adapters.nut.client import reading_from_vars
from hecate.core.readings import STATUS_FLAGS, PowerSource, UpsReading, parse_status
from hecate.core.trace import parse_trace_lines

# Every flag NUT documents for ups.status (developer guide, "status data"), plus newer ones.
DOCUMENTED = {
    "OL", "OB", "LB", "HB", "RB", "CHRG", "DISCHRG", "BYPASS", "CAL", "OFF", "OVER", "TRIM",
    "BOOST", "FSD", "ALARM", "WAIT",
}  # fmt: skip


def test_every_documented_flag_is_classified() -> None:
    assert set(STATUS_FLAGS) >= DOCUMENTED
    assert {kind for _, kind in STATUS_FLAGS.values()} <= {"line", "battery", "none"}


@pytest.mark.parametrize(
    ("status", "source", "why"),
    [
        ("OL", PowerSource.LINE, "on line"),
        ("OL CHRG", PowerSource.LINE, "on line, charging"),
        ("OB DISCHRG", PowerSource.BATTERY, "on battery"),
        (
            "OL OB",
            PowerSource.BATTERY,
            "contradiction: OB wins (3 real dumps), evidence still needed",
        ),
        ("OL DISCHRG OB", PowerSource.BATTERY, "real dump; OB wins"),
        ("TRIM", PowerSource.LINE, "AVR trims mains voltage: mains present (real dump)"),
        ("BOOST BYPASS", PowerSource.LINE, "bypass feeds mains to the load (real dump)"),
        ("CHRG", PowerSource.LINE, "charging needs mains"),
        ("HE", PowerSource.LINE, "ECO mode runs from mains"),
        ("OFF", PowerSource.UNKNOWN, "output off says nothing about mains (real dump)"),
        ("ALARM", PowerSource.UNKNOWN, "an alarm alone says nothing (real dump)"),
        ("DISCHRG", PowerSource.UNKNOWN, "discharging also happens in a test on line"),
        ("RB", PowerSource.UNKNOWN, "replace battery says nothing"),
        ("FSD", PowerSource.UNKNOWN, "a command, not a source"),
        ("LB", PowerSource.UNKNOWN, "LB without OB: source unknown"),
        ("", PowerSource.NO_DATA, "empty status: no data (4 real dumps)"),
        ("WAIT", PowerSource.NO_DATA, "the driver waits for data"),
        ("OL CAL", PowerSource.LINE, "calibration while reporting OL (real dump)"),
        ("OB CAL", PowerSource.BATTERY, "calibration drains the battery on purpose"),
        ("OL LB", PowerSource.LINE, "LB on line is not critical (3 real dumps)"),
        ("FSD OL", PowerSource.LINE, "FSD on line (real dump): source is line, FSD still orders"),
    ],
)
def test_power_source(status: str, source: PowerSource, why: str) -> None:
    assert UpsReading(parse_status(status)).power_source is source, why


def _trace_reading(values: dict[str, object]) -> UpsReading:
    [point] = parse_trace_lines([json.dumps({"t": 0, **values})])
    assert isinstance(point.poll, UpsReading)
    return point.poll


@pytest.mark.parametrize(
    "values",
    [
        {"status": "OB", "runtime": 65535, "charge": 102.3, "load": 1e126},
        {"status": "OL", "runtime": "3932100", "charge": "255"},
        {"status": "OB LB", "runtime": 0, "charge": 120},
        {"status": "OL", "runtime": "n/a", "charge": -1},
    ],
)
def test_traces_and_the_nut_adapter_agree(values: dict[str, object]) -> None:
    names = {"status": "ups.status", "runtime": "battery.runtime", "charge": "battery.charge"}
    names["load"] = "ups.load"
    nut = reading_from_vars({names[k]: str(v) for k, v in values.items()})
    assert _trace_reading(values) == nut


numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-10, 10**8),
    st.sampled_from([0, 65535, 3932100, 102.3, 120, 255, 1000]),
)


@given(numbers, numbers, numbers)
def test_parsed_numbers_are_always_sane(runtime: float, charge: float, load: float) -> None:
    reading = reading_from_vars(
        {"battery.runtime": str(runtime), "battery.charge": str(charge), "ups.load": str(load)}
    )
    assert reading.charge_pct is None or 0 <= reading.charge_pct <= 100
    assert reading.runtime_s is None or 0 < reading.runtime_s <= 7 * 24 * 3600
    assert reading.load_pct is None or 0 <= reading.load_pct <= 1000
