"""The read commands' lean path (hecate.cli.read_run, issue 29 item 3): `status`, `config check`,
`replay` and `version` import nothing they do not use (no typer, no Kubernetes, Ansible or HTTP
client, no rich), answer exactly as the typer command does, and leave anything unusual to typer.
Each run is a fresh interpreter through the console script's function, so nothing this test
process imported can hide an import."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from hecate.cli.read_run import LEAN, parse

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "configs" / "hecate.example.yaml"

# What no read command may load: the CLI framework, cluster/Ansible/HTTP clients, fancy help.
NEVER = (
    "typer",
    "click",
    "rich",
    "lightkube",
    "kubernetes",
    "httpx",
    "httpx2",
    "ansible",
    "ansible_runner",
    "waitress",
    "prometheus_client",
    "hecate.cli.main",
    "hecate.adapters.kube",
    "hecate.adapters.ansible",
    "hecate.flows.context",
    "hecate.drills",
    # notification, BMC and HTTP client libraries; Hecate's ports that use them
    "apprise",
    "pyghmi",
    "urllib3",
    "requests",
    "hecate.adapters.notify",
    "hecate.adapters.power",
    "hecate.adapters.peers",
    "hecate.adapters.probes",
    "hecate.adapters.metrics",
    "hecate.adapters.http_server",
    "hecate.daemon",
)
# With the config kept validated (hecate.config.snapshot), what each command still must not load:
# no YAML parser (nothing is parsed), nor the parts of Hecate the command has no use for.
FLOWS = tuple(
    f"hecate.flows.{p.stem}"
    for p in (ROOT / "hecate" / "flows").glob("*.py")
    if p.stem not in ("__init__", "report")
)
# No pydantic either: the read commands read the kept view of the config (hecate.config.view).
PYDANTIC = (
    "pydantic",
    "pydantic_core",
    "annotated_types",
    "hecate.config.model",
    "hecate.config.strict",
    "hecate.config.ups",
    "hecate.config.power",
)
KEPT_NEVER: dict[str, tuple[str, ...]] = {
    "status": (
        *PYDANTIC,
        "yaml",
        *FLOWS,  # status reads the reports the flows left (hecate.flows.report), no more
        "hecate.core.plans",
        "hecate.core.etcd_recover",
        "hecate.core.startup_refusals",
        "tempfile",  # status writes nothing
    ),
    "config": (*PYDANTIC, "yaml", "hecate.adapters", "hecate.flows", "hecate.core.policy"),
    "replay": (
        *PYDANTIC,
        "yaml",
        "hecate.adapters.nut",
        "hecate.adapters.systemd",
        "hecate.flows",
        "hecate.cli.outage_report",  # only for --svg
    ),
}
# `version` does not even read a config.
VERSION_NEVER = (*NEVER, "pydantic", "yaml", "hecate.config")

PROBE = """
import atexit, json, sys
atexit.register(lambda: open({out!r}, "w").write(json.dumps(sorted(sys.modules))))
sys.argv = ["hecate", *{args!r}]
from hecate.cli.entry import main
main()
"""

TYPER_PATH = """
import sys
from hecate.cli.main import run
sys.exit(run({args!r}))
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}


def _run(code: str, cache: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
        env=_env() | ({"XDG_CACHE_HOME": str(cache)} if cache is not None else {}),
    )


def _lean(
    args: list[str], tmp_path: Path, cache: Path | None = None
) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    out = tmp_path / f"modules-{len(list(tmp_path.glob('modules-*')))}.json"
    done = _run(PROBE.format(out=str(out), args=args), cache)
    return done, set(json.loads(out.read_text()))


def _loaded(modules: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes))


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """The example config, valid with every file it names present; its UPS on a port nothing
    listens on (no NUT traffic: status says "not readable" and exits 4)."""
    data = yaml.safe_load(EXAMPLE.read_text())
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    data["state_dir"] = str(state)
    for key in ("kubeconfig", "ssh_identity_file"):
        path = tmp_path / key
        path.write_text("x\n")
        path.chmod(0o600)
        data[key] = str(path)
    password = tmp_path / "nut-password"
    password.write_text("secret\n")
    password.chmod(0o600)
    data["ups"]["password_file"] = str(password)
    data["ups"]["target"] = "pyrphoros@127.0.0.1:1"
    path = tmp_path / "hecate.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_version_loads_no_config_model_and_no_cli_framework(tmp_path: Path) -> None:
    done, modules = _lean(["version"], tmp_path)
    assert (done.returncode, done.stdout.strip()) == (0, "0.1.0"), done.stderr
    assert _loaded(modules, VERSION_NEVER) == []


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["status", "--config", "{config}"], 4),
        (["status", "--config", "{config}", "--json"], 4),
        (["config", "check", "-c", "{config}"], 0),
        (["config", "check", "--config={config}", "--json", "--daemon-start"], 0),
        (["replay", "blip", "--default-config"], 0),
        (["replay", "--json", "-c", "{config}", "clean-outage"], 0),
    ],
)
def test_read_commands_load_no_cluster_ansible_http_or_cli_framework(
    args: list[str], code: int, config: Path, tmp_path: Path
) -> None:
    argv = [a.replace("{config}", str(config)) for a in args]
    done, modules = _lean(argv, tmp_path)
    assert done.returncode == code, done.stderr
    assert done.stdout  # it really ran and printed its report
    assert _loaded(modules, NEVER) == []


@pytest.mark.parametrize(
    "args",
    [
        ["status", "--config", "{config}"],
        ["config", "check", "--config", "{config}"],
        ["replay", "blip", "--config", "{config}"],
        ["replay", "blip", "--default-config"],
    ],
)
def test_read_commands_with_a_kept_config_load_only_what_they_use(
    args: list[str], config: Path, tmp_path: Path
) -> None:
    argv = [a.replace("{config}", str(config)) for a in args]
    first, _ = _lean(argv, tmp_path)  # validates and keeps the config
    again, modules = _lean(argv, tmp_path)
    assert again.returncode == first.returncode, again.stderr
    assert _NUMBER.sub("N", again.stdout) == _NUMBER.sub("N", first.stdout)  # ages may differ
    assert again.stdout
    # the lean path's stand-in for pydantic's plugin loader is no pydantic (read_run says why)
    modules.discard("pydantic.plugin._loader")
    assert _loaded(modules, (*NEVER, *KEPT_NEVER[args[0]])) == []


_NUMBER = re.compile(r"\d+(\.\d+)?")


@pytest.mark.parametrize(
    "args",
    [
        ["version"],
        ["--version"],
        ["status", "-c", "{config}"],
        ["status", "-c", "{config}", "--json"],
        ["status", "-c", "{missing}", "--json"],
        ["config", "check", "-c", "{config}"],
        ["config", "check", "-c", "{config}", "--json"],
        ["config", "check", "-c", "{config}", "--resolve", "--daemon-start"],
        ["config", "check", "-c", "{missing}"],
        ["config", "check", "-c", "{missing}", "--json"],
        ["config", "check", "-c", "{bad}", "--json"],
        ["replay", "blip", "--default-config"],
        ["replay", "clock-step", "--default-config", "--json"],
        ["replay", "--list"],
        ["replay", "--list", "--json"],
        ["replay", "no-such-trace", "--default-config", "--json"],
        ["replay", "--default-config"],
        ["replay", "blip", "-c", "{missing}"],
    ],
)
def test_lean_path_answers_exactly_as_the_typer_command(
    args: list[str], config: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("ups: {target: 'no target', debounce_polls: 0}\nsurprise: 1\n")
    argv = [
        a.format(config=config, missing=tmp_path / "absent.yaml", bad=bad) if "{" in a else a
        for a in args
    ]
    lean, modules = _lean(argv, tmp_path)
    assert "hecate.cli.main" not in modules  # the lean path really answered
    typer_done = _run(TYPER_PATH.format(args=argv))
    same_times = (lambda text: _NUMBER.sub("N", text)) if argv[0] == "status" else str
    assert lean.returncode == typer_done.returncode
    assert same_times(lean.stdout) == same_times(typer_done.stdout)
    assert same_times(lean.stderr) == same_times(typer_done.stderr)


@pytest.mark.parametrize(
    "argv",
    [
        ["status", "--help"],
        ["status", "-h"],
        ["status", "--config"],  # value missing
        ["status", "--config", ""],  # empty value
        ["status", "--config="],
        ["status", "-c=x.yaml"],  # click reads "=x.yaml" as the value
        ["status", "-cx.yaml"],  # a short option with its value attached
        ["status", "--config", "--json"],  # click would take --json as the path
        ["status", "--jso"],
        ["status", "--json=1"],
        ["status", "extra"],
        ["status", "--", "--json"],
        ["config"],
        ["config", "check", "x.yaml"],
        ["config", "init"],
        ["replay", "a", "b"],
        ["replay", "blip", "--svg", "out.svg"],  # typer checks the path
        ["replay", "-"],
        ["version", "--json"],
        ["--version", "status"],
        ["doctor"],
        [],
    ],
)
def test_anything_unusual_is_left_to_typer(argv: list[str]) -> None:
    assert parse(argv) is None


def test_lean_options_are_the_typer_commands_options() -> None:
    """Every option the lean path takes is one the typer command declares (so the lean path
    never accepts what `hecate X --help` does not list)."""
    from hecate.cli.main import load_command  # noqa: PLC0415

    for words, lean in LEAN.items():
        if words[0].startswith("-") or words == ("version",):
            continue
        command: Any = load_command(words[0])
        for word in words[1:]:
            command = command.commands[word]
        declared = {opt for p in command.params for opt in p.opts}
        assert set(lean.flags) | set(lean.paths) <= declared, words


def test_pydantic_takes_only_get_plugins_from_its_loader() -> None:
    """The lean path's stand-in for pydantic's plugin loader (read_run._no_plugin_scan) offers
    `get_plugins` only: if a pydantic release imports anything else from the loader, this
    fails before an operator's `hecate status` would."""
    import pydantic  # noqa: PLC0415

    root = Path(pydantic.__file__).parent
    uses = {
        line.strip()
        for path in root.rglob("*.py")
        for line in path.read_text(encoding="utf-8").splitlines()
        if "_loader import" in line or "plugin._loader" in line
    }
    assert uses == {"from ._loader import get_plugins"}


@pytest.mark.parametrize(("setting", "stand_in"), [("__all__", True), ("some_plugin", False)])
def test_the_plugin_loader_is_stood_in_for_only_when_every_plugin_is_disabled(
    setting: str, stand_in: bool, config: Path, tmp_path: Path
) -> None:
    code = (
        "import os, sys\n"
        f"os.environ['PYDANTIC_DISABLE_PLUGINS'] = {setting!r}\n"
        f"sys.argv = ['hecate', 'config', 'check', '-c', {str(config)!r}]\n"
        "from hecate.cli.entry import main\n"
        "try:\n"
        "    main()\n"
        "finally:\n"
        "    loader = sys.modules['pydantic.plugin._loader']\n"
        "    own = getattr(loader, '__file__', None) is None\n"
        "    print(own, 'importlib.metadata' in sys.modules)\n"
    )
    done = _run(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-2:] == [str(stand_in), str(not stand_in)]
