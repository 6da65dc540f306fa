"""The shipped alerting rules: valid for Prometheus, each with a runbook and a promtool test."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[4]
RULES = ROOT / "configs" / "prometheus" / "hecate-rules.yml"
RULE_TESTS = sorted((ROOT / "tests" / "prometheus").glob("hecate-rules*-test.yml"))


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool missing: scripts/setup installs Debian's prometheus package"
    return found


def alerts() -> list[dict[str, object]]:
    data = yaml.safe_load(RULES.read_text())
    return [rule for group in data["groups"] for rule in group["rules"] if "alert" in rule]


def test_promtool_accepts_the_rules() -> None:
    done = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_unit_tests_pass() -> None:
    done = subprocess.run(
        [promtool(), "test", "rules", *(path.name for path in RULE_TESTS)],
        capture_output=True,
        text=True,
        check=False,
        cwd=RULE_TESTS[0].parent,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_runbook_severity_and_both_kinds_of_test_case() -> None:
    assert len(RULE_TESTS) == 2
    tests = [group for path in RULE_TESTS for group in yaml.safe_load(path.read_text())["tests"]]
    cases = [case for group in tests for case in group["alert_rule_test"]]
    names = [str(rule["alert"]) for rule in alerts()]
    assert len(names) >= 12
    for rule in alerts():
        annotations = rule["annotations"]
        assert isinstance(annotations, dict) and annotations.get("runbook"), rule["alert"]
        labels = rule["labels"]
        assert isinstance(labels, dict) and labels["severity"] in {"critical", "warning", "info"}
    for name in names:
        mine = [case for case in cases if case["alertname"] == name]
        assert any(case["exp_alerts"] for case in mine), f"{name}: no case where it fires"
        if name != "HecateDrillNotRun":  # it fires from the start for a drill never run
            assert any(not case["exp_alerts"] for case in mine), f"{name}: no quiet case"
