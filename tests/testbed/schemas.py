"""Hold the stand-in (and what Hecate sends it) to the real API's published schemas.

* Kubernetes objects: the OpenAPI-derived JSON schemas of PyPI's ``kubernetes-validate`` (strict
  variant: an unknown field is an error, as ``fieldValidation=Strict`` would make it), for every
  version in :data:`K8S_VERSIONS`.
* Flux objects (``*.toolkit.fluxcd.io``): Flux's CRD schemas as published in npm's
  ``@kubernetes-models/flux-cd`` (4.0.0, pinned in tests/schemas/package.json, installed by
  ``scripts/setup`` with ``npm ci``), run by ``tests/schemas/validate_flux.mjs`` under Node. The
  CRDs do not forbid unknown fields (the API server prunes them), so neither does this check;
  wrong types, missing required fields and bad enums are errors.

:func:`audit_problems` reads the stand-in's audit log (``audit: true`` in the twin's config; see
``kube_standin.StandinServer.audit``) and checks every object in it: each answer, each listed
item, each created object, each body Hecate sent, and each patched object the API answered.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate

# k3s ships Kubernetes 1.36 on its stable channel and 1.37 on its latest channel (Dec 2026);
# kubernetes-validate 1.37.0 (Oct 2026) carries schemas for 1.25 to 1.37. The stand-in
# reports v1.36 (kube_standin.K8S_VERSION).
K8S_VERSIONS = ("1.36", "1.37")

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schemas"
FLUX_GROUP = re.compile(r"^[a-z]+\.toolkit\.fluxcd\.io/")
# Answers with no published schema: server-side Tables (kubectl get) and the /version document.
UNSCHEMATIZED = {("meta.k8s.io/v1", "Table"), ("meta.k8s.io/v1beta1", "Table")}
META_KINDS = {"Status", "APIResourceList", "APIGroupList", "APIGroup", "APIVersions"}


class SchemaSetupError(RuntimeError):
    """The schema packages are not installed: run scripts/setup."""


def _schema_root(version: str) -> Path:
    root = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    return root / f"v{version}.0-local-strict"


@functools.cache
def _definitions(version: str) -> dict[str, Any]:
    defs: dict[str, Any] = json.loads(
        (_schema_root(version) / "_definitions.json").read_text(encoding="utf-8")
    )["$defs"]
    return defs


@functools.cache
def _validator(version: str, filename: str) -> jsonschema.protocols.Validator | None:
    path = _schema_root(version) / filename
    if not path.exists():
        return None
    # One document with the definitions inlined: local $refs resolve about 100x faster than
    # the package's external "/api/_definitions.json" ones.
    text = json.dumps(
        {**json.loads(path.read_text(encoding="utf-8")), "$defs": _definitions(version)}
    )
    schema = json.loads(text.replace('"/api/_definitions.json#/$defs/', '"#/$defs/'))
    validator: jsonschema.protocols.Validator = jsonschema.Draft202012Validator(schema)
    return validator


def _schema_file(api_version: str, kind: str) -> str:
    if kind in META_KINDS and "/" not in api_version:
        return f"{kind.lower()}-meta-v1.json"
    group, _, version = api_version.rpartition("/")
    prefix = group.split(".", 1)[0] + "-" if group else ""
    return f"{kind.lower()}-{prefix}{version}.json"


def kubernetes_problems(obj: Any, where: str = "") -> list[str]:
    """Every schema error of one Kubernetes object, for each version in K8S_VERSIONS."""
    if not isinstance(obj, dict):
        return [f"{where}: not an object"]
    api_version, kind = str(obj.get("apiVersion", "")), str(obj.get("kind", ""))
    problems = []
    for version in K8S_VERSIONS:
        validator = _validator(version, _schema_file(api_version, kind))
        if validator is None:
            problems.append(f"{where}: no published schema for {api_version} {kind} ({version})")
            continue
        for error in validator.iter_errors(obj):
            path = "/".join(str(p) for p in error.absolute_path)
            problems.append(f"{where}: {kind} {path}: {error.message[:300]} (k8s {version})")
    return problems


def flux_problems(objects: list[Any], wheres: list[str]) -> list[str]:
    """Every schema error of Flux objects (one Node process for the whole batch)."""
    if not objects:
        return []
    script = SCHEMA_DIR / "validate_flux.mjs"
    if not (SCHEMA_DIR / "node_modules" / "@kubernetes-models" / "flux-cd").is_dir():
        raise SchemaSetupError(
            f"Flux's schemas are not installed in {SCHEMA_DIR}/node_modules: run scripts/setup"
        )
    done = subprocess.run(
        ["node", str(script)],
        input=json.dumps(objects),
        capture_output=True,
        text=True,
        cwd=SCHEMA_DIR,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise SchemaSetupError(f"validate_flux.mjs failed: {done.stderr[-2000:]}")
    results: list[list[str]] = json.loads(done.stdout)
    return [f"{where}: {msg}" for where, msgs in zip(wheres, results, strict=True) for msg in msgs]


def is_flux(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(FLUX_GROUP.match(str(obj.get("apiVersion", ""))))


def problems(objects: Iterable[tuple[str, Any]]) -> list[str]:
    """Schema errors of (where, object) pairs, Kubernetes and Flux alike."""
    found: list[str] = []
    flux: list[Any] = []
    flux_where: list[str] = []
    for where, obj in objects:
        key = (str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
        if key in UNSCHEMATIZED:
            continue
        if is_flux(obj):
            flux.append(obj)
            flux_where.append(where)
        else:
            found += kubernetes_problems(obj, where)
    return found + flux_problems(flux, flux_where)


def _list_kind(obj: dict[str, Any]) -> bool:
    return str(obj.get("kind", "")).endswith("List") and isinstance(obj.get("items"), list)


def _items(where: str, obj: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """A list answer's items as the objects they are (apiVersion/kind from the list)."""
    kind = str(obj["kind"])[: -len("List")]
    for i, item in enumerate(obj["items"]):
        if isinstance(item, dict):
            yield f"{where} items[{i}]", {"apiVersion": obj.get("apiVersion"), "kind": kind, **item}


def audit_entries(state_dir: Path) -> list[dict[str, Any]]:
    entries = []
    for path in sorted((state_dir / "audit").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                entries.append(json.loads(line))
    return entries


def audit_objects(entries: list[dict[str, Any]]) -> Iterator[tuple[str, Any]]:
    """Every object to check in an audit log: answers, list items, and what clients sent."""
    for n, entry in enumerate(entries):
        where = f"#{n} {entry['method']} {entry['path']} -> {entry['code']}"
        answer = entry.get("response")
        if entry.get("table"):
            answer = None  # kubectl's Tables have no published schema
        if isinstance(answer, dict) and "kind" in answer:
            if _list_kind(answer):
                yield from _items(f"{where} answer", answer)
            yield f"{where} answer", answer
        sent = entry.get("request")
        content_type = str(entry.get("contentType", ""))
        if not isinstance(sent, dict):
            continue
        if entry["method"] in ("POST", "PUT") or "apply-patch" in content_type:
            # A created or applied object (or an Eviction) must be a whole valid object.
            yield f"{where} request", sent
        # Merge and JSON patches are checked through the object the API answered with them
        # applied (above): the strict schemas catch an unknown or mistyped field there.


def audit_problems(state_dir: Path) -> tuple[int, list[str]]:
    """(objects checked, schema errors) for the stand-in's audit log under ``state_dir``."""
    objects = list(audit_objects(audit_entries(state_dir)))
    return len(objects), problems(objects)
