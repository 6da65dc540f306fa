"""A real Prometheus scrapes a coordinator and a peer on real upsds through an outage that
triggers a (cluster-only) shutdown on the twin; every dashboard expression and every rule is run
through Prometheus's HTTP API."""

from __future__ import annotations

import json
import re
import secrets
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hecate.core.run_history import Outcome
from tests.integration.test_daemon import (
    Running,
    _peer_config,
    make_coordinator,
    make_daemon,
    shutdowns,
    wait_for,
)
from tests.testbed.pytest_nut import NutServerFactory
from tests.testbed.pytest_twin import TwinFactory

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "configs" / "grafana" / "hecate-dashboard.json"
RULES = ROOT / "configs" / "prometheus" / "hecate-rules.yml"
PROMQL_KEYWORDS = {"by", "on", "group_left", "sum", "max", "time", "increase", "rate", "or", "and"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Prometheus:
    def __init__(self, workdir: Path, targets: list[str]) -> None:
        binary = shutil.which("prometheus")
        assert binary, "prometheus missing: scripts/setup installs Debian's prometheus package"
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": "hecate", "static_configs": [{"targets": targets}]}],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = (workdir / "prometheus.log").open("w")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def get(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        url = f"http://127.0.0.1:{self.port}{path}" + (f"?{query}" if query else "")
        with urllib.request.urlopen(url, timeout=10) as response:
            data = json.loads(response.read().decode())
        assert data["status"] == "success", data
        return data["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.get("/api/v1/query", query=expr)["result"]
        return result

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2):
                return True
        except OSError:
            return False

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.log.close()


@pytest.fixture
def prometheus_factory(tmp_path: Path) -> Iterator[list[Prometheus]]:
    made: list[Prometheus] = []
    yield made
    for each in made:
        each.close()


def panel_expressions() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    found = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = (
                target["expr"]
                .replace("$instance", ".*")
                .replace("$ups", ".*")
                .replace("$__range", "10m")
                .replace("$__rate_interval", "15s")
            )
            found.append((panel["title"], expr))
    return found


# Series that exist only with an optional part configured: notifications with notify targets
# (their rule, HecateNotificationsFailing, is tested with promtool in tests/prometheus).
OPTIONAL_SERIES = {"hecate_notifications_total"}


def rule_selectors() -> dict[str, set[str]]:
    """Each alert's input series names (what must exist for the rule to mean anything)."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    selectors: dict[str, set[str]] = {}
    for rule in (r for g in groups for r in g["rules"]):
        names = set(re.findall(r"\b(hecate_[a-z_]+|up)\b", rule["expr"])) - PROMQL_KEYWORDS
        selectors[rule["alert"]] = names
    return selectors


def seed_history(state: Path) -> None:
    """A recorded outage (a UPS whose claim burns twice as fast as time) and one drill run."""
    traces = state / "traces"
    traces.mkdir(parents=True)
    rows = [
        {"t": float(t), "status": "OB DISCHRG", "runtime": 1200 - 2 * t, "load": 34}
        for t in range(0, 301, 10)
    ]
    rows.append({"t": 310.0, "status": "OL CHRG", "runtime": 600})
    (traces / "outage-20260101T000000Z.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows)
    )
    drill = {
        "drill": "power-outage",
        "passed": True,
        "started_at": time.time() - 3600,
        "time_to_recover_s": 42.0,
        "manual_steps": 0,
    }
    (state / "drills.json").write_text(json.dumps({"version": 1, "drills": [drill]}))


def test_every_panel_and_rule_returns_data_and_the_trigger_is_counted(
    make_twin: TwinFactory,
    nut_server_factory: NutServerFactory,
    prometheus_factory: list[Prometheus],
    tmp_path: Path,
) -> None:
    cluster = make_twin(1, 1)
    token = tmp_path / "token"
    token.write_text(secrets.token_hex(24))
    token.chmod(0o600)
    main_ups, peer_ups = nut_server_factory(["pyrphoros"]), nut_server_factory(["pyrphoros"])
    main_ups.set_reading(status="OL CHRG", runtime=1800, charge=100, load=34)
    coord_state, peer_state = tmp_path / "coord", tmp_path / "peer"
    seed_history(coord_state)
    coordinator = make_coordinator(cluster, coord_state, main_ups, token)
    with Running(coordinator):
        assert coordinator.server is not None
        address = f"127.0.0.1:{coordinator.server.port}"
        peer = make_daemon(_peer_config(cluster, peer_state, peer_ups, token, address, False))
        with Running(peer):
            coord_target = f"127.0.0.1:{coordinator.metrics_port}"
            targets = [coord_target, f"127.0.0.1:{peer.metrics_port}"]
            workdir = tmp_path / "prometheus"
            workdir.mkdir()
            prom = Prometheus(workdir, targets)
            prometheus_factory.append(prom)
            wait_for(prom.ready, 60, "Prometheus ready")
            wait_for(lambda: len(prom.query('up{job="hecate"} == 1')) == 2, 60, "both targets up")
            wait_for(
                lambda: bool(prom.query("hecate_coordinator_reachable == 1")),
                60,
                "the peer's probe of the coordinator",
            )
            time.sleep(3)  # the counters' 0 is scraped before anything happens

            # The outage: on battery, then the runtime falls below the threshold (330 s).
            main_ups.set_reading(status="OB DISCHRG", runtime=1500, charge=90, load=34)
            time.sleep(4)
            main_ups.set_reading(status="OB DISCHRG", runtime=250, charge=40, load=34)
            wait_for(lambda: shutdowns(coord_state) == [Outcome.SUCCESS], 120, "the shutdown")
            time.sleep(4)  # a few scrapes and rule evaluations after it

            empty = [(title, expr) for title, expr in panel_expressions() if not prom.query(expr)]
            assert not empty, f"panels without data: {empty}"

            instances = prom.get(
                "/api/v1/label/instance/values", **{"match[]": "hecate_build_info"}
            )
            assert sorted(instances) == sorted(targets)  # the dashboard's $instance variable
            ups = prom.get("/api/v1/label/ups/values", **{"match[]": "hecate_build_info"})
            assert ups == ["pyrphoros"]

            # The trigger: the counter existed at 0, so increase() sees the step to 1.
            selector = f'hecate_triggers_total{{instance="{coord_target}", source="ups"}}'
            (now,) = prom.query(selector)
            assert float(now["value"][1]) == 1.0
            (seen,) = prom.query(f"increase({selector}[10m])")
            assert float(seen["value"][1]) >= 0.9
            (runs,) = prom.query(
                f'increase(hecate_runs_total{{instance="{coord_target}", kind="shutdown",'
                f' outcome="success"}}[10m])'
            )
            assert float(runs["value"][1]) >= 0.9

            # Every rule: its input series exist, and Prometheus evaluates it without error.
            for alert, names in rule_selectors().items():
                for name in names - OPTIONAL_SERIES:
                    assert prom.query(name), f"{alert}: no series {name}"
            rules = [r for g in prom.get("/api/v1/rules")["groups"] for r in g["rules"]]
            assert len(rules) == len(rule_selectors())
            for rule in rules:
                assert rule["health"] == "ok", rule
            # And the ones this outage should raise are raised (pending or firing).
            raised = {r["metric"]["alertname"] for r in prom.query("max_over_time(ALERTS[10m])")}
            expected = {
                "HecateShutdownTriggered",
                "HecateOnBattery",
                "HecateRuntimeMarginLow",
                "HecateBatteryBelowClaim",
                "HecateDrillNotRun",
            }
            assert expected <= raised, raised
            quiet = {"HecateDown", "HecateCoordinatorUnreachable", "HecateUpsUnreadable"}
            assert not quiet & raised, raised
