"""What every config section shares: strict scalars (no booleans as numbers, no empty text, no
NUL byte, no control character), unknown keys rejected, frozen values, and the typed names
(Kubernetes, NUT, Linux user, git branch). Used by the models in `hecate.config`."""

from __future__ import annotations

import difflib
import math
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from hecate.config.addresses import (
    NodeName,
    control_problem,
    parse_git_branch,
    parse_kube_label,
    parse_kube_name,
    parse_nut_command,
    parse_nut_user,
    parse_user_name,
)


def _numeric_annotation(annotation: object) -> bool:
    """Whether a field's annotation is int or float (optionally inside Optional/Annotated)."""
    if annotation in (int, float):
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _numeric_annotation(typing.get_args(annotation)[0])
    if origin is typing.Union or isinstance(annotation, types.UnionType):
        return any(_numeric_annotation(arg) for arg in typing.get_args(annotation))
    return False


def _text_problem(value: object) -> str | None:
    """Why a direct text value is not acceptable (empty, NUL, a control character), or None.

    Containers are not looked into: their items are typed (Node, HostPort, FilePath, ...) and
    each checks itself, so an error names the item's own path (`ssh_node_users.titan-0`), and a
    nested section (a dict) reports its own keys (`ups.user`, never `ups`)."""
    if not isinstance(value, str):
        return None
    if "\x00" in value:
        return "contains a NUL byte"
    if not value.strip():
        return "must not be empty (remove the key to use the default)"
    return control_problem(value)


def _text(value: object) -> object:
    problem = _text_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _parsing(parse: Callable[[str], str]) -> Callable[[str], str]:
    return lambda value: parse(value.strip())


# A node name (RFC 1123, lower case). Typed `str` so lists of names stay plain lists of str;
# the value is a NodeName all the same.
Node = Annotated[str, AfterValidator(NodeName.parse)]
# A path named inside a list (a manifest): checked as text before it becomes a Path ("" is ".").
FilePath = Annotated[Path, BeforeValidator(_text)]
# Strings that reach a protocol, a command line or an API path, each held to its grammar.
KubeNamespace = Annotated[str, AfterValidator(_parsing(parse_kube_label))]
KubeName = Annotated[str, AfterValidator(_parsing(parse_kube_name))]
NutUser = Annotated[str, AfterValidator(_parsing(parse_nut_user))]
NutCommand = Annotated[str, AfterValidator(_parsing(parse_nut_command))]
UserName = Annotated[str, BeforeValidator(_text), AfterValidator(_parsing(parse_user_name))]
GitBranch = Annotated[str, AfterValidator(_parsing(parse_git_branch))]


def at(message: str, path: str = "", *, absolute: bool = False) -> PydanticCustomError:
    """An error for a validator to raise, naming a key below the validated field (`path`
    relative to it) or anywhere (`absolute`): a cross-field check on a section still names the
    key itself (`metrics.listen`, not `metrics`)."""
    return PydanticCustomError(
        "hecate", "{message}", {"message": message, "at": path, "absolute": absolute}
    )


class StrictModel(BaseModel):
    # allow_inf_nan=False: `.inf` or `.nan` is never a duration, a charge or a factor.
    # defer_build: each model builds its validator on first use; `hecate status` builds only
    # HecateConfig's (its nested models come inline), not one per model at import.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, defer_build=True)

    @field_validator("*", mode="before")
    @classmethod
    def _strict_scalars(cls, value: object, info: ValidationInfo) -> object:
        """Booleans are not numbers; no empty text, no NUL byte, no control character."""
        name = info.field_name
        numeric = name is not None and _numeric_annotation(cls.model_fields[name].annotation)
        if isinstance(value, bool) and numeric:
            raise ValueError("must be a number, not a boolean (yes/no/on/off are booleans)")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("must be a finite number")
        problem = _text_problem(value)
        if problem:
            raise ValueError(problem)
        return value


# --------------------------------------------------------------------------- errors

# What a config that relied on the old default of ups.target must add (README, "Upgrading").
UPS_TARGET_MISSING = (
    "required, no default: add the line `  target: UPSNAME@HOST` under `ups:` (`upsc -l HOST` "
    "lists the names; a config that relied on the old default adds `  target: pyrphoros@localhost`)"
)


def _models_in(annotation: object) -> list[type[BaseModel]]:
    """The models an annotation holds (itself, or inside list/dict/Optional)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _model_at(root: type[BaseModel], loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The model whose keys sit at `loc` (list indexes and dict keys of models skipped)."""
    model: type[BaseModel] | None = root
    variants: dict[str | None, type[BaseModel]] = {}
    for part in loc:
        if model is None:
            return None
        if part in variants:  # the tag of a map of tagged sections: that section's model
            model, variants = variants[str(part)], {}
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            continue  # an index into a list of models, or a dict key
        models = _models_in(field.annotation)
        model = models[0] if models else None
        variants = {_tag_of(m): m for m in models} if len(models) > 1 else {}
    return model


def _all_keys(root: type[BaseModel], prefix: str = "") -> dict[str, list[str]]:
    """Every key's name -> the dotted paths where it is a key."""
    found: dict[str, list[str]] = {}
    for name, field in root.model_fields.items():
        found.setdefault(name, []).append(prefix + name)
        # an item of a list of sections: startup.probes.N.target
        item = ".N" if typing.get_origin(field.annotation) is list else ""
        for model in _models_in(field.annotation):
            for key, paths in _all_keys(model, f"{prefix}{name}{item}.").items():
                found.setdefault(key, []).extend(paths)
    return found


def did_you_mean(root: type[BaseModel], loc: Sequence[int | str]) -> str:
    """The hint for an unknown key at `loc`: where that key belongs when it is one elsewhere
    (`target` at the top: `ups.target`), else the closest key at that level (difflib), else ''."""
    *parent, key = loc
    elsewhere = _all_keys(root).get(str(key), [])
    if elsewhere:
        return f"did you mean `{'` or `'.join(elsewhere)}`?"
    model = _model_at(root, parent)
    if model is not None:
        close = difflib.get_close_matches(str(key), list(model.model_fields), n=1, cutoff=0.6)
        if close:
            return f"did you mean `{close[0]}`?"
    return ""


def _tag_of(model: type[BaseModel]) -> str | None:
    field = model.model_fields.get("method")
    args = typing.get_args(field.annotation) if field is not None else ()
    return str(args[0]) if len(args) == 1 else None


def drop_union_tags(root: type[BaseModel], loc: Sequence[int | str]) -> list[int | str]:
    """`loc` without the tags pydantic puts after a key of a map of tagged sections
    (`power.nodes.titan-0.ipmi.user` -> `power.nodes.titan-0.user`): nobody writes them."""
    out: list[int | str] = []
    model: type[BaseModel] | None = root
    parts = list(loc)
    while parts:
        part = parts.pop(0)
        out.append(part)
        field = model.model_fields.get(str(part)) if model is not None else None
        if field is None:
            continue
        models = _models_in(field.annotation)
        model = models[0] if models else None
        if typing.get_origin(field.annotation) is dict and len(models) > 1 and len(parts) >= 2:
            tags = {_tag_of(m): m for m in models}
            if parts[1] in tags:
                out.append(parts.pop(0))  # the map's key (a node name)
                model = tags[str(parts.pop(0))]
    return out


def format_validation_error(error: ValidationError, root: type[BaseModel]) -> list[str]:
    """One line per problem, each starting with the dotted path of the key itself."""
    lines = []
    for item in error.errors():
        loc: list[int | str] = drop_union_tags(root, item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        ctx = item.get("ctx") or {}
        if item["type"] == "hecate" and ctx.get("at"):
            extra = str(ctx["at"]).split(".")
            loc = list(extra) if ctx.get("absolute") else [*loc, *extra]
        if item["type"] == "extra_forbidden":
            hint = did_you_mean(root, list(item["loc"]))
            message = "unknown key" + (
                f"; {hint}" if hint else " (check the spelling against configs/hecate.example.yaml)"
            )
        elif item["type"] == "missing":
            message = UPS_TARGET_MISSING if loc == ["ups", "target"] else "required"
        path = ".".join(str(part) for part in loc) or "(top level)"
        lines.append(f"{path}: {message}")
    return lines
