"""The Apprise child: `python -m hecate.adapters.notify.send_child`, one per delivery batch.

Apprise loads every plugin it has (about 0.5 s and 45 MB): it runs here, in a short-lived
process, so the daemon never imports it (issue 19's memory target) and a stuck plugin is killed
with its process. Protocol: one JSON object on stdin, {"url": URL, "messages": [{"title",
"body", "severity"}, ...]} (the URL on stdin, never on the command line: `ps` shows that); one
line on stdout per message, "ok" or "fail REASON", in order, stopping at the first failure (the
rest stay spooled, in order). Exit 0 when every message went out.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import sys
from typing import Any
from urllib.parse import urlsplit

TYPES = {"info": "info", "warning": "warning", "critical": "failure"}


def _names_a_server(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return "." in name or name == "localhost"
    return True


def redact(text: str, url: str) -> str:
    """`text` without the URL's secret-looking parts (password, long path or query words)."""
    parts = urlsplit(url)
    secrets = {parts.password or "", parts.username or ""}
    # the host part too: in the cloud schemes it is a token (pover://USER@TOKEN, slack://T/..);
    # not when it names a server (an address, a dotted name): the operator needs to see which
    host = parts.netloc.rpartition("@")[2]
    words = [] if _names_a_server(host) else [host, *host.split(":")]
    words += [*parts.path.split("/"), *parts.query.split("&")]
    words += [w.partition("=")[2] for w in parts.query.split("&")]
    secrets |= {w for w in words if len(w) >= 8}
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def _reason(log_text: str) -> str:
    lines = [line.split(" - ", 2)[-1] for line in log_text.strip().splitlines() if line]
    return lines[-1] if lines else "Apprise reported a failure"


def deliver(request: dict[str, Any]) -> int:
    import apprise  # noqa: PLC0415 - this process exists to import it

    url = str(request["url"])
    messages = list(request["messages"])
    sender = apprise.Apprise()
    if not sender.add(url):
        for _ in messages[:1]:
            print("fail Apprise does not accept this URL", flush=True)
        return 1
    for message in messages:
        with apprise.LogCapture(level=logging.WARNING) as captured:  # type: ignore[no-untyped-call]
            ok = sender.notify(
                title=str(message["title"]),
                body=str(message["body"]),
                notify_type=TYPES.get(str(message.get("severity")), "info"),
            )
        if not ok:
            reason = redact(_reason(captured.getvalue()), url).replace("\n", " ")
            print(f"fail {reason}", flush=True)
            return 1
        print("ok", flush=True)
    return 0


def main() -> int:
    try:
        request = json.loads(sys.stdin.read())
    except ValueError as exc:
        print(f"fail bad request: {exc}", flush=True)
        return 2
    return deliver(request)


if __name__ == "__main__":
    sys.exit(main())
