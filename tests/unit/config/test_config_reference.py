"""The reference page and the example config are generated from the models' descriptions."""

from __future__ import annotations

import ast
import shutil
import typing
from pathlib import Path

import yaml
from pydantic import BaseModel

from hecate.config.model import HecateConfig, load_config, parse_config
from hecate.config.reference import (
    TYPE_WORDS,
    _annotation_text,
    render_example,
    render_reference,
    rendered_files,
)
from hecate.config.reference_examples import COMMENTED_ENTRIES, COMMENTED_ITEMS

ROOT = Path(__file__).resolve().parents[3]


def stale(root: Path) -> list[str]:
    """The generated files whose checked-in copy under `root` differs from the models."""
    return [
        f"{relative} is stale: run scripts/gen-config-docs"
        for relative, text in rendered_files().items()
        if not (root / relative).is_file() or (root / relative).read_text(encoding="utf-8") != text
    ]


def test_the_checked_in_files_are_generated_from_the_models() -> None:
    problems = stale(ROOT)
    assert not problems, "; ".join(problems)


def test_a_hand_edit_of_either_file_is_caught(tmp_path: Path) -> None:
    for relative in rendered_files():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / relative, tmp_path / relative)
    assert stale(tmp_path) == []
    example = tmp_path / "configs/hecate.example.yaml"
    example.write_text(example.read_text().replace("# Default SSH port.", "# The SSH port."))
    (tmp_path / "docs/operating/config-reference.md").unlink()
    assert stale(tmp_path) == [
        "docs/operating/config-reference.md is stale: run scripts/gen-config-docs",
        "configs/hecate.example.yaml is stale: run scripts/gen-config-docs",
    ]


def _models(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models(arg)]


def _keys(model: type[BaseModel], prefix: str = "") -> list[tuple[type[BaseModel], str, str]]:
    """(model, field name, dotted key) for every key, list items as `startup.probes[].name`."""
    found = []
    for name, field in model.model_fields.items():
        found.append((model, name, prefix + name))
        origin = typing.get_origin(field.annotation)
        item = "[]" if origin is list else ".NAME" if origin is dict else ""
        for inner in _models(field.annotation):
            found += _keys(inner, f"{prefix}{name}{item}.")
    return found


def test_the_walk_reaches_the_nested_lists_of_sections() -> None:
    keys = {key for _, _, key in _keys(HecateConfig)}
    assert {
        "ups.target",
        "startup.probes[].target",
        "startup.foundation_workloads[].name",
        "power.nodes.NAME.mac",
    } <= keys


def test_the_reference_names_every_key_of_the_model() -> None:
    reference = render_reference()
    missing = [key for _, _, key in _keys(HecateConfig) if f"`{key}`" not in reference]
    assert not missing


def test_every_key_has_a_description() -> None:
    bare = [
        key
        for model, name, key in _keys(HecateConfig)
        if not (model.model_fields[name].description or "").strip()
    ]
    assert not bare


def test_every_type_has_words() -> None:
    # A new annotated type (a new alias in hecate.config.strict) needs its words in TYPE_WORDS,
    # or the reference would call it a section.
    known = {*TYPE_WORDS, "Literal", "list", "dict", "None"}
    models = {model.__name__ for model, _, _ in _keys(HecateConfig)}
    for model, name, key in _keys(HecateConfig):
        tree = ast.parse(_annotation_text(model, name), mode="eval")
        names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
        assert names <= known | models, (key, names - known - models)


# Today's example's values where they are not the defaults (the rest are the defaults).
EXAMPLE_VALUES = {
    "kubeconfig": "/etc/hecate/kubeconfig.yaml",
    "nodes": {"servers": ["titan-0"], "agents": ["titan-1", "titan-2"]},
    "ssh_user": "hecate",
    "ssh_identity_file": "/etc/hecate/id_ed25519",
    "ssh_node_hosts": {
        "titan-0": "192.168.10.10",
        "titan-1": "192.168.10.11",
        "titan-2": "192.168.10.12",
    },
    "ups": {"target": "pyrphoros@localhost", "password_file": "/etc/hecate/nut-password"},
    "startup": {
        "foundation_workloads": [
            {"kind": "deployment", "namespace": "kube-system", "name": "coredns"},
        ]
    },
}


def test_the_generated_example_loads_as_the_example_always_did(tmp_path: Path) -> None:
    path = tmp_path / "hecate.yaml"
    path.write_text(render_example())
    assert load_config(path) == parse_config(EXAMPLE_VALUES)


def test_the_example_sets_every_key_explicitly() -> None:
    data = yaml.safe_load(render_example())
    for _, _, key in _keys(HecateConfig):
        if "[]" in key or ".NAME." in key:
            continue
        node = data
        for part in key.split("."):
            assert isinstance(node, dict) and part in node, key
            node = node[part]


def test_the_commented_out_items_are_valid_entries() -> None:
    # Uncommenting them (and dropping the `[]`) gives a valid config holding them.
    empty = {f"  {path.split('.')[1]}: []" for path in COMMENTED_ITEMS}
    uncommented = "\n".join(
        line.replace("#  - ", "    - ", 1)
        if line.startswith("  #  - ")
        else line.removesuffix(" []")
        if line in empty
        else line
        for line in render_example().splitlines()
    )
    data = yaml.safe_load(uncommented)
    for path, items in COMMENTED_ITEMS.items():
        section, key = path.split(".")
        assert data[section][key] == items
    parse_config(data)


def test_the_commented_out_entries_are_valid_entries() -> None:
    # Every commented map (power.nodes, power.feeds, power.node_feeds), uncommented under its
    # key, reads back as its entries; together they parse as a config's `power` would.
    example = render_example().splitlines()
    power: dict[str, object] = {}
    for path, entries in COMMENTED_ENTRIES.items():
        section, key = path.split(".")
        start = example.index(f"  {key}: {{}}") + 1
        lines = [f"{section}:", f"  {key}:"]
        for line in example[start:]:
            if not line.startswith("  #   "):
                break
            lines.append("    " + line.removeprefix("  #   "))
        data = yaml.safe_load("\n".join(lines))
        assert data[section][key] == entries
        power[key] = data[section][key]
    names = sorted(COMMENTED_ENTRIES["power.nodes"])
    nodes = {"servers": names[:1], "agents": names[1:]}
    parse_config({"ups": {"target": "u@localhost"}, "nodes": nodes, "power": power})
