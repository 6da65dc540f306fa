"""Config model: defaults, unknown keys, field paths in errors, secret file warnings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from hecate.config.checks import secret_file_warnings
from hecate.config.model import HecateConfig, load_config, parse_config
from hecate.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[3] / "configs" / "hecate.example.yaml"


def test_example_config_is_valid_and_sets_documented_defaults() -> None:
    config = load_config(EXAMPLE)
    assert config.runtime_safety_factor == pytest.approx(1.10)
    assert config.default_budget_seconds == 300
    assert config.ups.debounce_polls == 3
    assert config.metrics.listen == "127.0.0.1:9560"  # this host only unless named
    assert config.nodes.servers == ["titan-0"]


def test_defaults_match_the_brief() -> None:
    config = parse_config({"ups": {"target": "u@h"}})
    assert config.state_dir == Path("/var/lib/hecate")
    assert config.ups.poll_interval_seconds == 5
    assert config.ups.comm_loss_dead_seconds == 30
    assert config.coordination.role == "coordinator"
    assert config.coordination.allow_startup_on_battery is False


def _field_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    paths = []
    for name, field in model.model_fields.items():
        paths.append(prefix + name)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            paths += _field_paths(annotation, f"{prefix}{name}.")
    return paths


def test_example_sets_every_key_and_comments_each_one() -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    lines = EXAMPLE.read_text().splitlines()
    for path in _field_paths(HecateConfig):
        node = data
        for part in path.split("."):
            assert part in node, f"example lacks {path}"
            node = node[part]
    # Each key line is preceded by a comment, or shares the comment of the key just above it.
    keys = [i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")]
    for index in keys:
        line = lines[index]
        if line.startswith("    "):  # entries inside a map such as ssh_node_hosts
            continue
        above = lines[index - 1].strip()
        assert above.startswith("#") or (index - 1) in keys, f"uncommented: {line}"


@pytest.mark.parametrize(
    ("data", "expected_paths"),
    [
        ({"bogus": 1}, ["bogus"]),
        ({"ups": {"debounce_polls": 0}}, ["ups.debounce_polls"]),
        ({"ups": {"target": "no-at-sign"}}, ["ups.target"]),
        ({"ups": {"pasword_file": "/x"}}, ["ups.pasword_file"]),
        ({"runtime_safety_factor": 0.5}, ["runtime_safety_factor"]),
        ({"metrics": {"listen": "9560"}}, ["metrics.listen"]),
        ({"coordination": {"role": "boss"}}, ["coordination.role"]),
        ({"startup": {"gitea_workload": "pod/gitea"}}, ["startup.gitea_workload"]),
        (
            {"ups": {"debounce_polls": -1, "poll_interval_seconds": 0}, "ssh_port": 70000},
            ["ups.poll_interval_seconds", "ups.debounce_polls", "ssh_port"],
        ),
    ],
)
def test_every_bad_field_is_named_by_its_path(
    data: dict[str, Any], expected_paths: list[str]
) -> None:
    data = {**data, "ups": {"target": "u@h", **data.get("ups", {})}}  # ups.target is required
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    paths = [problem.split(":", 1)[0] for problem in info.value.problems]
    assert sorted(paths) == sorted(expected_paths)


def test_peer_without_coordinator_address_is_rejected() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"coordination": {"role": "peer"}})
    assert any("coordinator_address" in p for p in info.value.problems)


def test_ssh_maps_must_name_known_nodes() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"nodes": {"servers": ["a"]}, "ssh_node_users": {"b": "root"}})
    assert any("ssh_node_users" in p and "'b'" in p for p in info.value.problems)


def test_duplicate_node_names_are_rejected() -> None:
    with pytest.raises(ConfigError):
        parse_config({"nodes": {"servers": ["a"], "agents": ["a"]}})


def test_managed_nodes_default_to_all_and_narrow_in_order() -> None:
    ups = {"target": "u@h"}
    config = parse_config({"nodes": {"servers": ["s"], "agents": ["a1", "a2"]}, "ups": ups})
    assert config.managed_nodes() == ["s", "a1", "a2"]
    narrowed = parse_config(
        {
            "nodes": {"servers": ["s"], "agents": ["a1", "a2"]},
            "ssh_managed_nodes": ["a2", "s"],
            "ups": ups,
        }
    )
    assert narrowed.managed_nodes() == ["s", "a2"]


def test_missing_and_invalid_yaml_files_give_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("ups: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(listy)


def test_secret_file_permissions_are_checked(tmp_path: Path) -> None:
    secret = tmp_path / "nut-password"
    secret.write_text("s3cret\n")
    secret.chmod(0o644)
    config = parse_config({"ups": {"target": "u@h", "password_file": str(secret)}})
    warnings = secret_file_warnings(config)
    assert len(warnings) == 1
    assert "ups.password_file" in warnings[0]
    assert "chmod 600" in warnings[0]
    secret.chmod(0o600)
    assert secret_file_warnings(config) == []
    # the installer's root:hecate-daemon 0640: the unprivileged daemon reads it through its
    # group, so that is not loose (advising 0600 would lock the daemon out)
    secret.chmod(0o640)
    assert secret_file_warnings(config) == []
    for loose in (0o660, 0o650, 0o604):  # a group that may write or run it, or others
        secret.chmod(loose)
        assert len(secret_file_warnings(config)) == 1, oct(loose)
    missing = parse_config(
        {"ups": {"target": "u@h"}, "coordination": {"token_file": str(tmp_path / "none")}}
    )
    assert "does not exist" in secret_file_warnings(missing)[0]


def test_example_roundtrips_through_yaml_dump() -> None:
    config = load_config(EXAMPLE)
    again = parse_config(yaml.safe_load(yaml.safe_dump(config.model_dump(mode="json"))))
    assert again == config
