"""The configuration reference page and the example config, rendered from the config models.

Each key's description is written once, in its pydantic field (`description=`); this module turns
the models into text (pure: model classes in, text out). `scripts/gen-config-docs` writes both
files; tests/unit/config/test_config_reference.py fails when a checked-in copy is stale.
"""

from __future__ import annotations

import ast
import sys
import textwrap
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from hecate.config.model import HecateConfig
from hecate.config.reference_examples import COMMENTED_ENTRIES, COMMENTED_ITEMS, EXAMPLES
from hecate.config.yaml_dump import safe_dump

REFERENCE_PATH: Final = "docs/operating/config-reference.md"
EXAMPLE_PATH: Final = "configs/hecate.example.yaml"
WIDTH: Final = 100  # the example's comment lines (yamllint allows 120)

# Headings over a run of top-level keys that are not a section of their own.
BANNERS: Final[Mapping[str, str]] = {
    "ssh_user": "SSH (how Ansible reaches the nodes)",
    "startup.time_sync_check": "Startup gates (each a stage of the plan and of the report)",
}
EXAMPLE_HEADER: Final = """\
# Hecate example configuration. Copy to /etc/hecate/hecate.yaml and adjust.
# Every key is optional unless noted (ups.target is required); the values shown are the
# defaults or typical examples. Each key is described in docs/operating/config-reference.md.
# Unknown keys are rejected: `hecate config check --config FILE` lists every bad field.

"""

# The words for the config's types, by the name its annotation uses.
TYPE_WORDS: Final[Mapping[str, str]] = {
    "float": "number",
    "int": "integer",
    "bool": "true/false",
    "str": "text",
    "Path": "path",
    "FilePath": "path",
    "Node": "node name",
    "UserName": "user name",
    "NutUser": "NUT user name",
    "NutCommand": "NUT instant command",
    "KubeNamespace": "Kubernetes namespace",
    "KubeName": "Kubernetes name",
    "GitBranch": "git branch",
    "HostPort": "host[:port]",
    "Address": "host:port",
    "ListenAddress": "[host]:port",
    "UpsTarget": "UPSNAME@HOST[:PORT]",
    "Severity": "info, warning or critical",
    "Mac": "MAC address",
    "Ipv4": "IPv4 address",
    "RedfishUrl": "URL",
    "NodePower": "section (keys by method, below)",
    "Feed": "section (keys below)",
    "FeedName": "feed name",
    "InstanceName": "instance name",
    "LabelSelector": "label selector",
    "PartialPolicy": "one of `never`, `quorum_safe`, `always`",
}
PLURALS: Final[Mapping[str, str]] = {"host:port": "host:port addresses"}


# --------------------------------------------------------------------------- the models


def _models_in(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _is_list(field: FieldInfo) -> bool:
    return typing.get_origin(field.annotation) is list


def _is_map(field: FieldInfo) -> bool:
    return typing.get_origin(field.annotation) is dict


def variants_of(field: FieldInfo) -> list[type[BaseModel]]:
    """The models a map of tagged sections holds (one per `method` of a tagged union)."""
    models = _models_in(field.annotation) if _is_map(field) else []
    return models if len(models) > 1 else []


def entry_of(field: FieldInfo) -> type[BaseModel] | None:
    """The one model a map of plain sections holds (`power.feeds`), or None."""
    models = _models_in(field.annotation) if _is_map(field) else []
    return models[0] if len(models) == 1 else None


def section_of(field: FieldInfo) -> type[BaseModel] | None:
    """The model a field holds (a section, or the items of a list), or None for a value."""
    models = _models_in(field.annotation)
    return models[0] if models else None


def all_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every key of the model, dotted; a list of sections' item keys as `startup.probes[].name`."""
    keys = []
    for name, field in model.model_fields.items():
        keys.append(prefix + name)
        if _is_map(field):
            for variant in variants_of(field) or [m for m in [entry_of(field)] if m]:
                keys += [k for k in all_keys(variant, f"{prefix}{name}.*.") if k not in keys]
            continue
        inner = section_of(field)
        if inner is not None:
            keys += all_keys(inner, f"{prefix}{name}{'[]' if _is_list(field) else ''}.")
    return keys


def _annotation_text(model: type[BaseModel], name: str) -> str:
    for cls in model.__mro__:
        text = vars(cls).get("__annotations__", {}).get(name)
        if text is not None:
            return text if isinstance(text, str) else getattr(text, "__name__", repr(text))
    return "str"


def _words(node: ast.expr) -> str:  # noqa: PLR0911 - one return per kind of node
    if isinstance(node, ast.Name):
        return TYPE_WORDS.get(node.id, "section")
    if isinstance(node, ast.Constant):
        return "null" if node.value is None else "`" + str(node.value) + "`"
    if isinstance(node, ast.BinOp):  # X | None
        left, right = _words(node.left), _words(node.right)
        return f"{left}, or null" if right == "null" else f"{left} or {right}"
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        args = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if node.value.id == "Literal":
            return "one of " + ", ".join(_words(arg) for arg in args)
        if node.value.id == "list":
            item = _words(args[0])
            if item == "section":
                return "list of items (keys below)"
            return "list of " + PLURALS.get(item, item + "s")
        if node.value.id == "dict":
            return f"map of {_words(args[0])} to {_words(args[1])}"
    return ast.unparse(node)


def _number(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def type_words(model: type[BaseModel], name: str) -> str:
    """The key's type in words, with its bounds and its unit (`number > 0, <= 300 (seconds)`)."""
    tree = ast.parse(_annotation_text(model, name), mode="eval").body
    words = _words(tree)
    field = model.model_fields[name]
    bounds = []
    for meta in field.metadata:
        for attr, sign in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            bound = getattr(meta, attr, None)
            if bound is not None:
                bounds.append(f"{sign} {_number(bound)}")
    if bounds:  # on the value, before `, or null`
        head, null, tail = words.partition(", or null")
        words = f"{head} {', '.join(bounds)}{null}{tail}"
    if name.endswith("_seconds"):
        words += " (seconds)"
    return words


def _plain(value: Any) -> Any:  # noqa: PLR0911 - one return per kind of value
    """A value as YAML shows it: plain str, int for a whole float, lists and dicts inside."""
    if isinstance(value, BaseModel):
        return _plain(value.model_dump(mode="json"))
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int | float):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value)


def yaml_scalar(value: Any) -> str:
    """One value in YAML's flow style, on one line."""
    text = safe_dump(_plain(value), default_flow_style=True, sort_keys=False, width=1 << 20)
    text = text.strip()
    return text.removesuffix("\n...").strip()


def _default(field: FieldInfo) -> Any:
    return field.get_default(call_default_factory=True)


# --------------------------------------------------------------------------- the reference


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _table(model: type[BaseModel], prefix: str) -> list[str]:
    rows = ["| Key | Type | Default | Description |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        inner = None if _is_map(field) else section_of(field)
        if field.is_required():
            default = "**required**"
        elif inner is not None and not _is_list(field):
            default = "(section below)"
        else:
            default = f"`{yaml_scalar(_default(field))}`"
        words = type_words(model, name)
        if inner is not None and not _is_list(field):
            words = "section"
        cells = [f"`{prefix}{name}`", words, default, field.description or ""]
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return rows


def _sections(model: type[BaseModel], prefix: str, level: int) -> list[str]:
    out = [*_table(model, prefix), ""]
    for name, field in model.model_fields.items():
        if variants_of(field):
            out += [f"{'#' * level} Each entry of `{prefix}{name}`", ""]
            for variant in variants_of(field):
                tag = variant.model_fields["method"].annotation
                out += [f"{'#' * (level + 1)} `method: {typing.get_args(tag)[0]}`", ""]
                out += [" ".join((variant.__doc__ or "").split()), ""]
                out += _sections(variant, f"{prefix}{name}.NAME.", level + 2)
            continue
        entry = entry_of(field)
        if entry is not None:
            out += [f"{'#' * level} Each entry of `{prefix}{name}`", ""]
            out += [" ".join((entry.__doc__ or "").split()), ""]
            out += _sections(entry, f"{prefix}{name}.NAME.", level + 1)
            continue
        inner = section_of(field)
        if inner is None:
            continue
        key = f"{prefix}{name}{'[]' if _is_list(field) else ''}"
        title = f"Each item of `{prefix}{name}`" if _is_list(field) else f"`{key}`"
        out += [f"{'#' * level} {title}", ""]
        about = inner.__doc__ if _is_list(field) else field.description
        if about:
            out += [" ".join(about.split()), ""]
        out += _sections(inner, key + ".", level + 1)
    return out


def render_reference(root: type[BaseModel] = HecateConfig) -> str:
    """The Markdown reference: a table per section, every key with its type, default and
    description; the items of a list of sections get their own table."""
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated by scripts/gen-config-docs from the config models' field descriptions"
        " (hecate/config/): edit those, then run it. -->",
        "",
        "Hecate reads one YAML file (`/etc/hecate/hecate.yaml` unless `--config` names another).",
        "Every key is optional unless marked **required**; unknown keys are rejected, and",
        "`hecate config check --config FILE` lists every bad field by its dotted path.",
        "`configs/hecate.example.yaml` shows every key with these descriptions.",
        "",
        "## Top-level keys",
        "",
    ]
    lines += _sections(root, "", 2)
    while lines[-1] == "":
        lines.pop()
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- the example


def _comment(text: str, pad: str) -> list[str]:
    body = textwrap.wrap(" ".join(text.split()), WIDTH - len(pad) - 2, break_on_hyphens=False)
    return [f"{pad}# {line}" for line in body]


def _value_lines(pad: str, key: str, value: Any) -> list[str]:
    # The shape hecate.cli.config_init_text.render_config writes too: a map's entries one a line, a
    # list of sections one item a line, anything else on the key's line.
    plain = _plain(value)
    if isinstance(plain, dict) and plain:
        return [f"{pad}{key}:"] + [
            f"{pad}  {yaml_scalar(k)}: {yaml_scalar(v)}" for k, v in plain.items()
        ]
    if isinstance(plain, list) and plain and all(isinstance(v, dict) for v in plain):
        return [f"{pad}{key}:"] + [f"{pad}  - {yaml_scalar(v)}" for v in plain]
    return [f"{pad}{key}: {yaml_scalar(plain)}"]


def _example_keys(model: type[BaseModel], prefix: str, indent: int) -> list[str]:
    pad = " " * indent
    out: list[str] = []
    for name, field in model.model_fields.items():
        path = prefix + name
        inner = None if _is_map(field) else section_of(field)
        if path in BANNERS:
            out += ["", f"{pad}# --- {BANNERS[path]} ---"]
        if inner is not None and not _is_list(field):
            out += ["", *_comment(field.description or "", pad), f"{pad}{name}:"]
            out += _example_keys(inner, path + ".", indent + 2)
            continue
        out += _comment(field.description or "", pad)
        if inner is not None:  # a list of sections: name the item keys
            items = ", ".join(
                f"{key} (required)" if item.is_required() else key
                for key, item in inner.model_fields.items()
            )
            out += _comment(f"Each item: {items}.", pad)
        if path in EXAMPLES:
            value = EXAMPLES[path]
        elif field.is_required():
            raise ValueError(f"{path} is required and has no example value")
        else:
            value = _default(field)
        for variant in variants_of(field):  # a map of sections: each kind's keys
            keys = ", ".join(
                f"{key} (required)" if item.is_required() else key
                for key, item in variant.model_fields.items()
            )
            tag = typing.get_args(variant.model_fields["method"].annotation)[0]
            out += _comment(f"Each entry with method {tag}: {keys}.", pad)
        entry = entry_of(field)
        if entry is not None:
            keys = ", ".join(
                f"{key} (required)" if item.is_required() else key
                for key, item in entry.model_fields.items()
            )
            out += _comment(f"Each entry: {keys}.", pad)
        out += _value_lines(pad, name, value)
        out += [f"{pad}#  - {yaml_scalar(item)}" for item in COMMENTED_ITEMS.get(path, [])]
        out += [
            f"{pad}#   {key}: {yaml_scalar(entry)}"
            for key, entry in COMMENTED_ENTRIES.get(path, {}).items()
        ]
    return out


def render_example(root: type[BaseModel] = HecateConfig) -> str:
    """The example config: every key, its description as comments above it, the default or
    the example's stand-in value."""
    lines = EXAMPLE_HEADER.splitlines() + _example_keys(root, "", 0)
    return "\n".join(lines) + "\n"


def rendered_files() -> dict[str, str]:
    """Each generated file's path in the checkout -> its text."""
    return {REFERENCE_PATH: render_reference(), EXAMPLE_PATH: render_example()}


def main(argv: list[str]) -> int:
    """`python -m hecate.config.reference ROOT`: write both files under the checkout ROOT."""
    root = Path(argv[0]) if argv else Path.cwd()
    for relative, text in rendered_files().items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        print(f"wrote {relative}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
