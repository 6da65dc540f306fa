"""The read commands' pydantic-free view of a config (hecate.config.view): every field it holds is
the validated config's, under the same name and of the same type, and what the read commands
compute from it (policy parameters, budget, feeds, shedding, the named and secret files, the
BMC warnings) is what they compute from the config itself; over generated configs."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hecate.cli.config_files import named_files
from hecate.cli.feed_text import feeds_status
from hecate.cli.status_files import shed_status
from hecate.config.checks import resolve_problems
from hecate.config.model import HecateConfig, parse_config
from hecate.config.view import ReadView, read_view
from hecate.core.budget import budget_from_config
from hecate.core.feeds import feed_loss, feed_of_instance, nodes_by_feed, unsafe_reasons
from hecate.core.intent import Intent, IntentState
from hecate.core.policy.values import params_from_config
from hecate.core.run_history import Outcome, RunRecord
from hecate.core.shed import shed_configured
from hecate.errors import ConfigError

if TYPE_CHECKING:
    from hecate.config.view import ConfigLike

# Fields the view holds that are facts HecateConfig's methods derive (compared below through
# the methods), not fields of the same name.
DERIVED = {"methods", "bmc_password_files", "exposure", "secret_file_keys", "as_json"}

NAMES = ["s1", "s2", "s3", "a1", "a2", "a3", "a4"]
optional_path = st.none() | st.sampled_from([Path("/etc/hecate/x"), Path("/srv/y z")])


@st.composite
def configs(draw: st.DrawFn) -> HecateConfig:
    servers = draw(st.lists(st.sampled_from(NAMES[:3]), min_size=1, max_size=3, unique=True))
    agents = draw(st.lists(st.sampled_from(NAMES[3:]), max_size=4, unique=True))
    every = servers + agents
    feeds = draw(st.lists(st.sampled_from(["A", "B", "C"]), max_size=3, unique=True))
    power_nodes: dict[str, Any] = {}
    for index, node in enumerate(draw(st.lists(st.sampled_from(every), unique=True))):
        method = draw(st.sampled_from(["none", "wol", "ipmi", "redfish"]))
        entry: dict[str, Any] = {"method": method}
        if method == "wol":
            entry |= {"mac": f"AA-BB-CC-DD-EE-{index:02X}", "broadcast": "10.0.0.255"}
        elif method == "ipmi":
            entry |= {"address": f"10.0.0.{index + 10}", "user": "admin"}
            entry["password_file"] = f"/etc/hecate/bmc-{node}"
        elif method == "redfish":
            scheme = draw(st.sampled_from(["https", "http"]))
            entry |= {"url": f"{scheme}://10.0.0.{index + 10}/", "user": "admin"}
            entry |= {"password_file": f"/etc/hecate/bmc-{node}", "verify_tls": draw(st.booleans())}
        power_nodes[node] = entry
    power: dict[str, Any] = {
        "nodes": power_nodes,
        "feeds": {name: {"instance": f"ups-{name.lower()}"} for name in feeds},
        "partial_policy": draw(st.sampled_from(["never", "quorum_safe", "always"])),
        "min_agents": draw(st.integers(0, 4)),
        "shed": {
            "label_selector": draw(st.none() | st.just("hecate.dev/shed=true")),
            "agents": draw(st.lists(st.sampled_from(agents), unique=True)) if agents else [],
        },
    }
    if feeds:
        power["node_feeds"] = {
            n: draw(st.lists(st.sampled_from(feeds), min_size=1, unique=True)) for n in every
        }
    floats = st.floats(1, 500, allow_nan=False)
    data: dict[str, Any] = {
        "kubeconfig": "/etc/hecate/kubeconfig",
        "state_dir": draw(st.sampled_from(["/var/lib/hecate", "/tmp/state dir"])),
        "default_budget_seconds": draw(floats),
        "runtime_safety_factor": draw(st.floats(1, 3)),
        "ssh_config_file": draw(optional_path),
        "ssh_identity_file": draw(optional_path),
        "nodes": {"servers": servers, "agents": agents},
        "ups": {
            "target": draw(st.sampled_from(["ups@localhost", "apc@10.0.0.9:3494", "x@[::1]"])),
            "user": draw(st.sampled_from(["monuser", "hecate"])),
            "password_file": draw(optional_path),
            "poll_interval_seconds": draw(st.floats(0.5, 60)),
            "debounce_polls": draw(st.integers(1, 10)),
            "timeout_seconds": draw(st.floats(0.5, 10)),
            "auth_check": draw(st.sampled_from(["primary", "login", "none"])),
            "honor_fsd": draw(st.booleans()),
            "critical_window_seconds": draw(st.none() | floats),
            "lb_confirm_polls": draw(st.integers(1, 5)),
            "max_on_battery_seconds": draw(st.none() | floats),
            "max_poll_gap_seconds": draw(st.none() | floats),
            "runtime_correction": draw(st.sampled_from(["off", "learned"])),
        },
        "shutdown": {
            "history_window": draw(st.integers(1, 50)),
            "min_samples": draw(st.integers(1, 10)),
            "budget_percentile": draw(st.floats(50, 100)),
            "ups_mode": draw(st.sampled_from(["poweroff", "cluster-only"])),
        },
        "startup": {
            "power_stable_seconds": draw(floats),
            "min_battery_charge": draw(st.floats(0, 100)),
            "gitea_bootstrap_manifests": draw(st.lists(st.sampled_from(["/m/a.yaml", "/m/b"]))),
        },
        "coordination": {
            "token_file": draw(optional_path),
            "peer_name": draw(st.none() | st.sampled_from(["ups-a", "here"])),
        },
        "notify": {"urls_file": draw(optional_path)},
        "power": power,
    }
    try:
        return parse_config(data, "generated")
    except ConfigError:  # a combination the config refuses: not a config to compare
        assume(False)
        raise


def _same_fields(view: Any, model: Any, where: str) -> None:
    """Every field of `view` (recursively) equals the model's attribute of that name."""
    for name in view._fields:
        if name in DERIVED:
            continue
        mine, theirs = getattr(view, name), getattr(model, name)
        if isinstance(mine, tuple) and hasattr(mine, "_fields"):
            _same_fields(mine, theirs, f"{where}.{name}")
        elif isinstance(mine, dict) and mine and hasattr(next(iter(mine.values())), "_fields"):
            assert list(mine) == list(theirs), f"{where}.{name}"
            for key, value in mine.items():
                _same_fields(value, theirs[key], f"{where}.{name}.{key}")
        elif isinstance(mine, tuple):
            assert list(mine) == list(theirs), f"{where}.{name}"
        elif isinstance(mine, dict):
            assert {k: list(v) for k, v in mine.items()} == dict(theirs), f"{where}.{name}"
        else:
            assert mine == theirs, f"{where}.{name}"
            assert type(mine) is type(theirs), f"{where}.{name}"


def _runs(count: int) -> list[RunRecord]:
    return [
        RunRecord(f"r{i}", "shutdown", 1000.0 * i, 1000.0 * i + 60 + i, Outcome.SUCCESS)
        for i in range(count)
    ]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(config=configs(), runs=st.integers(0, 12), stop=st.lists(st.sampled_from(NAMES)))
def test_the_view_is_the_config(config: HecateConfig, runs: int, stop: list[str]) -> None:
    view = read_view(config)
    _same_fields(view, config, "config")
    assert pickle.loads(pickle.dumps(view)) == view  # noqa: S301 - what is kept is what was made
    # the facts HecateConfig's methods derive
    assert view.secret_files() == config.secret_files()
    assert view.power.password_files() == config.power.password_files()
    assert view.power.exposure_warnings() == config.power.exposure_warnings()
    for node in [*NAMES, "unknown"]:
        assert view.power.method_of(node) == config.power.method_of(node)
    assert view.nodes.all == config.nodes.all
    assert view.as_json == config.model_dump(mode="json")
    # what the read commands compute from either
    history = _runs(runs)
    budget = budget_from_config(config, history)
    assert budget_from_config(view, history) == budget
    params = params_from_config(config, budget.threshold_s)
    assert params_from_config(view, budget.threshold_s) == params
    assert nodes_by_feed(view) == nodes_by_feed(config)
    assert unsafe_reasons(view, stop) == unsafe_reasons(config, stop)
    for feed in [*config.power.feeds, "Z"]:
        assert feed_loss(view, [feed]) == feed_loss(config, [feed])
        assert feed_of_instance(view, f"ups-{feed.lower()}") == feed_of_instance(
            config, f"ups-{feed.lower()}"
        )
    assert shed_configured(view.power.shed) == shed_configured(config.power.shed)
    intent = Intent(IntentState.SHUTDOWN_COMPLETE, 5.0, "r", "h", nodes=tuple(stop[:2]))
    assert feeds_status(view, intent) == feeds_status(config, intent)
    assert shed_status(view, 10.0) == shed_status(config, 10.0)
    assert named_files(view) == named_files(config)
    assert _looked_up(view) == _looked_up(config)


def _looked_up(config: ConfigLike) -> list[tuple[str, int]]:
    """The hosts `config check --resolve` would check."""
    seen: list[tuple[str, int]] = []

    def check(host: str, port: int) -> None:
        seen.append((host, port))

    resolve_problems(config, check)
    return seen


def test_a_view_is_pydantic_free_and_its_own_type() -> None:
    """A kept view is recognised by its exact type (a pickled config is no view)."""
    assert all(not c.__module__.startswith("pydantic") for c in ReadView.__mro__)
