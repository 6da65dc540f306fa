"""The plan is what runs (issue #14 item 2): for a matrix of configs and options, the stages a
run reports are exactly the stages its dry run printed (`hecate shutdown|startup --json`, no
--execute), in the same order; a stage the plan marks skipped is reported skipped, for the
reason the plan gave.

The run side uses the in-memory ports of the other unit flow tests; the dry run is the real CLI
reading the same config from a file, with the same flags.
"""

from __future__ import annotations

import http.server
import itertools
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from hecate.adapters.statedir.store import StateStore
from hecate.cli.main import app
from hecate.config.model import HecateConfig, parse_config
from hecate.core.plans import (
    API_DOWN,
    ClusterView,
    ShutdownOptions,
    StageStatus,
    StartupOptions,
    shutdown_plan,
    startup_plan,
)
from hecate.core.readings import UpsReading, parse_status
from hecate.core.run_history import Outcome
from hecate.flows.context import FlowContext
from hecate.flows.report import FlowReport
from hecate.flows.shutdown import run_shutdown
from hecate.flows.startup import run_startup
from tests.fakes import FakeAnsible, FakeKube

runner = CliRunner()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


UPS_PORT = _closed_port()  # the startup dry run reads the UPS: refused at once, never hangs


def _data(state: Path, agents: list[str], **sections: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {
        "state_dir": str(state),
        "ups": {"target": f"ups@127.0.0.1:{UPS_PORT}", "timeout_seconds": 1},
        "nodes": {"servers": ["s1"], "agents": agents},
    }
    data.update(sections)
    return data


def _dry_run(tmp: Path, data: dict[str, Any], args: list[str]) -> list[dict[str, Any]]:
    path = tmp / "hecate.yaml"
    path.write_text(yaml.safe_dump(data))
    result = runner.invoke(app, [*args, "--config", str(path), "--json"])
    assert result.exit_code in (0, 3), result.output  # 3: a startup guard refused (no UPS)
    plan: list[dict[str, Any]] = json.loads(result.output)["plan"]
    return plan


def _cluster(agents: list[str]) -> FakeKube:
    kube = FakeKube(nodes_up=dict.fromkeys(["s1", *agents], True))
    kube.add_flux("Kustomization", "flux-system", "apps")
    kube.add_flux("HelmRelease", "apps", "web")
    kube.add_flux("GitRepository", "flux-system", "flux-system")
    return kube


def _ctx(config: HecateConfig, kube: FakeKube, ansible: FakeAnsible) -> FlowContext:
    ansible.cluster = kube
    ctx = FlowContext(
        config=config,
        ansible=ansible,
        kube=kube,
        store=StateStore(config.state_dir),
        read_ups=lambda: UpsReading(parse_status("OL"), 1800, 100),
        sleep=lambda _: None,
    )
    ctx.ups_command = lambda _command: None
    ctx.poweroff_local = lambda: None
    return ctx


def _assert_plan_is_run(printed: list[dict[str, Any]], report: FlowReport) -> None:
    """The printed stages, in order, are the reported ones; the printed skips are kept."""
    stages = [step for step in printed if step["stage"]]
    assert [s["name"] for s in stages] == [s.name for s in report.stages], report.to_json()
    for step, result in zip(stages, report.stages, strict=True):
        if step["skip"] is not None:
            assert result.status is StageStatus.SKIPPED, (step, result)
            assert result.detail == step["skip"]
    # The steps around the stages bracket them, as the dry run says.
    names = [s["name"] for s in printed]
    assert names[-1] == "record"
    assert names[0] in ("intent", "guards")


# --------------------------------------------------------------------------- shutdown

CLUSTERS: tuple[
    tuple[list[str], bool], ...
] = (  # (agents, the API answers), cycled through the option matrix below
    (["a1", "a2"], True),
    ([], True),
    (["a1", "a2"], False),
    ([], False),
)
SHUTDOWN_MATRIX = [
    (*options, *CLUSTERS[i % len(CLUSTERS)])
    for i, options in enumerate(
        itertools.product(
            ("poweroff", "cluster-only"),  # --mode
            ("off", "on", "on --skip-drain"),  # shutdown.drain and the flag
            ("off", "on", "on --skip-etcd-snapshot"),  # shutdown.etcd_snapshot and the flag
            (False, True),  # shutdown.ups_kill_power
        )
    )
]


@pytest.mark.parametrize(
    ("mode", "drain", "snapshot", "kill_power", "agents", "api_up"), SHUTDOWN_MATRIX
)
def test_shutdown_reports_the_stages_its_dry_run_printed(
    tmp_path: Path,
    mode: str,
    drain: str,
    snapshot: str,
    kill_power: bool,
    agents: list[str],
    api_up: bool,
) -> None:
    data = _data(
        tmp_path / "state",
        agents,
        shutdown={
            "drain": drain != "off",
            "etcd_snapshot": snapshot != "off",
            "ups_kill_power": kill_power,
        },
    )
    options = ShutdownOptions(
        mode="poweroff" if mode == "poweroff" else "cluster-only",
        skip_drain="--skip-drain" in drain,
        skip_etcd_snapshot="--skip-etcd-snapshot" in snapshot,
    )
    flags = ["--mode", mode]
    flags += ["--skip-drain"] if options.skip_drain else []
    flags += ["--skip-etcd-snapshot"] if options.skip_etcd_snapshot else []
    printed = _dry_run(tmp_path, data, ["shutdown", *flags])

    kube = _cluster(agents)
    kube.api_up = api_up
    report = run_shutdown(_ctx(parse_config(data), kube, FakeAnsible()), options)
    assert report.outcome is Outcome.SUCCESS, report.to_json()
    _assert_plan_is_run(printed, report)
    names = [s.name for s in report.stages]
    # The plan's own decisions, spelled out (the defects: drain decided twice,
    # ups_kill_power missing from the dry run).
    assert ("drain" in names) == (drain == "on" and bool(agents))
    assert ("etcd_snapshot" in names) == (snapshot == "on")
    assert ("ups_kill_power" in names) == (kill_power and mode == "poweroff")
    assert ("poweroff_agents" in names) == (mode == "poweroff")
    statuses = {s.name: s for s in report.stages}
    if not api_up:
        for name in ("flux_suspend", "cordon", "drain"):
            if name in statuses:
                assert statuses[name].status is StageStatus.SKIPPED
                assert statuses[name].detail == API_DOWN
    if not agents:
        assert statuses["stop_agents"].status is StageStatus.SKIPPED


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    managed=st.one_of(st.none(), st.lists(st.sampled_from(["s1", "a1", "a2"]), unique=True)),
    method=st.sampled_from(["poweroff", "marker"]),
    local=st.booleans(),
    unreachable=st.sets(st.sampled_from(["s1", "a1", "a2"])),
)
def test_shutdown_poweroff_targets_match_the_plan(
    tmp_path_factory: pytest.TempPathFactory,
    managed: list[str] | None,
    method: str,
    local: bool,
    unreachable: set[str],
) -> None:
    """Which nodes are powered off (and whether a poweroff stage is skipped for want of a
    managed node) is the plan's decision: the nodes printed are the nodes the run acts on,
    whatever the run finds (unreachable nodes make it partial, never change its stages)."""
    tmp = tmp_path_factory.mktemp("poweroff")
    shutdown: dict[str, Any] = {"poweroff_method": method, "poweroff_local_host": local}
    data = _data(tmp / "state", ["a1", "a2"], shutdown=shutdown)
    if managed is not None:
        data["ssh_managed_nodes"] = managed
    printed = _dry_run(tmp, data, ["shutdown"])
    ansible = FakeAnsible(unreachable=unreachable)
    report = run_shutdown(
        _ctx(parse_config(data), _cluster(["a1", "a2"]), ansible), ShutdownOptions()
    )
    _assert_plan_is_run(printed, report)
    planned = {s["name"]: tuple(s["nodes"]) for s in printed}
    ran = [limit for playbook, limit in ansible.playbooks if playbook == "poweroff"]
    assert ran == [planned[n] for n in ("poweroff_agents", "poweroff_servers") if planned[n]]
    assert ("then power off this host" in json.dumps(printed)) == local


# --------------------------------------------------------------------------- startup


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        del format, args


@pytest.fixture(scope="module")
def web() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


GATES = ("time_sync", "storage", "foundation", "probes", "soak")
# All gates off, all on, each one alone, each one left out; each with agents and no branch,
# and without agents and with --force-flux-branch.
GATE_SETS = sorted(
    {frozenset(), frozenset(GATES)}
    | {frozenset({g}) for g in GATES}
    | {frozenset(GATES) - {g} for g in GATES},
    key=sorted,
)
STARTUP_MATRIX = [
    (*(g in gates for g in GATES), agents, branch)
    for gates in GATE_SETS
    for agents, branch in ((["a1"], None), ([], "recovery"))
]


@pytest.mark.parametrize(
    ("time_sync", "storage", "foundation", "probes", "soak", "agents", "branch"), STARTUP_MATRIX
)
def test_startup_reports_the_stages_its_dry_run_printed(
    tmp_path: Path,
    web: str,
    time_sync: bool,
    storage: bool,
    foundation: bool,
    probes: bool,
    soak: bool,
    agents: list[str],
    branch: str | None,
) -> None:
    startup: dict[str, Any] = {
        "flux_ready_timeout_seconds": 1,
        "nodes_ready_timeout_seconds": 1,
        "api_timeout_seconds": 1,
        "time_sync_check": time_sync,
        "time_sync_timeout_seconds": 0.3,
        "storage_timeout_seconds": 0.3,
    }
    if storage:
        startup["storage_workloads"] = [{"kind": "daemonset", "namespace": "s", "name": "csi"}]
    if foundation:
        startup["foundation_workloads"] = [{"namespace": "kube-system", "name": "coredns"}]
    if probes:
        startup["probes"] = [{"target": web}]
    if soak:
        startup.update(soak_seconds=0.1, soak_interval_seconds=0.05)
    data = _data(tmp_path / "state", agents, startup=startup)
    printed = _dry_run(
        tmp_path, data, ["startup", *(["--force-flux-branch", branch] if branch else [])]
    )

    kube = _cluster(agents)
    kube.storage = {"daemonset/s/csi": (1, 1)}
    config = parse_config(data)
    ctx = _ctx(config, kube, FakeAnsible())
    run_shutdown(ctx, ShutdownOptions(mode="cluster-only"))  # something to resume
    report = run_startup(ctx, StartupOptions(force_flux_branch=branch))
    assert report.outcome is Outcome.SUCCESS, report.to_json()
    _assert_plan_is_run(printed, report)
    names = [s.name for s in report.stages]
    for gate, on in (
        ("time_sync", time_sync),
        ("storage", storage),
        ("foundation", foundation),
        ("probes", probes),
        ("soak", soak),
    ):
        assert (gate in names) == on
    assert "flux_ready" in names and "gitea_fallback" not in names
    assert (f"branch {branch}" in kube.calls) == bool(branch)


def test_startup_with_the_gitea_fallback_still_walks_its_plan(tmp_path: Path) -> None:
    """Flux's source down: the fallback happens inside `flux_ready`, not as a stage of its
    own (the old dry run called it "gitea_fallback")."""
    data = _data(
        tmp_path / "state",
        ["a1"],
        startup={
            "flux_ready_timeout_seconds": 1,
            "nodes_ready_timeout_seconds": 1,
            "api_timeout_seconds": 1,
            "time_sync_check": False,
        },
    )
    printed = _dry_run(tmp_path, data, ["startup"])
    kube = _cluster(["a1"])
    ctx = _ctx(parse_config(data), kube, FakeAnsible())
    run_shutdown(ctx, ShutdownOptions(mode="cluster-only"))
    kube.gitea_replicas = 0
    report = run_startup(ctx, StartupOptions())
    assert report.fallbacks == ["gitea_scale"]
    _assert_plan_is_run(printed, report)


def test_the_plans_are_pure_and_stable() -> None:
    """Same inputs, same plan (frozen data): the dry run can be printed twice, or compared."""
    config = parse_config({"nodes": {"servers": ["s1"], "agents": ["a1"]}})
    assert shutdown_plan(config, ShutdownOptions()) == shutdown_plan(config, ShutdownOptions())
    assert startup_plan(config, StartupOptions()) == startup_plan(config, StartupOptions())
    with pytest.raises(AttributeError):
        shutdown_plan(config, ShutdownOptions()).stages[0].name = "x"  # type: ignore[misc]


@settings(max_examples=200, deadline=None)
@given(
    mode=st.sampled_from(["poweroff", "cluster-only"]),
    drain=st.booleans(),
    snapshot=st.booleans(),
    kill_power=st.booleans(),
    skip_drain=st.booleans(),
    skip_snapshot=st.booleans(),
    agents=st.lists(st.sampled_from(["a1", "a2", "a3"]), unique=True),
    managed=st.one_of(st.none(), st.lists(st.sampled_from(["s1", "a1", "a2"]), unique=True)),
    api_up=st.sampled_from([None, True, False]),
)
def test_what_the_run_learns_of_the_cluster_changes_only_skips(
    mode: str,
    drain: bool,
    snapshot: bool,
    kill_power: bool,
    skip_drain: bool,
    skip_snapshot: bool,
    agents: list[str],
    managed: list[str] | None,
    api_up: bool | None,
) -> None:
    """The dry run cannot know whether the API answers; the run can. That knowledge may mark
    the API stages skipped and nothing else: same stages, same order, same nodes. And the
    plan's order is the safe one whatever the inputs: API stages, then the snapshot, agents
    before servers, poweroff after every stop, the UPS kill last."""
    data: dict[str, Any] = {
        "nodes": {"servers": ["s1"], "agents": agents},
        "shutdown": {"drain": drain, "etcd_snapshot": snapshot, "ups_kill_power": kill_power},
    }
    if managed is not None:  # (the config refuses names that are not nodes)
        data["ssh_managed_nodes"] = [n for n in managed if n in ("s1", *agents)]
    config = parse_config(data)
    options = ShutdownOptions(
        mode="poweroff" if mode == "poweroff" else "cluster-only",
        skip_drain=skip_drain,
        skip_etcd_snapshot=skip_snapshot,
    )
    dry = shutdown_plan(config, options)
    run = shutdown_plan(config, options, ClusterView(api_up=api_up))
    assert [(s.name, s.nodes) for s in dry.stages] == [(s.name, s.nodes) for s in run.stages]
    for d, r in zip(dry.stages, run.stages, strict=True):
        if d.skip != r.skip:
            assert api_up is False and r.skip == API_DOWN
            assert r.name in ("flux_suspend", "cordon", "drain")
    order = [
        "flux_suspend",
        "cordon",
        "drain",
        "etcd_snapshot",
        "stop_agents",
        "stop_servers",
        "poweroff_agents",
        "poweroff_servers",
        "ups_kill_power",
    ]
    names = list(run.stage_names)
    assert names == [n for n in order if n in names]
    assert len(set(names)) == len(names)
    powered = {n for s in run.stages if s.name.startswith("poweroff_") for n in s.nodes}
    assert powered <= set(config.managed_nodes())
