"""Review finding (issue 27): no URL secret in what the sender logs about a failing child,
also when the token is the URL's host part (Pushover, Slack, Discord)."""

from __future__ import annotations

import sys

import pytest

from hecate.adapters.notify import child
from hecate.adapters.notify.send_child import redact
from hecate.config.notify import parse_urls_text
from hecate.core import notify_events as ne

WHERE = ne.Where("h", "ups@localhost")


def test_a_crashing_child_s_stderr_is_logged_without_the_url_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = "tgram://123456789:AAbbCCddEEffGGhh/987654321"
    crash = "import sys; r = sys.stdin.read(); sys.stderr.write('boom ' + r); sys.exit(1)"
    monkeypatch.setattr(child, "CHILD", [sys.executable, "-c", crash])
    results = child.send(url, [ne.notice(WHERE, "test", "t", "n", 1_700_000_000.0)])
    assert results and not results[0].ok
    assert "AAbbCCddEEffGGhh" not in results[0].why
    assert "123456789" not in results[0].why


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("pover://userkey1234@apptoken5678abcd", "apptoken5678abcd"),  # the token is the host
        ("slack://TokenAAAAAA/TokenBBBBBB/TokenCCCCCC", "TokenAAAAAA"),
        ("discord://123456789012/webhooktoken123", "123456789012"),
    ],
)
def test_redact_hides_a_token_in_the_host_part(url: str, secret: str) -> None:
    assert secret not in redact(f"failed to send to {secret}: 400", url)


def test_a_urls_file_line_split_by_a_blank_never_quotes_the_rest_of_the_url() -> None:
    # a URL broken by a blank: its second half is read as an option, and must not be shown
    text = "alerts tgram://123456:AAbb/chat SecretHalfOfTheToken\n"
    with pytest.raises(ValueError, match="line 1") as error:
        parse_urls_text(text, "/etc/hecate/notify-urls")
    assert "SecretHalfOfTheToken" not in str(error.value)


def test_a_server_address_stays_visible() -> None:
    # which server failed is what the operator acts on; an address or a dotted name is no token
    text = "A Connection error occurred sending JSON notification to 127.0.0.1:8080."
    assert redact(text, "json://127.0.0.1:8080/hook") == text
    assert "ntfy.example.org" in redact("failed: ntfy.example.org", "ntfys://ntfy.example.org/t")
    assert "TOKENabcdef12" not in redact("to TOKENabcdef12", "pover://USER@TOKENabcdef12")
