"""Running the Apprise child (hecate.adapters.notify.send_child) with a timeout."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime

from hecate.adapters.notify.send_child import redact
from hecate.core.notify_events import Notice

CHILD = [sys.executable, "-m", "hecate.adapters.notify.send_child"]
TIMEOUT_S = 20.0  # Apprise's own start (about 0.5 s) and one HTTP or SMTP exchange per message
PER_MESSAGE_S = 10.0


@dataclass(frozen=True)
class Result:
    ok: bool
    why: str = ""


def stamped(notice: Notice) -> str:
    """The body with the time it was made: a message sent late says when it happened."""
    when = datetime.fromtimestamp(notice.at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{notice.body} (at {when})"


def send(url: str, notices: list[Notice], timeout_s: float | None = None) -> list[Result]:
    """Send `notices` to `url` in order through one child; one Result per notice it got to
    (the first failure ends the list). Never raises: a child that cannot start, dies or
    takes too long is a failure of the first message not confirmed."""
    request = {
        "url": url,
        "messages": [
            {"title": n.title, "body": stamped(n), "severity": n.severity} for n in notices
        ],
    }
    limit = timeout_s if timeout_s is not None else TIMEOUT_S + PER_MESSAGE_S * len(notices)
    try:
        done = subprocess.run(  # noqa: S603 - our own module, with this interpreter
            CHILD,
            input=json.dumps(request),
            capture_output=True,
            text=True,
            timeout=limit,
            check=False,
        )
        out = done.stdout
        # its stderr may be a traceback quoting the URL: redacted like the child's own reasons
        failure = f"the sender exited with {done.returncode}: {_last(redact(done.stderr, url))}"
    except subprocess.TimeoutExpired as exc:
        out = _text(exc.stdout)
        failure = f"no answer within {limit:.0f} s"
    except OSError as exc:
        return [Result(False, f"the sender could not start: {exc.strerror}")]
    results = []
    for line in out.splitlines():
        if line == "ok":
            results.append(Result(True))
        elif line.startswith("fail "):
            results.append(Result(False, line[5:]))
            return results
    if len(results) < len(notices):
        results.append(Result(False, failure))
    return results


def _text(value: bytes | str | None) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value or ""


def _last(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no reason given"
