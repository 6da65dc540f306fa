"""Filters of the hecate_install role."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def _missing(example: Mapping[str, Any], current: Any, prefix: str, free: set[str]) -> list[str]:
    if not isinstance(current, Mapping):
        return []
    found: list[str] = []
    for key, value in example.items():
        path = f"{prefix}{key}"
        if key not in current:
            found.append(path)
        elif isinstance(value, Mapping) and path not in free:
            found.extend(_missing(value, current[key], f"{path}.", free))
    return found


def hecate_missing_keys(
    example: Any, current: Any, free_form: Iterable[str] = ()
) -> list[str]:
    """Dotted paths of the keys `example` has and `current` lacks (top-level and nested).

    A missing mapping is reported once, not key by key. Keys listed in `free_form` hold data
    (node names ...) rather than settings: their children are not compared.
    """
    if not isinstance(example, Mapping):
        return []
    return _missing(example, current if current is not None else {}, "", set(free_form))


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"hecate_missing_keys": hecate_missing_keys}
