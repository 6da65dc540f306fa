"""Manifests as Hecate keeps them (the bootstrap cache): live objects without what the server
set. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SERVER_SET_METADATA = (
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "managedFields",
    "generation",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "ownerReferences",
)


def clean_manifest(data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy without status and the metadata the API server sets."""
    cleaned = {k: v for k, v in data.items() if k != "status"}
    meta = dict(cleaned.get("metadata") or {})
    for key in SERVER_SET_METADATA:
        meta.pop(key, None)
    annotations = {
        k: v
        for k, v in (meta.get("annotations") or {}).items()
        if k != "kubectl.kubernetes.io/last-applied-configuration"
    }
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    cleaned["metadata"] = meta
    return cleaned
