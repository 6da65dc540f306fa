"""The `notify:` section: who is told what, from the host (docs/operating/notifications.md).

Each target is an Apprise URL with the events it wants and a minimum severity. URLs that hold a
token live in `urls_file` (one a line, checked like the NUT password file), never in the config.
A URL is checked here without importing Apprise (it loads every plugin it has, about 45 MB and
0.5 s): a known scheme and a URL that parses. An error names the target and the scheme, never
the URL: it may hold a token.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Final, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, ValidationInfo, field_validator

from hecate.config.strict import StrictModel

Severity = Literal["info", "warning", "critical"]
SEVERITY_RANK: Final[Mapping[str, int]] = {"info": 0, "warning": 1, "critical": 2}

# The events worth a message and their severity (issue 27's list; `test` is `notify test`'s).
EVENT_SEVERITY: Final[Mapping[str, Severity]] = {
    "on_battery": "warning",
    "power_restored": "info",
    "shutdown_triggered": "critical",
    "stage_failed": "critical",
    "shutdown_finished": "warning",
    "startup_waiting": "warning",
    "startup_finished": "info",
    "startup_failed": "critical",
    "load_shed": "warning",
    "load_restored": "info",
    "ups_unreadable": "warning",
    "battery_replace": "warning",
    "peer_unreachable": "warning",
    "self_update_failed": "warning",
    "state_set_aside": "warning",
    "drills_overdue": "info",
    "test": "info",
}
EVENT_NAMES: Final = tuple(EVENT_SEVERITY)

# Apprise schemes Hecate accepts (each one is checked against Apprise's own list by a test):
# the common push services, chat, email and plain webhooks.
SCHEMES: Final = frozenset(
    {
        "json", "jsons", "form", "forms", "xml", "xmls",
        "ntfy", "ntfys", "gotify", "gotifys", "pover", "tgram",
        "matrix", "matrixs", "discord", "slack", "mmost", "mmosts",
        "rocket", "rockets", "mailto", "mailtos", "signal", "signals",
        "apprise", "apprises", "pbul", "zulip", "whatsapp",
    }
)  # fmt: skip
# Schemes whose host part is a server of the operator's (HOST[:PORT]); in the others it holds a
# cloud service's token ("tgram://123456:ABC/chat": not a port).
SERVER_SCHEMES: Final = frozenset(
    {"json", "jsons", "form", "forms", "xml", "xmls", "ntfy", "ntfys", "gotify", "gotifys"}
    | {"apprise", "apprises", "matrix", "matrixs", "mmost", "mmosts", "rocket", "rockets"}
    | {"mailto", "mailtos"}
)
TARGET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


def url_problem(url: str) -> str | None:
    """Why `url` is not an Apprise URL Hecate accepts, or None. Never quotes the URL (a token
    may be in it); the scheme alone is named when it is unknown."""
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        return "the URL holds a blank or a control character"
    scheme, sep, _ = url.partition("://")
    if not sep:
        return "not a URL (SCHEME://...)"
    if scheme.lower() not in SCHEMES:
        shown = scheme if re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]{0,20}", scheme) else "?"
        return f"unknown scheme {shown!r} (known: {', '.join(sorted(SCHEMES))})"
    return _host_problem(url, scheme.lower())


def _host_problem(url: str, scheme: str) -> str | None:
    server = scheme in SERVER_SCHEMES
    try:
        parts = urlsplit(url)
        if server:
            parts.port  # noqa: B018 - raises ValueError on a port out of range or not a number
    except ValueError:
        return f"a malformed {scheme}:// URL (host or port)"
    if not (parts.hostname if server else parts.netloc):
        return f"a {scheme}:// URL needs a host" + ("" if server else " (or a service's token)")
    return None


def events_problem(events: list[str]) -> str | None:
    unknown = sorted(set(events) - {*EVENT_NAMES, "all"})
    if unknown:
        return f"unknown event(s) {unknown} (known: all, {', '.join(EVENT_NAMES)})"
    return None


class NotifyTarget(StrictModel):
    """One place messages go."""

    name: str = Field(description="The target's name (in logs, metrics and `notify test`).")
    url: str = Field(
        description="An Apprise URL (json://, ntfy://, mailto://, ...): only URLs that hold no "
        "secret; the others go in notify.urls_file."
    )
    events: list[str] = Field(
        default_factory=lambda: ["all"],
        description="The events it wants (all, or names from docs/operating/notifications.md).",
    )
    min_severity: Severity = Field("info", description="info, warning or critical.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not TARGET_NAME.fullmatch(value):
            raise ValueError("letters, digits, '_', '.', '-' (at most 63), starting with one")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str, info: ValidationInfo) -> str:
        problem = url_problem(value)
        if problem is not None:
            raise ValueError(f"target {info.data.get('name', '?')!r}: {problem}")
        return value

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str]) -> list[str]:
        problem = events_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    def wants(self, event: str, severity: Severity) -> bool:
        """Whether this target is sent `event` at `severity` (`test` goes everywhere)."""
        if event != "test" and "all" not in self.events and event not in self.events:
            return False
        return event == "test" or SEVERITY_RANK[severity] >= SEVERITY_RANK[self.min_severity]


class NotifyConfig(StrictModel):
    """Notifications from the host (Apprise URLs), sent even while the cluster is down."""

    targets: list[NotifyTarget] = Field(
        default_factory=list,
        description="Inline targets (URLs that hold no secret): name, url, events, min_severity.",
    )
    urls_file: Path | None = Field(
        None,
        description='Targets whose URLs hold tokens, one a line: "NAME URL [events=a,b] '
        '[min_severity=warning]" (mode 0640 root:hecate-daemon, like the NUT password file).',
    )
    startup_wait_seconds: float = Field(
        900.0, gt=0, description="Tell when a startup has waited this long (and for what)."
    )
    ups_unreadable_seconds: float = Field(
        300.0,
        gt=0,
        description="Tell when the UPS has been unreadable this long on mains (at once on "
        "battery).",
    )
    retry_max_seconds: float = Field(
        300.0, gt=0, description="The longest wait between two attempts to reach a target."
    )
    max_per_hour: int = Field(
        30, gt=0, le=3600, description="At most this many messages an hour (the rest counted)."
    )

    @field_validator("targets")
    @classmethod
    def _unique(cls, value: list[NotifyTarget]) -> list[NotifyTarget]:
        names = [t.name for t in value]
        for name in sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"target {name!r} is named twice")
        return value


def parse_urls_text(text: str, source: str) -> list[NotifyTarget]:
    """The targets of a URLs file: "NAME URL [events=a,b] [min_severity=S]" a line, blank
    lines and # comments skipped. Raises ValueError naming the line and the target, never the
    URL."""
    targets: list[NotifyTarget] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        words = line.split()
        where = f"{source} line {number}"
        if len(words) < 2:
            raise ValueError(f"{where}: expected NAME URL [events=a,b] [min_severity=S]")
        name, url, options = words[0], words[1], words[2:]
        events = ["all"]
        severity = "info"
        for option in options:
            key, sep, value = option.partition("=")
            if sep and key == "events":
                events = value.split(",")
            elif sep and key == "min_severity":
                severity = value
            else:
                # never quoted: a blank inside a URL makes its rest look like an option
                shown = f" {key!r}" if sep and key.isidentifier() and len(key) <= 20 else ""
                raise ValueError(
                    f"{where} ({name}): unknown option{shown} (events=a,b or min_severity=S; "
                    "a URL holds no blank)"
                )
        if not TARGET_NAME.fullmatch(name):
            raise ValueError(f"{where}: a bad target name")
        problem = url_problem(url) or events_problem(events)
        if problem is None and severity not in SEVERITY_RANK:
            problem = "min_severity must be info, warning or critical"
        if problem is not None:
            raise ValueError(f"{where}: target {name!r}: {problem}")
        if name in {t.name for t in targets}:
            raise ValueError(f"{where}: target {name!r} is named twice")
        fields = {"name": name, "url": url, "events": events, "min_severity": severity}
        try:
            targets.append(NotifyTarget.model_validate(fields))
        except ValidationError:  # its text would quote the URL
            raise ValueError(f"{where}: target {name!r} is not valid") from None
    return targets
