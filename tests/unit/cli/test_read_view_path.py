"""`status`, `config check` and `replay` answer the same from the kept view of the config
(hecate.config.view, no pydantic) as from a config validated in full: each command runs in a
fresh interpreter with nothing kept (XDG_CACHE_HOME a file: no cache), then twice with a cache
(the first validates and keeps, the second reads the kept view), on a config with feeds, every
power method, load shedding and a BMC reached over plain http; stdout, stderr and the exit code
must match, and the run from the view must not import pydantic."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from hecate.adapters.statedir.store import StateStore
from hecate.core.run_history import Outcome, RunRecord

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "configs" / "hecate.example.yaml"
PROBE = """
import atexit, json, sys
atexit.register(lambda: open({out!r}, "w").write(json.dumps("pydantic" in sys.modules)))
sys.argv = ["hecate", *{args!r}]
from hecate.cli.entry import main
main()
"""
_NUMBER = re.compile(r"\d+(\.\d+)?")  # status prints ages, which move between runs


def _rich(tmp_path: Path) -> Path:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    servers, agents = data["nodes"]["servers"], data["nodes"]["agents"]
    every = [*servers, *agents]
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    data["state_dir"] = str(state)
    for key in ("kubeconfig", "ssh_identity_file"):
        path = tmp_path / key
        path.write_text("x\n")
        path.chmod(0o600)
        data[key] = str(path)
    bmc = tmp_path / "bmc"
    bmc.write_text("pw\n")
    bmc.chmod(0o644)  # loose: a warning
    data["ups"]["password_file"] = str(tmp_path / "absent-password")  # missing: a problem
    data["ups"]["target"] = "pyrphoros@127.0.0.1:1"
    data["power"] = {
        "nodes": {
            servers[0]: {
                "method": "ipmi",
                "address": "127.0.0.1:1",
                "user": "admin",
                "password_file": str(bmc),
            },
            agents[0]: {"method": "wol", "mac": "AA-BB-CC-DD-EE-01", "broadcast": "10.0.0.255"},
            agents[1]: {
                "method": "redfish",
                "url": "http://127.0.0.1:1/",
                "user": "admin",
                "password_file": str(bmc),
            },
        },
        "feeds": {"A": {"instance": "alpha"}, "B": {"instance": "beta"}},
        "node_feeds": {node: ["A", "B"] if node in servers else ["B"] for node in every},
        "partial_policy": "always",
        "shed": {"after_seconds": 60, "agents": [agents[1]]},
    }
    data["coordination"]["peer_name"] = "beta"
    path = tmp_path / "hecate.yaml"
    path.write_text(yaml.safe_dump(data))
    store = StateStore(state)
    for i in range(4):
        start = time.time() - 3600 * (i + 1)
        run = RunRecord(f"r{i}", "shutdown", start, start + 80 + i, Outcome.SUCCESS)
        store.record_run(run, keep=200)
    return path


def _run(args: list[str], cache: Path, tmp_path: Path) -> tuple[Any, ...]:
    out = tmp_path / f"probe-{len(list(tmp_path.glob('probe-*')))}.json"
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(out=str(out), args=args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", "XDG_CACHE_HOME": str(cache)},
    )
    same = (lambda text: _NUMBER.sub("N", text)) if args[0] == "status" else str
    pydantic = json.loads(out.read_text())
    return done.returncode, same(done.stdout), same(done.stderr), pydantic


@pytest.mark.parametrize(
    "args",
    [
        ["status", "-c", "{config}"],
        ["status", "-c", "{config}", "--json"],
        ["config", "check", "-c", "{config}"],
        ["config", "check", "-c", "{config}", "--json"],
        ["config", "check", "-c", "{config}", "--daemon-start", "--resolve"],
        ["replay", "blip", "-c", "{config}"],
        ["replay", "clock-step", "-c", "{config}", "--json"],
        ["replay", "blip", "--default-config", "--json"],
    ],
)
def test_the_kept_view_answers_as_the_validated_config(args: list[str], tmp_path: Path) -> None:
    config = _rich(tmp_path)
    argv = [a.replace("{config}", str(config)) for a in args]
    no_cache = tmp_path / "not-a-directory"
    no_cache.write_text("")
    cache = tmp_path / "cache"
    *validated, imported = _run(argv, no_cache, tmp_path)
    assert imported  # nothing kept: the config was validated by pydantic
    *first, _ = _run(argv, cache, tmp_path)
    *kept, imported = _run(argv, cache, tmp_path)
    assert list(cache.glob("hecate/*.view.pickle"))
    assert not imported  # from the kept view
    assert kept == first == validated
    assert validated[1] or validated[2]  # it said something
