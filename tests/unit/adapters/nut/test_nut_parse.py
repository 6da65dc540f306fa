"""The NUT adapter's pure parts: targets, variables -> reading, and every real device dump."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from hecate.adapters.nut.client import (
    NutClient,
    UpsProtocolError,
    UpsUnknownError,
    reading_from_vars,
)
from hecate.adapters.nut.port import comm_error_kind, poll, read_password_file
from hecate.config.addresses import NUT_DEFAULT_PORT, UpsTarget
from hecate.core.readings import CommError, PowerSource, UpsReading
from hecate.errors import ConfigError, UpsAuthError, UpsDriverDownError, UpsError
from tests.testbed.nut import DDL_DIR, parse_dump

DUMPS = sorted(DDL_DIR.glob("**/*.dev"))

# -- targets ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ups", "host", "port"),
    [
        ("pyrphoros@localhost", "pyrphoros", "localhost", NUT_DEFAULT_PORT),
        ("pyrphoros@127.0.0.1:3493", "pyrphoros", "127.0.0.1", 3493),
        ("pyrphoros@127.0.0.1:13493", "pyrphoros", "127.0.0.1", 13493),
        ("  ups-1.a_b@nut.example.org:1  ", "ups-1.a_b", "nut.example.org", 1),
        ("ups@[::1]:3494", "ups", "::1", 3494),
        ("ups@[fe80::1]", "ups", "fe80::1", NUT_DEFAULT_PORT),
        ("ups@::1", "ups", "::1", NUT_DEFAULT_PORT),
        ("ups@HOST:65535", "ups", "HOST", 65535),
    ],
)
def test_parse_target(text: str, ups: str, host: str, port: int) -> None:
    target = UpsTarget.parse(text)
    assert target == UpsTarget.at(ups, host, port)
    assert UpsTarget.parse(str(target)) == target


@pytest.mark.parametrize(
    "text",
    [
        "",
        "pyrphoros",
        "@localhost",
        "pyrphoros@",
        "pyrphoros@:3493",
        "pyrphoros@localhost:",
        "pyrphoros@localhost:0",
        "pyrphoros@localhost:65536",
        "pyrphoros@localhost:abc",
        "pyrphoros@localhost:-1",
        "pyrphoros@localhost:\uff13\uff14",  # non-ASCII (fullwidth) digits
        "py rphoros@localhost",
        'py"r@localhost',
        "pyr\n@localhost",
        "a@b@c",
        "ups@[::1",
        "ups@[::1]x",
        "ups@[]:1",
        "ups@[not-an-ip]:1",
        "ups@host name",
        "ups@-bad-",
    ],
)
def test_parse_target_rejects(text: str) -> None:
    with pytest.raises(ConfigError):
        UpsTarget.parse(text)


def test_target_str_and_direct_validation() -> None:
    assert str(UpsTarget.at("pyrphoros", "localhost")) == "pyrphoros@localhost:3493"
    assert str(UpsTarget.at("u", "::1", 1)) == "u@[::1]:1"
    with pytest.raises(ConfigError):
        UpsTarget.at("bad name", "localhost")
    with pytest.raises(ConfigError):
        UpsTarget.at("u", "localhost", 0)


# -- variables -> reading --------------------------------------------------------------------


def test_reading_from_vars() -> None:
    reading = reading_from_vars(
        {
            "ups.status": "OB DISCHRG LB",
            "battery.runtime": "300",
            "battery.charge": "42.5",
            "ups.load": "17",
            "ups.model": "Back-UPS",
        }
    )
    assert reading == UpsReading(
        status=frozenset({"OB", "DISCHRG", "LB"}), runtime_s=300.0, charge_pct=42.5, load_pct=17.0
    )
    assert reading.on_battery
    assert reading.low_battery
    assert not reading.on_mains
    assert reading.extra == {"ups.model": "Back-UPS"}


def test_reading_from_vars_missing_everything() -> None:
    reading = reading_from_vars({})
    assert reading == UpsReading(status=frozenset())
    assert reading.extra == {}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ol chrg", {"OL", "CHRG"}),
        ("  OL   FSD  ", {"OL", "FSD"}),
        ("", set()),
        ("OL\tOB", {"OL", "OB"}),
    ],
)
def test_status_flags(raw: str, expected: set[str]) -> None:
    assert reading_from_vars({"ups.status": raw}).status == frozenset(expected)


@pytest.mark.parametrize(
    "raw",
    ["", "   ", "abc", "-5", "-0.1", "nan", "NaN", "inf", "-inf", "1e999", "36:00", "12,5", "0x10"],
)
def test_garbage_numbers_become_none(raw: str) -> None:
    reading = reading_from_vars(
        {"battery.runtime": raw, "battery.charge": raw, "ups.load": raw, "ups.status": "OL"}
    )
    assert reading.runtime_s is None
    assert reading.charge_pct is None
    assert reading.load_pct is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("100", 100.0),
        ("0", 0.0),
        ("99.9", 99.9),
        (" 55 ", 55.0),
        # issue #11: a small overshoot (real dumps: 102.3) reads as 100, not unknown
        ("100.1", 100.0),
        ("102.3", 100.0),
        ("110", 100.0),
        # beyond that it is firmware garbage (real dumps: 120, 255 = 0xFF, 1000)
        ("110.5", None),
        ("120", None),
        ("255", None),
        ("1000", None),
    ],
)
def test_charge_is_a_percentage(raw: str, expected: float | None) -> None:
    assert reading_from_vars({"battery.charge": raw}).charge_pct == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1800", 1800.0),
        ("1", 1.0),
        ("604800", 604800.0),  # 7 days: the largest believable estimate
        # sentinels for "no estimate" (real dumps: 65535 and 3932100 = 0xFFFF x 60)
        ("0", None),
        ("65535", None),
        ("65534", None),
        ("3932100", None),
        ("4294967295", None),
        ("604801", None),
    ],
)
def test_runtime_sentinels_are_unknown(raw: str, expected: float | None) -> None:
    assert reading_from_vars({"battery.runtime": raw}).runtime_s == expected


@pytest.mark.parametrize(("raw", "expected"), [("0", 0.0), ("150", 150.0), ("1e126", None)])
def test_absurd_loads_are_unknown(raw: str, expected: float | None) -> None:
    assert reading_from_vars({"ups.load": raw}).load_pct == expected


def test_big_runtime_and_overload_are_kept() -> None:
    reading = reading_from_vars({"battery.runtime": "96840", "ups.load": "120"})
    assert reading.runtime_s == 96840.0
    assert reading.load_pct == 120.0


def test_values_that_are_not_utf8_are_unknown() -> None:
    """As upsd sends them, values are bytes; bytes that are not UTF-8 are unknown for their
    variable, as if absent (README, "Readings are made sane once"): no flag is guessed from
    part of a status (main read b"OB \\xff" as on battery), and a status that is unknown is an
    empty status, so no data."""
    reading = reading_from_vars(
        {
            "ups.status": b"OB \xff",
            "battery.charge": b"5\xe9",
            "battery.runtime": "120",
            "ups.model": b"Onduleur \xe9",
            "ups.id": "Zasilacz \u00b1".encode(),
        }
    )
    assert reading.status == frozenset()
    assert reading.power_source is PowerSource.NO_DATA
    assert not reading.on_battery
    assert reading.charge_pct is None
    assert reading.runtime_s == 120.0
    assert reading.extra == {"ups.id": "Zasilacz \u00b1"}
    assert reading_from_vars({"ups.status": b"OB LB"}).status == {"OB", "LB"}


# -- every real device dump ------------------------------------------------------------------


def test_parse_dump_helper() -> None:
    text = (
        "# DEVICE:URL:REPORT: https://example.org\n"
        "ups.status: OL LB\t#BAD: always LB\n"
        "ups.serial:\t#COMMENT: masked by user\n"
        "ups.id: 79<><>/\\\n"
        "\n"
        "not a variable line\n"
    )
    assert parse_dump(text) == {"ups.status": "OL LB", "ups.serial": "", "ups.id": "79<><>/\\"}


def test_the_device_dump_library_is_there() -> None:
    if not DDL_DIR.is_dir():
        pytest.skip(f"no NUT device dump library at {DDL_DIR} (set HECATE_NUT_DDL)")
    assert len(DUMPS) >= 700


def _check_sane(reading: UpsReading, variables: dict[str, str]) -> None:
    assert isinstance(reading.status, frozenset)
    for flag in reading.status:
        assert isinstance(flag, str)
        assert flag
        assert flag == flag.upper()
        assert not any(ch.isspace() for ch in flag)
    for value in (reading.runtime_s, reading.charge_pct, reading.load_pct):
        assert value is None or (isinstance(value, float) and math.isfinite(value) and value >= 0)
    assert reading.charge_pct is None or reading.charge_pct <= 100
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in reading.extra.items())
    assert not {"ups.status", "battery.runtime", "battery.charge", "ups.load"} & set(reading.extra)
    assert len(reading.extra) == len(
        set(variables) - {"ups.status", "battery.runtime", "battery.charge", "ups.load"}
    )
    status = variables.get("ups.status", "").split()
    assert reading.on_battery == ("OB" in status)
    assert reading.low_battery == ("LB" in status)


@pytest.mark.parametrize("dump", DUMPS, ids=[str(p.relative_to(DDL_DIR)) for p in DUMPS])
def test_every_device_dump_parses(dump: Path) -> None:
    variables = parse_dump(dump.read_text(encoding="utf-8", errors="replace"))
    reading = reading_from_vars(variables)
    _check_sane(reading, variables)
    runtime = variables.get("battery.runtime")
    if runtime is not None and re.fullmatch(r"\d+(\.\d+)?", runtime):
        value = float(runtime)
        # issue #11: sentinels (0, 65534, 65535, over 7 days) read as unknown
        sentinel = value in (0.0, 65534.0, 65535.0) or value > 7 * 24 * 3600
        assert reading.runtime_s == (None if sentinel else value)


# -- poll() and error kinds, with a fake reader -------------------------------------------------


class _Fake:
    def __init__(self, outcome: UpsReading | UpsError) -> None:
        self.outcome = outcome

    def read(self) -> UpsReading:
        if isinstance(self.outcome, UpsError):
            raise self.outcome
        return self.outcome


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (UpsError("x"), "unreachable"),
        (UpsDriverDownError("x"), "driver_down"),
        (UpsAuthError("x"), "auth"),
        (UpsUnknownError("x"), "unknown_ups"),
        (UpsProtocolError("x"), "protocol"),
    ],
)
def test_poll_turns_errors_into_comm_errors(error: UpsError, kind: str) -> None:
    assert comm_error_kind(error) == kind
    assert poll(_Fake(error)) == CommError(message="x", kind=kind)


def test_poll_passes_readings_through() -> None:
    reading = UpsReading(status=frozenset({"OL"}))
    assert poll(_Fake(reading)) is reading


# -- client construction and the password file -------------------------------------------------


def test_client_repr_hides_the_password() -> None:
    client = NutClient(UpsTarget.parse("u@localhost"), "hecate", "hunter2-secret", timeout_s=1.5)
    assert "hunter2-secret" not in repr(client)
    assert "hunter2-secret" not in str(client)
    assert repr(client).startswith("NutClient(target='u@localhost:3493', user='hecate'")


@pytest.mark.parametrize(
    ("user", "password", "timeout_s"),
    [
        ("hecate", None, 5.0),
        (None, "secret", 5.0),
        ("he cate", "secret", 5.0),
        ("hecate", "", 5.0),
        ("hecate", 'a"b', 5.0),
        ("hecate", "a\\b", 5.0),
        ("hecate", "a\nb", 5.0),
        ("hecate", "pässword", 5.0),
        ("hecate", "secret", 0.0),
        ("hecate", "secret", -1.0),
        ("hecate", "secret", math.inf),
        ("hecate", "secret", math.nan),
    ],
)
def test_client_rejects_bad_settings(
    user: str | None, password: str | None, timeout_s: float
) -> None:
    with pytest.raises(ConfigError) as caught:
        NutClient(UpsTarget.parse("u@localhost"), user, password, timeout_s=timeout_s)
    if password:
        assert password not in str(caught.value)


def test_read_password_file(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_text("s3cret with spaces\r\nsecond line\n")
    path.chmod(0o600)
    assert read_password_file(path) == "s3cret with spaces"


def test_read_password_file_problems(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        read_password_file(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="empty"):
        read_password_file(empty)
    loose = tmp_path / "loose"
    loose.write_text("topsecret\n")
    loose.chmod(0o644)
    assert read_password_file(loose) == "topsecret"
    assert "chmod 600" in caplog.text
    assert "topsecret" not in caplog.text
    caplog.clear()
    loose.chmod(0o640)  # the installer's mode: the daemon reads it through its group
    assert read_password_file(loose) == "topsecret"
    assert "NUT password file" not in caplog.text
