"""Which playbook file and extra vars a playbook name runs (hecate/adapters/ansible/assets.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hecate.adapters.ansible.assets import (
    Playbook,
    PlaybookError,
    ResolvedPlaybook,
    playbook_extravars,
    resolve_playbook,
)

REPO = Path(__file__).resolve().parents[4]

# (name, file, implied extra vars): the four stages are one playbook told group and state
K3S = [
    ("stop_agents", {"k3s_service_group": "agent", "k3s_service_state": "stopped"}),
    ("stop_servers", {"k3s_service_group": "server", "k3s_service_state": "stopped"}),
    ("start_servers", {"k3s_service_group": "server", "k3s_service_state": "started"}),
    ("start_agents", {"k3s_service_group": "agent", "k3s_service_state": "started"}),
]


@pytest.mark.parametrize(("name", "implied"), K3S)
def test_k3s_stage_names_resolve_to_the_one_playbook(name: str, implied: dict[str, str]) -> None:
    for spelled in (name, f"{name}.yml", Playbook(name)):
        resolved = resolve_playbook(spelled)
        assert resolved.file == "k3s_service.yml"
        assert dict(resolved.extravars) == implied


def test_other_names_are_their_own_file_with_nothing_implied() -> None:
    assert resolve_playbook("ping") == ResolvedPlaybook("ping.yml")
    assert resolve_playbook("poweroff.yml") == ResolvedPlaybook("poweroff.yml")
    # not a Playbook: still a file name (the port refuses it when the file is missing)
    assert resolve_playbook("custom") == ResolvedPlaybook("custom.yml")
    assert resolve_playbook("k3s_service") == ResolvedPlaybook("k3s_service.yml")


def test_implied_vars_cannot_be_contradicted() -> None:
    given = {"k3s_service_timeout_s": 30, "k3s_service_state": "stopped"}
    assert playbook_extravars("stop_agents", given) == {
        "k3s_service_timeout_s": 30,
        "k3s_service_state": "stopped",
        "k3s_service_group": "agent",
    }
    # stop_agents can never run as a start, or on the servers
    with pytest.raises(PlaybookError, match="k3s_service_state"):
        playbook_extravars("stop_agents", {"k3s_service_state": "started"})
    with pytest.raises(PlaybookError, match="k3s_service_group"):
        playbook_extravars("start_agents", {"k3s_service_group": "server"})
    # an absolute path and a plain name imply nothing
    assert playbook_extravars("/x/stop_agents.yml", {"a": 1}) == {"a": 1}
    assert playbook_extravars("ping", {}) == {}


def test_implied_values_are_ones_the_role_accepts() -> None:
    spec = yaml.safe_load((REPO / "roles/k3s_service/meta/argument_specs.yml").read_text())
    options = spec["argument_specs"]["main"]["options"]
    for name, implied in K3S:
        for key, value in implied.items():
            assert value in options[key]["choices"], (name, key)


def test_every_resolved_file_is_shipped() -> None:
    for name in Playbook:
        assert (REPO / "playbooks" / resolve_playbook(name).file).is_file(), name
