"""`hecate doctor`'s notification checks: each target's URL parses and its server answers a
TCP connect (http-like schemes) or an SMTP greeting (mailto), without sending anything. A target
that does not answer is a warning: notifications are not what protects the cluster."""

from __future__ import annotations

import smtplib
import socket
from urllib.parse import parse_qs, urlsplit

from hecate.adapters.notify.targets import load_targets
from hecate.config.model import HecateConfig
from hecate.config.notify import SERVER_SCHEMES, NotifyTarget
from hecate.core.doctor.findings import Finding, ok, warn
from hecate.errors import HecateError

TIMEOUT_S = 3.0
MAIL = frozenset({"mailto", "mailtos"})


def notify_checks(cfg: HecateConfig) -> list[Finding]:
    if cfg.notify.urls_file is None and not cfg.notify.targets:
        return []
    try:
        targets = load_targets(cfg)
    except HecateError as exc:
        return [warn("notify.urls_file", str(exc), "fix the file (one target a line)")]
    return [target_check(t) for t in targets]


def _endpoint(target: NotifyTarget) -> tuple[str, str, int] | None:
    """(kind, host, port) to try for the target, or None when it is a cloud service."""
    parts = urlsplit(target.url)
    scheme = parts.scheme.lower()
    secure = scheme.endswith("s")
    if scheme in MAIL:
        query = parse_qs(parts.query)
        host = query.get("smtp", [parts.hostname or ""])[0]
        return "smtp", host, parts.port or (465 if secure else 25)
    if scheme in SERVER_SCHEMES:
        return "tcp", parts.hostname or "", parts.port or (443 if secure else 80)
    return None


def target_check(target: NotifyTarget) -> Finding:
    check = f"notify.{target.name}"
    endpoint = _endpoint(target)
    scheme = urlsplit(target.url).scheme.lower()
    if endpoint is None:
        return ok(check, f"{scheme}:// URL valid (a cloud service: `hecate notify test` tries it)")
    kind, host, port = endpoint
    fix = f"check that {host}:{port} is up and reachable from this host; `hecate notify test`"
    try:
        if kind == "smtp":
            with smtplib.SMTP(host, port, timeout=TIMEOUT_S) as smtp:
                code, _ = smtp.noop()
            if code != 250:
                return warn(check, f"the SMTP server {host}:{port} answered {code}", fix)
            return ok(check, f"SMTP server {host}:{port} answers (nothing sent)")
        with socket.create_connection((host, port), timeout=TIMEOUT_S):
            pass
    except (OSError, smtplib.SMTPException) as exc:
        why = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return warn(check, f"{scheme}:// server {host}:{port} does not answer: {why}", fix)
    return ok(check, f"{scheme}:// server {host}:{port} accepts connections (nothing sent)")
