"""Protection before bookkeeping (issue 23, item 1), on REAL disk faults: a shutdown runs every
stage whatever `state_dir` does (full, read-only, deleted, failing with EIO); the failure is
logged once, counted, shown by `hecate status`, and the record is written when the disk allows;
a startup that cannot read or write its intent is refused with one `error:` line, exit 3.

Root only (mount, losetup): see tests/diskfaults.py. On main every shutdown here ended
before its first stage (`[Errno 28] No space left on device`, `Read-only file system`,
`cannot write .../intent.json: Input/output error`) and the CLI startup printed a traceback.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from hecate.adapters.ansible.protocol import PlaybookRequest
from hecate.adapters.metrics.exposition import render_text
from hecate.adapters.metrics.registry import Metrics
from hecate.adapters.statedir import unsaved
from hecate.adapters.statedir.save import flush
from hecate.adapters.statedir.store import StateStore
from hecate.cli.main import run
from hecate.config.model import HecateConfig, parse_config
from hecate.core.intent import IntentState
from hecate.core.plans import ClusterView, ShutdownOptions, StartupOptions, shutdown_plan
from hecate.core.readings import Poll, UpsReading, parse_status
from hecate.core.run_history import Outcome
from hecate.errors import IntentLockedError, StartupStateError
from hecate.flows import open_context as wiring
from hecate.flows.context import FlowContext
from hecate.flows.shutdown import run_shutdown
from hecate.flows.startup import run_startup
from tests import diskfaults
from tests.fakes import FakeAnsible, FakeKube, reads_ups

NODE_BATCH = ["stop_agents", "stop_servers", "poweroff", "poweroff"]
ONCE = "state files cannot be written"


def _config(state_dir: Path) -> HecateConfig:
    return parse_config(
        {
            "state_dir": str(state_dir),
            "nodes": {"servers": ["s1"], "agents": ["a1", "a2"]},
            "ups": {"target": "pyrphoros@localhost"},
        }
    )


def _cluster() -> FakeKube:
    kube = FakeKube(nodes_up={"s1": True, "a1": True, "a2": True})
    kube.add_flux("Kustomization", "flux-system", "apps")
    kube.add_flux("HelmRelease", "apps", "web")
    return kube


def _ctx(config: HecateConfig, ansible: FakeAnsible) -> FlowContext:
    kube = _cluster()
    ansible.cluster = kube
    return FlowContext(
        config=config,
        ansible=ansible,
        kube=kube,
        store=StateStore(config.state_dir),
        read_ups=lambda: UpsReading(parse_status("OB LB"), 60, 10),
        sleep=lambda _: None,
    )


def _seed(state_dir: Path) -> None:
    """A state dir as a daemon leaves it: an intent, a run history, a ledger, a lock file."""
    store = StateStore(state_dir)
    store.set_intent(IntentState.NORMAL, reason="seed", run_id=None)
    (state_dir / "runs.json").write_text('{"version": 1, "runs": []}\n')
    (state_dir / "ledger.json").write_text('{"suspended": [], "cordoned": []}\n')
    (state_dir / "hecate.lock").write_text("")
    (state_dir / ".write.lock").write_text("")


@contextlib.contextmanager
def broken_state_dir(kind: str, base: Path) -> Iterator[tuple[Path, Callable[[], None] | None]]:
    """(state_dir, heal): `state_dir` seeded, then broken the `kind` way; `heal()` makes the
    disk usable again (None for the failing disk: it does not come back)."""
    if kind == "eio":
        with diskfaults.failing_ext4(base) as (mount, fail):
            state = mount / "state"
            state.mkdir()
            _seed(state)
            fail()
            yield state, None
        return
    with diskfaults.tmpfs(base / "disk", size="256k") as mount:
        state = mount / "state"
        state.mkdir()
        _seed(state)
        if kind == "full":
            filler = diskfaults.fill(mount)
            yield state, filler.unlink
        elif kind == "read_only":
            diskfaults.remount(mount, "ro")
            yield state, lambda: diskfaults.remount(mount, "rw")
        else:  # deleted, and it cannot be made again (its parent is read-only now)
            shutil.rmtree(state)
            diskfaults.remount(mount, "ro")
            yield state, lambda: diskfaults.remount(mount, "rw")


def _failures(metrics: Metrics, name: str) -> float:
    text = render_text(metrics.registry).decode()
    line = f'hecate_state_write_failures_total{{file="{name}"}} '
    [value] = [row[len(line) :] for row in text.splitlines() if row.startswith(line)]
    return float(value)


@pytest.mark.parametrize("kind", ["full", "read_only", "deleted", "eio"])
def test_a_shutdown_runs_every_stage_whatever_the_state_disk_does(
    tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    metrics = Metrics()
    with broken_state_dir(kind, tmp_path) as (state, heal):
        config = _config(state)
        ansible = FakeAnsible()
        options = ShutdownOptions(reason="ups")
        report = run_shutdown(_ctx(config, ansible), options)
        # every stage ran, in the plan's order, and none failed for the disk
        plan = shutdown_plan(config, options, ClusterView(api_up=True))
        assert [s.name for s in report.stages] == [s.name for s in plan.stages]
        assert report.outcome is Outcome.SUCCESS, report.to_json()
        assert ansible.batches == [NODE_BATCH]
        assert ("etcd_snapshot", ("s1",)) in ansible.playbooks
        # no stage waited on the disk: the ones that write the ledger took no time to speak of
        assert all(s.duration_s < 1.0 for s in report.stages), report.to_json()
        # logged once, counted, the intent readable from what is kept
        assert sum(ONCE in r.getMessage() for r in caplog.records) == 1
        assert _failures(metrics, "intent.json") >= 2  # shutting_down, shutdown_complete
        assert _failures(metrics, "runs.json") >= 1
        store = StateStore(state)
        assert store.read_intent().state is IntentState.SHUTDOWN_COMPLETE
        [run_record] = [r for r in store.load_runs() if r.run_id == report.run_id]
        assert run_record.outcome is Outcome.SUCCESS
        kept = {f.name for f in unsaved.unsaved_files(state)}
        assert {"intent.json", "runs.json", "last-shutdown-report.json"} <= kept
        if heal is None:
            return
        # the disk allows again: the record is written, and nothing is left kept
        heal()
        assert flush(state)
        assert unsaved.unsaved_files(state) == []
        assert json.loads((state / "intent.json").read_text())["state"] == "shutdown_complete"
        runs = json.loads((state / "runs.json").read_text())["runs"]
        assert [r["run_id"] for r in runs] == [report.run_id]
        assert json.loads((state / "last-shutdown-report.json").read_text())["outcome"] == "success"
        assert sorted(json.loads((state / "ledger.json").read_text())["cordoned"]) == [
            "a1",
            "a2",
            "s1",
        ]


def test_another_process_reads_what_was_kept_and_status_shows_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The kept copy under the runtime directory is what `hecate status` (another process)
    and a restarted daemon read; status names it in text and --json."""
    with broken_state_dir("full", tmp_path) as (state, _heal):
        config = _config(state)
        report = run_shutdown(_ctx(config, FakeAnsible()), ShutdownOptions(reason="ups"))
        assert report.outcome is Outcome.SUCCESS
        unsaved.reset_for_tests()  # what this process held in memory is gone
        assert StateStore(state).read_intent().state is IntentState.SHUTDOWN_COMPLETE
        config_file = tmp_path / "hecate.yaml"
        example = Path(__file__).resolve().parents[4] / "configs" / "hecate.example.yaml"
        data = yaml.safe_load(example.read_text())
        data.update(state_dir=str(state))
        data["ups"]["password_file"] = None
        config_file.write_text(yaml.safe_dump(data))
        reading: Poll = UpsReading(parse_status("OL"), 1800, 100)
        reads_ups(monkeypatch, lambda _cfg: reading)
        assert run(["status", "-c", str(config_file), "--json"]) == 0
        shown = json.loads(capsys.readouterr().out)
        assert shown["intent"]["state"] == "shutdown_complete"
        assert {u["file"] for u in shown["unsaved"]} >= {"intent.json", "runs.json"}
        assert any("not saved" in p for p in shown["problems"])
        assert run(["status", "-c", str(config_file)]) == 0
        assert "problem: state files not saved: " in capsys.readouterr().err


def test_real_node_stages_run_when_the_state_disk_is_full(tmp_path: Path) -> None:
    """The Ansible run's private data dir lives under state_dir: on a full disk it goes under
    the runtime directory and the playbook runs for real (on main: OSError, no stage ran)."""
    from tests.unit.adapters.ansible.test_node_roles_local import Node, make_port  # noqa: PLC0415

    node = Node(tmp_path / "node")
    node.set_unit("k3s-agent", "active")
    with diskfaults.tmpfs(tmp_path / "state", size="128k") as state:
        (state / "ansible-artifacts").mkdir()
        diskfaults.fill(state)
        with make_port(tmp_path, node) as port:
            result = port.run(
                PlaybookRequest("stop_agents", limit=["a1"], extravars={"k3s_service_timeout_s": 5})
            )
        assert result.ok, result.summary()
        assert node.unit("k3s-agent") == "inactive"
        assert (unsaved.runtime_dir() / "ansible").is_dir()


class _ClosableKube(FakeKube):
    def close(self) -> None:
        pass


def _startup_config(tmp_path: Path, state: Path) -> Path:
    example = Path(__file__).resolve().parents[4] / "configs" / "hecate.example.yaml"
    data = yaml.safe_load(example.read_text())
    data.update(state_dir=str(state))
    data["ups"]["password_file"] = None
    path = tmp_path / "hecate.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("kind", ["read_only", "full", "eio_disk", "eio_fs"])
def test_a_startup_that_cannot_read_or_write_its_intent_is_refused_in_one_line(
    tmp_path: Path,
    kind: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`hecate startup --execute`: one `error:` line, exit 3 (refused by a safety guard),
    never a traceback; nothing ran. The guards pass (UPS on mains, API up), so only the disk
    refuses it."""
    reading: Poll = UpsReading(parse_status("OL"), 1800, 100)
    reads_ups(monkeypatch, lambda _cfg: reading)
    monkeypatch.setattr(wiring, "Kube", lambda _path: _ClosableKube(nodes_up={"s1": True}))
    with contextlib.ExitStack() as stack:
        if kind.startswith("eio"):
            mount, fail = stack.enter_context(diskfaults.failing_ext4(tmp_path / "eio"))
            state = mount / "state"
            state.mkdir()
            _seed(state)
            StateStore(state).set_intent(IntentState.SHUTTING_DOWN, reason="seed", run_id="x")
            StateStore(state).set_intent(IntentState.SHUTDOWN_COMPLETE, reason="s", run_id="x")
            if kind == "eio_fs":  # the filesystem itself fails: nothing can be read
                diskfaults.shutdown_fs(mount)
            else:
                fail()
        else:
            mount = stack.enter_context(diskfaults.tmpfs(tmp_path / "disk"))
            state = mount / "state"
            state.mkdir()
            _seed(state)
            StateStore(state).set_intent(IntentState.SHUTTING_DOWN, reason="seed", run_id="x")
            StateStore(state).set_intent(IntentState.SHUTDOWN_COMPLETE, reason="s", run_id="x")
            if kind == "full":
                diskfaults.fill(mount)
            else:
                diskfaults.remount(mount, "ro")
        config = _startup_config(tmp_path, state)
        code = run(["startup", "-c", str(config), "--execute"])
        out, err = capsys.readouterr()
        assert code == 3, (out, err)
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: startup refused: "), err
        assert "Traceback" not in out + err
        assert "startup succeeded" not in out


def test_the_daemon_shuts_down_on_a_full_state_disk_and_starts_up_once_it_has_room(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The issue's daemon run: the trigger's shutdown used to end before its first stage, five
    times, and the supervisor gave up. Now it runs once, completely; the power-return startup
    is refused while the disk is full (it needs its intent on disk) and runs once it has room,
    which also writes what the shutdown kept."""
    from tests.unit.daemon.test_daemon import World, r  # noqa: PLC0415

    caplog.set_level(logging.INFO)
    with diskfaults.tmpfs(tmp_path / "disk", size="256k") as mount:
        w = World(mount)
        state = w.config.state_dir
        StateStore(state).set_intent(IntentState.NORMAL, reason="seed", run_id=None)
        filler = diskfaults.fill(mount)
        w.poll(r("OB DISCHRG", 100))
        assert w.poll(r("OB DISCHRG", 100)) == ["RunShutdown"]
        assert [(rep.kind, rep.outcome.value) for rep in w.daemon.reports] == [
            ("shutdown", "success")
        ]
        assert [p for p, _ in w.ansible.playbooks][-2:] == ["poweroff", "poweroff"]
        assert "could not run" not in caplog.text
        text = render_text(w.daemon.metrics.registry).decode()
        assert 'hecate_intent_state{state="shutdown_complete"} 1.0' in text
        assert 'hecate_state_write_failures_total{file="intent.json"} 0.0' not in text
        assert sum(ONCE in rec.getMessage() for rec in caplog.records) == 1
        # power back: the startup is refused while the disk cannot take its intent
        assert w.poll(r("OL CHRG", 900, 90)) == []
        assert w.poll(r("OL CHRG", 900, 90), dt=11) == ["RunStartup"]
        assert "startup refused: cannot write" in caplog.text
        assert json.loads((state / "intent.json").read_text())["state"] == "normal"
        filler.unlink()  # room again: the retried startup runs and the record is written
        for _ in range(6):
            w.poll(r("OL CHRG", 900, 90), dt=11)
        assert [rep.kind for rep in w.daemon.reports] == ["shutdown", "startup"]
        assert json.loads((state / "intent.json").read_text())["state"] == "normal"
        runs = json.loads((state / "runs.json").read_text())["runs"]
        assert [run["kind"] for run in runs] == ["shutdown", "startup"]
        assert unsaved.unsaved_files(state) == []


def test_the_fallback_lock_keeps_two_processes_apart(tmp_path: Path) -> None:
    """With the state dir gone for good, the flow lock is a flock under the runtime directory:
    a second process's shutdown is refused while the first holds it, as with hecate.lock."""
    with broken_state_dir("deleted", tmp_path) as (state, _heal):
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys, time\n"
                "from pathlib import Path\n"
                "from hecate.adapters.statedir.save import flow_lock\n"
                "with flow_lock(Path(sys.argv[1]), 'shutdown'):\n"
                "    print('held', flush=True)\n"
                "    time.sleep(30)\n",
                str(state),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
            ansible = FakeAnsible()
            with pytest.raises(IntentLockedError, match=r"flow-.*\.lock \(pid="):
                run_shutdown(_ctx(_config(state), ansible), ShutdownOptions(reason="ups"))
            assert ansible.requests == []
        finally:
            holder.kill()
            holder.communicate()
        report = run_shutdown(_ctx(_config(state), FakeAnsible()), ShutdownOptions())
        assert report.outcome is Outcome.SUCCESS


def test_without_any_lock_file_a_shutdown_runs_and_a_startup_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Neither the state dir nor the runtime dir can hold a lock file: the shutdown still runs
    (kept apart from this process's other flows only); a startup is refused (exit 3's error)."""
    with broken_state_dir("deleted", tmp_path) as (state, _heal):
        monkeypatch.setenv(unsaved.RUNTIME_DIR_ENV, str(state.parent / "run"))  # read-only too
        report = run_shutdown(_ctx(_config(state), FakeAnsible()), ShutdownOptions())
        assert report.outcome is Outcome.SUCCESS
        assert StateStore(state).read_intent().state is IntentState.SHUTDOWN_COMPLETE
        with pytest.raises(StartupStateError, match="startup refused: cannot open"):
            run_startup(_ctx(_config(state), FakeAnsible()), StartupOptions())
