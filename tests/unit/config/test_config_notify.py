"""The `notify:` section and the URLs file: URLs checked without Apprise, errors that name the
target and never the URL (issue 27 item 1)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hecate.config.model import parse_config
from hecate.config.notify import SCHEMES, parse_urls_text, url_problem
from hecate.errors import ConfigError

SECRET = "tk_0123456789abcdef"  # noqa: S105 - a stand-in token


def _config(notify: object) -> dict[str, object]:
    return {"ups": {"target": "ups@localhost"}, "notify": notify}


def test_an_inline_target_parses_with_its_defaults() -> None:
    cfg = parse_config(_config({"targets": [{"name": "hook", "url": "json://10.0.0.5:8080/h"}]}))
    target = cfg.notify.targets[0]
    assert target.events == ["all"]
    assert target.min_severity == "info"
    assert cfg.notify.startup_wait_seconds == 900
    assert target.wants("on_battery", "warning")


@pytest.mark.parametrize(
    ("url", "words"),
    [
        (f"nosuch://{SECRET}@host/", "unknown scheme 'nosuch'"),
        (f"json://host:99999/{SECRET}", "malformed json://"),
        (f"json:///{SECRET}", "needs a host"),
        (f"json//host/{SECRET}", "not a URL"),
        (f"json://host/{SECRET} x", "blank or a control character"),
    ],
)
def test_a_bad_url_is_an_error_naming_the_target_never_the_url(url: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(_config({"targets": [{"name": "pager", "url": url}]}))
    text = str(caught.value) + " ".join(caught.value.problems)
    assert "notify.targets.0.url: target 'pager'" in text
    assert words in text
    assert SECRET not in text


def test_unknown_events_severities_and_twice_named_targets_are_errors() -> None:
    bad = {
        "targets": [
            {"name": "a", "url": "json://h/", "events": ["on_batery"]},
            {"name": "b", "url": "json://h/", "min_severity": "loud"},
        ]
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(_config(bad))
    text = "\n".join(caught.value.problems)
    assert "notify.targets.0.events: unknown event(s) ['on_batery']" in text
    assert "notify.targets.1.min_severity" in text
    twice = {"targets": [{"name": "c", "url": "json://h/"}, {"name": "c", "url": "json://g/"}]}
    with pytest.raises(ConfigError) as caught:
        parse_config(_config(twice))
    assert caught.value.problems == ["notify.targets: target 'c' is named twice"]


def test_the_urls_file_lines_parse_with_their_options() -> None:
    text = (
        "# a comment\n\n"
        f"phone ntfy://ntfy.example.org/{SECRET} events=on_battery,power_restored "
        "min_severity=warning\n"
        "mail mailto://smtp.example.org?to=a@example.org\n"
    )
    phone, mail = parse_urls_text(text, "urls")
    assert phone.events == ["on_battery", "power_restored"]
    assert phone.min_severity == "warning"
    assert not phone.wants("on_battery", "info")
    assert not phone.wants("stage_failed", "critical")
    assert phone.wants("test", "info")  # a test goes everywhere
    assert mail.events == ["all"]


@pytest.mark.parametrize(
    ("line", "words"),
    [
        (f"phone bogus://{SECRET}", "line 1: target 'phone': unknown scheme 'bogus'"),
        (f"phone json://h/{SECRET} colour=red", "line 1 (phone): unknown option 'colour'"),
        (f"phone json://h/{SECRET} events=nope", "unknown event(s) ['nope']"),
        (f"phone json://h/{SECRET} min_severity=loud", "min_severity must be"),
        ("phone", "expected NAME URL"),
        (f"-x json://h/{SECRET}", "a bad target name"),
        (f"p json://h/{SECRET}\np json://h/{SECRET}", "line 2: target 'p' is named twice"),
    ],
)
def test_a_bad_urls_file_line_is_named_and_its_url_is_not_shown(line: str, words: str) -> None:
    with pytest.raises(ValueError, match=r".") as caught:
        parse_urls_text(line, "urls")
    assert words in str(caught.value)
    assert SECRET not in str(caught.value)


@given(st.text(max_size=80))
def test_url_problem_never_raises_and_never_quotes_the_input(url: str) -> None:
    problem = url_problem(url)
    if problem is not None and len(url) > 24:
        assert url not in problem


def test_the_config_check_never_imports_apprise() -> None:
    parse_config(_config({"targets": [{"name": "hook", "url": "json://h/"}]}))
    assert "apprise" not in sys.modules


APPRISE_SCHEMES = """
import json, warnings
warnings.simplefilter("ignore", DeprecationWarning)  # a plugin of Apprise's imports imghdr
import apprise
schemas = apprise.Apprise().details()["schemas"]
print(json.dumps(sorted({s for p in schemas
                         for s in [*(p["protocols"] or []), *(p["secure_protocols"] or [])]})))
"""


def test_every_accepted_scheme_is_one_apprise_knows() -> None:
    # in a child: this process never imports Apprise (other tests check it stays out)
    done = subprocess.run(
        [sys.executable, "-c", APPRISE_SCHEMES], capture_output=True, text=True, check=True
    )
    known = set(json.loads(done.stdout))
    assert known >= SCHEMES, sorted(SCHEMES - known)
