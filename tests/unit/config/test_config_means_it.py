"""Issue #23, item 5: `hecate config check` means it.

A corpus of broken configs, each on top of one `config check` accepts (real files in tmp_path):
the change, the key the error must name, words it must say, and why. Each was "valid" on main
(c6483fd), or named the section instead of the key. Only the CLI is used, so the table runs
against any version of the code.
"""

from __future__ import annotations

import json
import os
import pwd
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from hecate.cli.main import app
from tests.config_files import usable

runner = CliRunner()
Change = Callable[[dict[str, Any], Path], None]


def setting(path: str, value: object) -> Change:
    def change(data: dict[str, Any], _tmp: Path) -> None:
        node = data
        *parents, last = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value

    return change


def file_at(path: str, make: Callable[[Path], None]) -> Change:
    """Point `path` at tmp_path/odd, made by `make`."""

    def change(data: dict[str, Any], tmp: Path) -> None:
        odd = tmp / "odd"
        make(odd)
        setting(path, str(odd))(data, tmp)

    return change


def no_ups_target(data: dict[str, Any], _tmp: Path) -> None:
    del data["ups"]["target"]


def empty(path: Path) -> None:
    path.write_text("")
    path.chmod(0o600)


def blank_first_line(path: Path) -> None:
    path.write_text("\nsecond line\n")
    path.chmod(0o600)


def nothing(_path: Path) -> None:
    pass


# (name, change, key the error names, words it says, why it must be refused)
# fmt: off
CORPUS: list[tuple[str, Change, str, list[str], str]] = [
    ("ssh key missing", file_at("ssh_identity_file", nothing), "ssh_identity_file",
     ["does not exist", "ssh-keygen"], "every SSH connection of a shutdown fails"),
    ("kubeconfig missing", file_at("kubeconfig", nothing), "kubeconfig",
     ["does not exist"], "every API stage fails"),
    ("kubeconfig a directory", file_at("kubeconfig", Path.mkdir), "kubeconfig",
     ["is a directory"], "cannot be read as a kubeconfig"),
    ("ssh_config missing", file_at("ssh_config_file", nothing), "ssh_config_file",
     ["does not exist"], "ssh -F fails"),
    ("empty NUT password", file_at("ups.password_file", empty), "ups.password_file",
     ["is empty"], "the daemon reads it at start and exits"),
    ("NUT password first line empty", file_at("ups.password_file", blank_first_line),
     "ups.password_file", ["is empty"], "the password is the first line"),
    ("NUT password a directory", file_at("ups.password_file", Path.mkdir), "ups.password_file",
     ["is a directory"], "not a file; chmod 600 on it is no advice"),
    ("token empty", file_at("coordination.token_file", empty), "coordination.token_file",
     ["is empty"], "an empty shared secret signs nothing"),
    ("token missing", file_at("coordination.token_file", nothing), "coordination.token_file",
     ["does not exist"], "peer requests cannot be signed"),
    ("manifest missing", setting("startup.gitea_bootstrap_manifests", ["/nonexistent/a.yaml"]),
     "startup.gitea_bootstrap_manifests.0", ["does not exist"], "the fallback would fail"),
    ("no ups.target", no_ups_target, "ups.target",
     ["target: UPSNAME@HOST"], "it silently watched the example's pyrphoros@localhost"),
    ("newline in ups.user", setting("ups.user", "monuser\nFSD"), "ups.user",
     ["control character"], "one NUT command a line: a newline smuggles in FSD"),
    ("space in ups.user", setting("ups.user", "mon user"), "ups.user",
     ["NUT user name"], "one protocol token"),
    ("newline in ssh_user", setting("ssh_user", "hecate\nx"), "ssh_user",
     ["control character"], "reaches the SSH command line and the inventory"),
    ("option as ssh_user", setting("ssh_user", "-oProxyCommand=x"), "ssh_user",
     ["Linux user name"], "an option, not a user"),
    ("newline in a node's user", setting("ssh_node_users", {"titan-1": "a\nb"}),
     "ssh_node_users.titan-1", ["control character"], "the inventory line"),
    ("newline in ssh_jump_user", setting("ssh_jump_user", "j\nx"), "ssh_jump_user",
     ["control character"], "the ProxyJump argument"),
    ("newline in ups_kill_command", setting("shutdown.ups_kill_command", "shutdown.return\nFSD"),
     "shutdown.ups_kill_command", ["control character"], "INSTCMD is one protocol line"),
    ("space in ups_kill_command", setting("shutdown.ups_kill_command", "load off"),
     "shutdown.ups_kill_command", ["NUT command name"], "INSTCMD takes one name"),
    ("newline in flux_namespace", setting("startup.flux_namespace", "flux-system\nx"),
     "startup.flux_namespace", ["control character"], "an API path"),
    ("upper case flux_namespace", setting("startup.flux_namespace", "Flux"),
     "startup.flux_namespace", ["Kubernetes namespace"], "RFC 1123 label"),
    ("newline in flux_git_repository", setting("startup.flux_git_repository", "a\nb"),
     "startup.flux_git_repository", ["control character"], "an API path"),
    ("slash in flux_git_repository", setting("startup.flux_git_repository", "a/b"),
     "startup.flux_git_repository", ["Kubernetes name"], "a path segment of its own"),
    ("newline in gitea_namespace", setting("startup.gitea_namespace", "gitea\n"),
     "startup.gitea_namespace", ["control character"], "an API path"),
    ("bad gitea workload name", setting("startup.gitea_workload", "deployment/Gitea_1"),
     "startup.gitea_workload", ["Kubernetes name"], "an API path"),
    ("bad foundation name",
     setting("startup.foundation_workloads", [{"namespace": "kube-system", "name": "core dns"}]),
     "startup.foundation_workloads.0.name", ["Kubernetes name"], "an API path"),
    ("bad branch", setting("startup.force_flux_branch", "main..x"), "startup.force_flux_branch",
     ["git branch"], "a ref git refuses"),
    ("space in a probe URL", setting("startup.probes", [{"target": "https://a b/"}]),
     "startup.probes.0.target", ["whitespace"], "an HTTP request line"),
    ("empty ups.user", setting("ups.user", ""), "ups.user",
     ["must not be empty"], "main named the section (`ups`), not the key"),
    ("empty ups_kill_command", setting("shutdown.ups_kill_command", " "),
     "shutdown.ups_kill_command", ["must not be empty"], "main named `shutdown`"),
    ("empty flux_namespace", setting("startup.flux_namespace", ""), "startup.flux_namespace",
     ["must not be empty"], "main named `startup`"),
    ("empty token_file", setting("coordination.token_file", ""), "coordination.token_file",
     ["must not be empty"], "main named `coordination`"),
    ("zero max_on_battery_seconds", setting("ups.max_on_battery_seconds", 0),
     "ups.max_on_battery_seconds", ["greater than 0"], "a cap of 0 s shuts down at any blip"),
    ("max_on_battery_seconds under a poll", setting("ups.max_on_battery_seconds", 2),
     "ups.max_on_battery_seconds", ["at least poll_interval_seconds (5)"],
     "the battery is only seen every 5 s: a 2 s cap cannot be kept as written"),
    ("misspelt key", setting("ups.pasword_file", "/x"), "ups.pasword_file",
     ["did you mean `password_file`?"], "a typo gets the key meant"),
    ("key at the wrong level", setting("target", "u@h"), "target",
     ["did you mean `ups.target`"], "the key belongs under ups"),
    ("misspelt key in a list item", setting("startup.probes", [{"target": "h:1", "nmae": "x"}]),
     "startup.probes.0.nmae", ["did you mean `name`?"], "lists of sections too"),
]
# fmt: on


def check(data: dict[str, Any], tmp_path: Path, *args: str) -> Any:
    path = tmp_path / "hecate.yaml"
    path.write_text(yaml.safe_dump(data))
    return runner.invoke(app, ["config", "check", "-c", str(path), *args])


def test_the_base_is_valid(tmp_path: Path) -> None:
    result = check(usable(tmp_path), tmp_path)
    assert result.exit_code == 0, result.output
    assert "valid (" in result.output


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [pytest.param(c, k, w, id=name) for name, c, k, w, _why in CORPUS],
)
def test_each_broken_config_is_refused_by_its_key(
    tmp_path: Path, change: Change, key: str, words: list[str]
) -> None:
    data = usable(tmp_path)
    change(data, tmp_path)
    result = check(data, tmp_path, "--json")
    assert result.exit_code == 2, result.output
    report = json.loads(result.stdout)
    assert report["valid"] is False
    lines = [p for p in report["problems"] if p.split(": ", 1)[0] == key]
    assert lines, report["problems"]
    for word in words:
        assert any(word in line for line in lines), (word, lines)
    assert not any("chmod 600" in p for p in report["problems"] if "directory" in p)


def test_cross_field_and_field_errors_come_in_one_pass(tmp_path: Path) -> None:
    data = usable(tmp_path)
    data["ups"]["timeout_seconds"] = 0  # a field error in the section ...
    data["ups"]["critical_window_seconds"] = 5  # ... and a cross-field one beside it
    data["shutdown"]["runs_kept"] = 0  # a field error elsewhere ...
    data["metrics"]["listen"] = "127.0.0.1:9561"  # ... and coordination.listen's port
    data["ssh_node_hosts"]["ghost"] = "10.0.0.9"  # a node that is not one
    result = check(data, tmp_path, "--json")
    assert result.exit_code == 2
    keys = {p.split(": ", 1)[0] for p in json.loads(result.stdout)["problems"]}
    assert {
        "ups.timeout_seconds",
        "ups.critical_window_seconds",
        "shutdown.runs_kept",
        "metrics.listen",
    } <= keys
    assert any(k.startswith("ssh_node_hosts") for k in keys)


def test_a_coordinator_without_servers_comes_with_the_field_errors(tmp_path: Path) -> None:
    data = usable(tmp_path)
    data["nodes"] = {"servers": []}
    data["ssh_node_hosts"] = {}
    data["ups"]["debounce_polls"] = 0
    result = check(data, tmp_path, "--json")
    keys = {p.split(": ", 1)[0] for p in json.loads(result.stdout)["problems"]}
    assert {"nodes.servers", "ups.debounce_polls"} <= keys


@pytest.mark.skipif(os.geteuid() != 0, reason="judging another user's access needs root")
def test_as_root_the_files_are_checked_as_the_daemons_user() -> None:
    # root reads anything: the daemon (the state dir's owner) must read them too
    with tempfile.TemporaryDirectory() as where:  # /tmp/X: reachable by others, unlike tmp_path
        Path(where).chmod(0o755)
        _as_the_daemons_user(Path(where))


def _as_the_daemons_user(tmp_path: Path) -> None:
    nobody = pwd.getpwnam("nobody")
    data = usable(tmp_path)
    os.chown(data["state_dir"], nobody.pw_uid, nobody.pw_gid)
    result = check(data, tmp_path, "--json")
    assert result.exit_code == 2
    problems = json.loads(result.stdout)["problems"]
    keys = {p.split(": ", 1)[0] for p in problems}
    assert {"kubeconfig", "ssh_identity_file", "ups.password_file"} <= keys
    assert all("nobody (hecate.service) cannot" in p for p in problems)
    for path in (data["kubeconfig"], data["ssh_identity_file"], data["ups"]["password_file"]):
        os.chown(path, nobody.pw_uid, -1)  # the daemon's own, 0600
    result = check(data, tmp_path)
    assert result.exit_code == 0, result.output


def test_the_units_gate_refuses_only_what_stops_the_daemon(tmp_path: Path) -> None:
    data = usable(tmp_path)
    data["kubeconfig"] = str(tmp_path / "absent")
    result = check(data, tmp_path, "--daemon-start")
    assert result.exit_code == 0, result.output
    assert "warning: kubeconfig:" in result.output  # said, in the journal
    data["ups"]["password_file"] = str(tmp_path / "absent-too")
    assert check(data, tmp_path, "--daemon-start").exit_code == 2
    assert check(data, tmp_path).exit_code == 2


def test_the_daemons_unit_gates_on_what_stops_the_daemon_only() -> None:
    from tests.unit.adapters.systemd.test_unit_security import render  # noqa: PLC0415 - jinja2 only here

    unit = render("hecate.service")
    gates = [line for line in unit.splitlines() if line.startswith("Exec") and " check " in line]
    assert len(gates) == 2  # ExecStartPre and ExecReload
    assert all("config check --daemon-start" in line for line in gates), gates
