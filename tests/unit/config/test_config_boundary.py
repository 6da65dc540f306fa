"""Issue #12, item 1: nothing invalid gets past the config boundary.

An adversarial corpus (each case with the reason it must be refused), odd files that must give
one clear line and exit 2 (never a traceback, never a hang), `config check --resolve`, strict
JSON, and a hypothesis property test fuzzing the loader: whatever it is given, it returns a
config that works downstream or raises ConfigError; nothing else.
"""

from __future__ import annotations

import copy
import json
import os
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from hecate.adapters.ansible.inventory import build_inventory, jump_preflight_argv, node_target
from hecate.adapters.peers.http import CoordinatorClient
from hecate.cli.common import strict_json
from hecate.cli.main import app, run
from hecate.config.addresses import UpsTarget
from hecate.config.checks import resolve_problems
from hecate.config.load import MAX_CONFIG_BYTES, parse_yaml
from hecate.config.model import HecateConfig, load_config, parse_config
from hecate.errors import ConfigError
from tests.config_files import with_files

EXAMPLE = Path(__file__).resolve().parents[3] / "configs" / "hecate.example.yaml"
BASE: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
runner = CliRunner()


def with_value(path: str, value: object) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    node = data
    *parents, last = path.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return data


def refused(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    return caught.value.problems


# (field path, value, why it must be refused)
CORPUS: list[tuple[str, object, str]] = [
    ("ssh_node_hosts", {"titan-0": "10.0.0.1:99999"}, "port above 65535"),
    ("ssh_node_hosts", {"titan-0": "10.0.0.1:0"}, "port 0 cannot be connected to"),
    ("ssh_node_hosts", {"titan-0": "10.0.0.1:ssh"}, "service name, not a port"),
    ("ssh_node_hosts", {"titan-0": "[fd00::1:22"}, "unclosed bracket"),
    ("ssh_node_hosts", {"titan-0": 10}, "a number is not an address"),
    ("ups.target", "ups@host:abc", "port not a number"),
    ("ups.target", "a@b@c", "two '@'"),
    ("ups.target", "u ps@host", "space in the UPS name"),
    ("metrics.listen", "999.1.1.1:9560", "not an IPv4 address"),
    ("metrics.listen", ":9561", "same port as coordination.listen (:9561)"),
    ("coordination.coordinator_address", "coordinator", "no port"),
    ("coordination.listen", "[::1]:9561", "the endpoint binds IPv4 only: it would fail at start"),
    ("coordination.peer_hosts", ["10.0.0.2:70000"], "port above 65535"),
    ("ssh_jump_host", "-oProxyCommand=x", "option injection"),
    ("default_budget_seconds", float("inf"), "an infinite budget shuts down on any blip"),
    ("startup.power_stable_seconds", float("inf"), "startup would never come"),
    ("runtime_safety_factor", float("nan"), "nan compares false with everything"),
    ("ups.debounce_polls", True, "`on` is a boolean, not 1 poll"),
    ("ups.poll_interval_seconds", False, "a boolean is not a duration"),
    ("ssh_port", True, "a boolean is not a port"),
    ("state_dir", "", "an empty path is the current directory"),
    ("kubeconfig", "/etc/k3s\x00.yaml", "NUL byte in a path"),
    ("ssh_user", "", "empty user"),
    ("nodes.servers", ["-oProxyCommand=touch /tmp/pwned"], "not an RFC 1123 host name"),
    ("nodes.servers", ["Titan-0"], "Kubernetes node names are lower case"),
    ("nodes", {"servers": [], "agents": ["titan-1"]}, "agents without a server"),
    ("shutdown.min_samples", 20, "more than history_window (10): the budget never learns"),
    ("ssh_jump_user", "ops", "a jump user without a jump host"),
]


@pytest.mark.parametrize(("path", "value", "why"), CORPUS, ids=[c[2] for c in CORPUS])
def test_corpus_is_refused_with_its_field_path(path: str, value: object, why: str) -> None:
    data = with_value(path, value)
    problems = refused(data)
    top = path.split(".", maxsplit=1)[0]
    assert any(p.startswith(top) or p.startswith("(top level)") for p in problems), problems


def test_example_is_accepted() -> None:
    assert parse_config(copy.deepcopy(BASE)).nodes.servers == ["titan-0"]


def test_no_nodes_is_refused_for_a_coordinator_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("state_dir: /tmp/x\nups: {target: pyrphoros@localhost}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == ["nodes.servers: a coordinator needs at least one server node"]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("ssh_user: a\nssh_user: b\n", "duplicate key 'ssh_user'"),
        ("ups:\n  user: a\n  user: b\n", "duplicate key 'user'"),
        ("a: " + "[" * 200 + "]" * 200 + "\n", "nested deeper"),
        ("a: " + "{b: " * 200 + "1" + "}" * 200 + "\n", "nested deeper"),
        ("key: [unclosed\n", "not valid YAML"),
        ("\t- tab\n", "not valid YAML"),
        ("!!python/object/apply:os.system ['true']\n", "not valid YAML"),
    ],
)
def test_strict_yaml(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        parse_yaml(text)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        # The depth counts nodes as the composer does: the root mapping is 1, a scalar inside
        # 31 open collections is 32 (allowed), inside 32 it is 33 (refused).
        ("a: " + "[" * 30 + "1" + "]" * 30 + "\n", None),
        ("a: " + "[" * 31 + "1" + "]" * 31 + "\n", "nested deeper than 32"),
        ("a: " + "[" * 31 + "]" * 31 + "\n", None),  # an empty list is the deepest node: 32
        ("a: " + "[" * 32 + "]" * 32 + "\n", "nested deeper than 32"),
        # an alias refers to a node already composed: only where it appears counts
        ("x: &x [[[1]]]\ny: " + "[" * 30 + "*x" + "]" * 30 + "\n", None),
        # a lone surrogate (not from a file: strict UTF-8 decoding refuses it) is an error
        ('a: "\ud800"\n', "not valid YAML"),
        ('a: "\\ud800"\n', "not valid Unicode"),  # the YAML escape of one
        ('"\\udfff": 1\n', "not valid Unicode"),  # in a key too
        # int's own limit (4300 digits) is an error, not a crash
        ("a: " + "9" * 5000 + "\n", "not valid YAML: Exceeds the limit"),
    ],
)
def test_yaml_depth_boundary_and_odd_text(text: str, fragment: str | None) -> None:
    if fragment is None:
        assert isinstance(parse_yaml(text), dict)
        return
    with pytest.raises(ConfigError, match=fragment):
        parse_yaml(text)


def test_yaml_bomb_is_refused_quickly() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 10):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 10) + "]")
    with pytest.raises(ConfigError, match="YAML bomb"):
        parse_yaml("\n".join(lines) + "\n")


def one_line_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = run(argv)
    captured = capsys.readouterr()
    assert code == 2, captured
    assert "Traceback" not in captured.err + captured.out
    lines = captured.err.strip().splitlines()
    assert lines and lines[0].startswith("error: ")
    return captured.err


def test_odd_files_give_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("ssh_user: r\xe9my\n".encode("latin-1"))
    assert "not UTF-8" in one_line_exit_2(["config", "check", "-c", str(latin1)], capsys)

    nul = tmp_path / "nul.yaml"
    nul.write_bytes(b"ssh_user: root\x00\n")
    assert "NUL byte" in one_line_exit_2(["config", "check", "-c", str(nul)], capsys)

    # a NUL byte in the path itself is a usage error of --config (click's own clear message)
    assert run(["config", "check", "-c", "/etc/a\x00b"]) == 2
    err = capsys.readouterr().err
    assert "null byte" in err and "Traceback" not in err
    with pytest.raises(ConfigError, match="NUL byte"):
        load_config(Path("/etc/a\x00b"))

    assert "directory" in one_line_exit_2(["config", "check", "-c", str(tmp_path)], capsys)

    assert "regular file" in one_line_exit_2(["config", "check", "-c", "/dev/zero"], capsys)

    huge = tmp_path / "huge.yaml"
    with huge.open("wb") as handle:
        handle.truncate(MAX_CONFIG_BYTES + 1)
    assert "larger than" in one_line_exit_2(["config", "check", "-c", str(huge)], capsys)

    for command in (["status"], ["inventory"], ["shutdown"]):
        one_line_exit_2([*command, "-c", str(latin1)], capsys)


@pytest.mark.timeout(20)
def test_fifo_does_not_hang(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)  # nobody ever writes to it: a blocking open would wait forever
    assert "regular file" in one_line_exit_2(["config", "check", "-c", str(fifo)], capsys)


def test_resolve_checks_listen_addresses() -> None:
    config = parse_config(with_value("metrics.listen", "127.0.0.1:0"))
    assert resolve_problems(config) == []  # 127.0.0.1 is always local
    # 192.0.2.1 (TEST-NET-1) is never an address of this machine: bind fails, nothing is sent
    remote = parse_config(with_value("metrics.listen", "192.0.2.1:9560"))
    assert [p.split(":")[0] for p in resolve_problems(remote)] == ["metrics.listen"]

    def unresolvable(host: str, port: int) -> None:
        # only the named host fails: metrics.listen's default (127.0.0.1) still resolves
        if host == "no-such-host.invalid":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    named = parse_config(with_value("coordination.listen", "no-such-host.invalid:9561"))
    problems = resolve_problems(named, unresolvable)
    assert problems == [
        "coordination.listen: 'no-such-host.invalid' cannot be bound here "
        "(Name or service not known)"
    ]


def test_config_check_resolve_flag(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    # the files it names are real: a missing one is an error of its own
    data = with_files(with_value("metrics.listen", "192.0.2.1:9560"), tmp_path)
    path.write_text(yaml.safe_dump(data))
    plain = runner.invoke(app, ["config", "check", "-c", str(path)])
    assert plain.exit_code == 0, plain.output
    resolved = runner.invoke(app, ["config", "check", "-c", str(path), "--resolve", "--json"])
    assert resolved.exit_code == 2
    assert json.loads(resolved.output)["problems"][0].startswith("metrics.listen:")


def _strict_loads(text: str) -> object:
    def refuse(constant: str) -> object:
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


def test_json_output_is_strict(tmp_path: Path) -> None:
    assert strict_json({"a": float("inf"), "b": [float("nan"), 1.5], "c": (2,)}) == {
        "a": None,
        "b": [None, 1.5],
        "c": [2],
    }
    # the example's password file does not exist here (an error of its own): anonymous reads
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(with_files(with_value("ups.password_file", None), tmp_path)))
    result = runner.invoke(app, ["config", "check", "-c", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert _strict_loads(result.output)


# ---------------------------------------------------------------------------------------------
# The fuzzer: mutate the example config at random paths with hostile values.


def _paths(data: object, prefix: str = "") -> list[str]:
    found = []
    if isinstance(data, dict):
        for key, value in data.items():
            path = f"{prefix}{key}"
            found.append(path)
            found += _paths(value, path + ".")
    return found


PATHS = _paths(BASE)
HOSTILE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(
        ["", " ", "\x00", "10.0.0.1:99999", "[fd00::1:22", "a@b@c", ":0", "-oX=y", "on", ".inf"]
    ),
    st.lists(st.text(max_size=8), max_size=3),
    st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
)


def works_downstream(config: HecateConfig) -> None:
    """What the shutdown needs from an accepted config: none of it may raise."""
    for node in config.nodes.all:
        target = node_target(config, node)
        assert 0 < target.port < 65536
    build_inventory(config)
    if config.ssh_jump_host:
        jump_preflight_argv(config)
    ups = config.ups.target
    UpsTarget.at(ups.ups, ups.host, ups.port)
    for address in [*config.coordination.peer_hosts, config.coordination.coordinator_address]:
        if address is not None:
            CoordinatorClient(address, b"x" * 32)
    dumped = config.model_dump(mode="json")
    _strict_loads(json.dumps(dumped, allow_nan=False))
    assert parse_config(dumped) == config  # what was accepted is accepted again, unchanged


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(PATHS), HOSTILE), min_size=1, max_size=4))
def test_fuzzed_configs_either_work_or_are_refused(mutations: list[tuple[str, object]]) -> None:
    data = copy.deepcopy(BASE)
    for path, value in mutations:
        node = data
        *parents, last = path.split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[last] = value
    try:
        config = parse_config(data)
    except ConfigError as exc:
        assert exc.problems or exc.message
        return
    works_downstream(config)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzzed_bytes_never_crash_the_loader(tmp_path_factory: Any, raw: bytes) -> None:
    path = Path(tmp_path_factory.mktemp("fuzz")) / "c.yaml"
    path.write_bytes(raw)
    try:
        config = load_config(path)
    except ConfigError:
        return
    works_downstream(config)
