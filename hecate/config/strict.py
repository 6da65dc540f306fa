"""What every config section shares: strict scalars (no booleans as numbers, no empty text, no
NUL byte), unknown keys rejected, frozen values. Used by the models in `hecate.config`."""

from __future__ import annotations

import math
import types
import typing
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationInfo, field_validator

from hecate.config.addresses import NodeName


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


def _blank_or_nul(value: object) -> str | None:
    """Why a value (or an item inside it) is not acceptable text, or None when it is."""
    if isinstance(value, str):
        if "\x00" in value:
            return "contains a NUL byte"
        if not value.strip():
            return "must not be empty (remove the key to use the default)"
    elif isinstance(value, list | tuple):
        for item in value:
            problem = _blank_or_nul(item)
            if problem:
                return problem
    elif isinstance(value, dict):
        for key, item in value.items():
            problem = _blank_or_nul(key) or _blank_or_nul(item)
            if problem:
                return problem
    return None


# A node name (RFC 1123, lower case). Typed `str` so lists of names stay plain lists of str;
# the value is a NodeName all the same.
Node = Annotated[str, AfterValidator(NodeName.parse)]


class StrictModel(BaseModel):
    # allow_inf_nan=False: `.inf` or `.nan` is never a duration, a charge or a factor.
    # defer_build: each model builds its validator on first use; `hecate status` builds only
    # HecateConfig's (its nested models come inline), not one per model at import.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, defer_build=True)

    @field_validator("*", mode="before")
    @classmethod
    def _strict_scalars(cls, value: object, info: ValidationInfo) -> object:
        """Booleans are not numbers; no empty text, no NUL byte anywhere."""
        name = info.field_name
        numeric = name is not None and _numeric_annotation(cls.model_fields[name].annotation)
        if isinstance(value, bool) and numeric:
            raise ValueError("must be a number, not a boolean (yes/no/on/off are booleans)")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("must be a finite number")
        problem = _blank_or_nul(value)
        if problem:
            raise ValueError(problem)
        return value
