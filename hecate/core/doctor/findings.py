"""A `hecate doctor` finding (check, ok / warn / fail, what was seen, what to do) and how a list
of them is judged and shown. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    detail: str
    fix: str = ""

    def to_json(self) -> dict[str, str]:
        return {"check": self.check, "status": self.status, "detail": self.detail, "fix": self.fix}


def ok(check: str, detail: str) -> Finding:
    return Finding(check, "ok", detail)


def warn(check: str, detail: str, fix: str) -> Finding:
    return Finding(check, "warn", detail, fix)


def fail(check: str, detail: str, fix: str) -> Finding:
    return Finding(check, "fail", detail, fix)


def protected(findings: Iterable[Finding]) -> bool:
    return all(f.status != "fail" for f in findings)


def report_json(findings: Sequence[Finding], now: float, config_path: str) -> dict[str, Any]:
    return {
        "protected": protected(findings),
        "checked_at": now,
        "config": config_path,
        "failures": sum(f.status == "fail" for f in findings),
        "warnings": sum(f.status == "warn" for f in findings),
        "findings": [f.to_json() for f in findings],
    }


def render(findings: Sequence[Finding]) -> list[str]:
    """Text lines: `ok|WARN|FAIL  check  detail`, then `fix: ...` under anything not ok."""
    width = max((len(f.check) for f in findings), default=0)
    lines = []
    for f in findings:
        label = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}[f.status]
        lines.append(f"{label}  {f.check:<{width}}  {f.detail}")
        if f.fix:
            lines.append(f"{'':4}  {'':<{width}}  fix: {f.fix}")
    return lines


def summary(findings: Sequence[Finding]) -> str:
    failures = sum(f.status == "fail" for f in findings)
    warnings = sum(f.status == "warn" for f in findings)
    if failures:
        return (
            f"NOT PROTECTED: {failures} problem(s), {warnings} warning(s); fix the FAIL lines "
            "above, then run `hecate doctor` again"
        )
    return f"protected: every check passed ({warnings} warning(s))"
