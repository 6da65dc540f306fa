#!/usr/bin/python3
"""A stand-in for k3s in the cluster twin: a Kubernetes API server, a kubelet and a few controllers.

Runs inside the twin's nodes with the node's own python3 (3.11, standard library only):

* ``kube_standin.py server`` is what ``k3s server`` runs (unit ``k3s.service``): it runs the
  node's etcd member as a child (``etcd_member.py``; with ``--cluster-reset`` it only resets it),
  serves a Kubernetes API on port 6443, heartbeats its own Node, and runs a reconcile loop
  standing in for kube-controller-manager, the scheduler, the kubelets and Flux's controllers.
* ``kube_standin.py agent`` is what ``k3s agent`` runs (unit ``k3s-agent.service``): it registers
  its Node and heartbeats it every second.
* ``kube_standin.py snapshot [--name N]`` is ``k3s etcd-snapshot save`` (``etcdctl``).

The node's settings are ``/etc/hecate-twin/node.json`` (``--conf``): name, role, the shared
directory, and the etcd member (servers) or the etcd endpoints (agents).

The API is HTTPS, as k3s's is, when the state directory has ``tls/server.crt`` and
``tls/server.key`` (the twin makes them, signed by its own CA, for 127.0.0.1); otherwise plain
HTTP (handy to run the stand-in by hand). kubectl sends no credentials over plain HTTP, hence TLS.
Clients authenticate with a bearer token (``Authorization: Bearer <token>``); ``/readyz``,
``/livez``, ``/healthz`` and ``/version`` need none, as on a real API server.

Every object is in etcd (:class:`Store`: one key, written under a lock key), read linearizably:
the API answers exactly while etcd has quorum (``/readyz`` 500, requests 504 otherwise) and
objects survive restarts because etcd keeps them. The nodes also share a directory (a host
directory bind-mounted into every node): ``heartbeats/<node>.json`` (the kubelets' leases), the
API's token and certificate, ``seed.json`` (written into etcd at first start), ``audit/``.

JSON shapes follow the real API: lists are ``<Kind>List`` with ``metadata.resourceVersion``,
errors are ``kind: Status`` objects with ``reason`` and ``code``, and so on. Requests may be
``application/json``, ``application/merge-patch+json``, ``application/strategic-merge-patch+json``
(applied as a JSON merge patch: lists are replaced), ``application/json-patch+json`` and
``application/apply-patch+yaml`` (server-side apply). A standard-library server cannot parse YAML,
so apply bodies must be JSON (YAML's superset); lightkube and kubernetes-python send JSON.

Model (one reconcile tick every ``reconcileSeconds``, 0.5 s by default):

* a Node is Ready while its k3s/k3s-agent heartbeats; ``nodeGraceSeconds`` (3 s) after the last
  heartbeat its conditions turn ``Unknown`` with reason ``NodeStatusUnknown`` and it gets the
  ``node.kubernetes.io/unreachable`` taints, as the node lifecycle controller does;
* Deployments and StatefulSets get Pods scheduled on Ready, schedulable Nodes; a Pod is Ready
  ``podStartSeconds`` after its Node is Ready, ``readyReplicas`` counts Ready Pods (and is omitted
  at 0, as the real API omits it); Pods on a Node that stays NotReady ``podEvictionSeconds`` are
  deleted and made again elsewhere; an Eviction deletes a Pod;
* a GitRepository whose URL's host contains ``gitea.hostMatch`` is Ready only while the Gitea
  Deployment has a Ready replica and its branch is one of ``gitea.branches``; else Ready is False
  with reason ``GitOperationFailed``; other GitRepositories are always Ready;
* a Kustomization is Ready when its source and ``dependsOn`` are Ready; a Ready one sets the
  replicas of the workloads it owns (labels ``kustomize.toolkit.fluxcd.io/name``/``namespace``)
  to their annotation ``twin.hecate.io/desired-replicas``; a suspended one changes nothing and
  keeps its last Ready condition, as Flux does;
* a HelmRelease is Ready when not suspended and its owning Kustomization (if any) is Ready;
* ``reconcile.fluxcd.io/requestedAt`` is copied to ``status.lastHandledReconcileAt``;
* HorizontalPodAutoscalers and PriorityClasses are stored and served, not acted on (no HPA
  controller, no priority admission).

Behaviours of a real cluster kept in ``standin_behaviour.py`` (copied next to this file): evictions
a PodDisruptionBudget refuses answer 429; deleted Pods stay Terminating for their grace period.

Not modelled: watches resuming from an old resourceVersion
(a watch sends the current objects, then changes), protobuf, Tables, OpenAPI.
"""

from __future__ import annotations

import argparse
import base64
import calendar
import contextlib
import copy
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

if __package__:  # imported by the tests (tests.testbed.node.kube_standin)
    from . import etcd_client as ec
    from . import etcd_member as member
    from . import standin_behaviour as behaviour
else:  # run as a script (in the twin's nodes, or by standin_host): its directory is on sys.path
    import etcd_client as ec  # type: ignore[import-not-found,no-redef]
    import etcd_member as member  # type: ignore[import-not-found,no-redef]
    import standin_behaviour as behaviour  # type: ignore[import-not-found,no-redef]

Obj = dict[str, Any]

STATE_DIR = "/var/lib/rancher/k3s/twin-shared"
NODE_CONF = "/etc/hecate-twin/node.json"
SNAPSHOT_DIR = "/var/lib/rancher/k3s/server/db/snapshots"
RUN_DIR = "/run/k3s-twin"
# The minor k3s ships on its stable channel; tests/testbed/schemas.py checks against it.
K8S_VERSION = "v1.36.1+k3s1"
API_PORT = 6443
# The objects, in etcd: one key (a JSON document), written under a lock key whose value starts
# with its expiry (ms, zero-padded: etcd compares values as bytes).
STATE_KEY = "/registry/hecate-twin/state"
LOCK_KEY = "/registry/hecate-twin/lock"
LOCK_TTL_MS = 10_000
LOCK_WAIT_S = 10.0

ANN_DESIRED = "twin.hecate.io/desired-replicas"
ANN_OWNER = "twin.hecate.io/owner"
ANN_STARTED = "twin.hecate.io/started-at"
ANN_REQUESTED = "reconcile.fluxcd.io/requestedAt"
LABEL_KS_NAME = "kustomize.toolkit.fluxcd.io/name"
LABEL_KS_NS = "kustomize.toolkit.fluxcd.io/namespace"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"

DEFAULT_CONFIG: Obj = {
    "nodeGraceSeconds": 3.0,
    "podStartSeconds": 1.0,
    "podEvictionSeconds": 300.0,
    # A Pod's terminationGracePeriodSeconds when its template sets none (30 on a real cluster).
    "terminationGraceSeconds": 2,
    "reconcileSeconds": 0.5,
    # At first boot, Pods wait (Pending) until these Nodes have registered, or this long.
    "initialNodes": [],
    "initialNodesWaitSeconds": 30.0,
    "gitea": {
        "namespace": "gitea",
        "name": "gitea",
        "hostMatch": "gitea",
        "branches": {"main": "5e1c0a9b2f4d6e8a0c1b3d5f7a9e2c4b6d8f0a1e"},
    },
}


# --------------------------------------------------------------------------------------------
# Resources


@dataclass(frozen=True)
class Resource:
    """One REST resource (a kind) the stand-in serves."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    builtin: bool = True
    has_spec: bool = True
    has_status: bool = True
    subresources: tuple[str, ...] = ("status",)

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """``deployments.apps``, ``pods``: how the real API names a resource in messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def singular(self) -> str:
        return self.kind.lower()

    def key(self, namespace: str, name: str) -> str:
        return f"{self.group}/{self.plural}/{namespace if self.namespaced else ''}/{name}"

    def prefix(self, namespace: str | None = None) -> str:
        base = f"{self.group}/{self.plural}/"
        return base + f"{namespace}/" if namespace is not None and self.namespaced else base


FLUX_KS = Resource(
    "kustomize.toolkit.fluxcd.io",
    "v1",
    "kustomizations",
    "Kustomization",
    True,
    ("ks",),
    builtin=False,
)
FLUX_GIT = Resource(
    "source.toolkit.fluxcd.io",
    "v1",
    "gitrepositories",
    "GitRepository",
    True,
    ("gitrepo",),
    builtin=False,
)
FLUX_HR = Resource(
    "helm.toolkit.fluxcd.io", "v2", "helmreleases", "HelmRelease", True, ("hr",), builtin=False
)
NODES = Resource("", "v1", "nodes", "Node", False, ("no",))
NAMESPACES = Resource("", "v1", "namespaces", "Namespace", False, ("ns",))
PODS = Resource("", "v1", "pods", "Pod", True, ("po",), subresources=("status", "eviction"))
DEPLOYMENTS = Resource(
    "apps", "v1", "deployments", "Deployment", True, ("deploy",), subresources=("status", "scale")
)
STATEFULSETS = Resource(
    "apps", "v1", "statefulsets", "StatefulSet", True, ("sts",), subresources=("status", "scale")
)
PDBS = Resource("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, ("pdb",))
# Stored and served, not acted on: no HPA controller (load shedding only names the HPAs that
# target what it scales to 0, which a real HPA leaves at 0), no priority admission.
HPAS = Resource(
    "autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", True, ("hpa",)
)
PRIORITY_CLASSES = Resource(
    "scheduling.k8s.io",
    "v1",
    "priorityclasses",
    "PriorityClass",
    False,
    ("pc",),
    has_spec=False,
    has_status=False,
    subresources=(),
)
RESOURCES: tuple[Resource, ...] = (
    NODES,
    NAMESPACES,
    PODS,
    Resource(
        "",
        "v1",
        "configmaps",
        "ConfigMap",
        True,
        ("cm",),
        has_spec=False,
        has_status=False,
        subresources=(),
    ),
    Resource(
        "", "v1", "secrets", "Secret", True, (), has_spec=False, has_status=False, subresources=()
    ),
    Resource("", "v1", "services", "Service", True, ("svc",)),
    Resource(
        "",
        "v1",
        "events",
        "Event",
        True,
        ("ev",),
        has_spec=False,
        has_status=False,
        subresources=(),
    ),
    Resource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, ("pvc",)),
    DEPLOYMENTS,
    STATEFULSETS,
    PDBS,
    HPAS,
    PRIORITY_CLASSES,
    FLUX_KS,
    FLUX_GIT,
    FLUX_HR,
)
WORKLOADS = (DEPLOYMENTS, STATEFULSETS)


def find_resource(group: str, version: str, plural: str) -> Resource | None:
    for res in RESOURCES:
        if (res.group, res.version, res.plural) == (group, version, plural):
            return res
    return None


def resource_for(api_version: str, kind: str) -> Resource | None:
    for res in RESOURCES:
        if res.group_version == api_version and res.kind == kind:
            return res
    return None


def group_versions() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for res in RESOURCES:
        versions = out.setdefault(res.group, [])
        if res.version not in versions:
            versions.append(res.version)
    return out


# --------------------------------------------------------------------------------------------
# Small helpers


def rfc3339(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def short_hash(text: str, size: int = 10) -> str:
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    digest = hashlib.sha256(text.encode()).digest()
    return "".join(alphabet[b % len(alphabet)] for b in digest[:size])


def sha1_hex(text: str) -> str:
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


def meta(obj: Obj) -> Obj:
    value = obj.setdefault("metadata", {})
    if not isinstance(value, dict):
        raise ApiError.bad_request("metadata must be an object")
    return value


def labels_of(obj: Obj) -> dict[str, str]:
    value = obj.get("metadata", {}).get("labels") or {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def annotations_of(obj: Obj) -> dict[str, str]:
    value = obj.get("metadata", {}).get("annotations") or {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def condition(obj: Obj, ctype: str) -> Obj | None:
    for cond in obj.get("status", {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == ctype:
            return cond
    return None


def is_ready(obj: Obj | None) -> bool:
    cond = condition(obj, "Ready") if obj is not None else None
    return cond is not None and cond.get("status") == "True"


def set_condition(
    obj: Obj,
    ctype: str,
    status: str,
    reason: str,
    message: str,
    now: float,
    *,
    generation: bool = True,
) -> None:
    """Set a condition; ``lastTransitionTime`` changes only when ``status`` does."""
    conditions = obj.setdefault("status", {}).setdefault("conditions", [])
    entry: Obj = {"type": ctype, "status": status, "reason": reason, "message": message}
    if generation:
        entry["observedGeneration"] = obj.get("metadata", {}).get("generation", 1)
    for index, cond in enumerate(conditions):
        if cond.get("type") == ctype:
            same = cond.get("status") == status
            entry["lastTransitionTime"] = (
                cond.get("lastTransitionTime", rfc3339(now)) if same else rfc3339(now)
            )
            conditions[index] = {**cond, **entry}
            return
    entry["lastTransitionTime"] = rfc3339(now)
    conditions.append(entry)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result: Obj = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def apply_merge(target: Any, applied: Any) -> Any:
    """Server-side apply, simplified: the applied fields win; lists are replaced."""
    if not isinstance(applied, dict) or not isinstance(target, dict):
        return copy.deepcopy(applied)
    result = copy.deepcopy(target)
    for key, value in applied.items():
        result[key] = apply_merge(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiError.bad_request(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(doc, list):
            doc = doc[int(part)]
        elif isinstance(doc, dict):
            doc = doc[part]
        else:
            raise KeyError(part)
    return doc


def json_patch(doc: Any, ops: Any) -> Any:
    """RFC 6902 JSON patch (add, remove, replace, move, copy, test)."""
    if not isinstance(ops, list):
        raise ApiError.bad_request("a JSON patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise ApiError.bad_request(f"invalid JSON patch operation {op!r}")
        parts = _pointer(str(op["path"]))
        try:
            if op["op"] == "test":
                if _walk(doc, parts) != op.get("value"):
                    raise ApiError(422, "Invalid", f"the JSON patch test at {op['path']} failed")
                continue
            if op["op"] in ("move", "copy"):
                source = _pointer(str(op.get("from", "")))
                value = copy.deepcopy(_walk(doc, source))
                if op["op"] == "move":
                    doc = _remove(doc, source)
                doc = _add(doc, parts, value)
            elif op["op"] == "add":
                doc = _add(doc, parts, copy.deepcopy(op.get("value")))
            elif op["op"] == "remove":
                doc = _remove(doc, parts)
            elif op["op"] == "replace":
                _walk(doc, parts)  # must exist
                doc = _add(_remove(doc, parts), parts, copy.deepcopy(op.get("value")))
            else:
                raise ApiError.bad_request(f"unknown JSON patch op {op['op']!r}")
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise ApiError(
                422, "Invalid", f"the JSON patch could not be applied at {op['path']}: {exc}"
            ) from exc
    return doc


def _add(doc: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    parent = _walk(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, list):
        parent.insert(len(parent) if last == "-" else int(last), value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise KeyError(last)
    return doc


def _remove(doc: Any, parts: list[str]) -> Any:
    if not parts:
        return None
    parent = _walk(doc, parts[:-1])
    if isinstance(parent, list):
        del parent[int(parts[-1])]
    else:
        del parent[parts[-1]]
    return doc


# --------------------------------------------------------------------------------------------
# Selectors

Matcher = Callable[[dict[str, str]], bool]
_SET_RE = re.compile(r"^\s*([^\s!=(),]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_requirements(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def parse_label_selector(text: str) -> list[Matcher]:
    """``a=b,c!=d,e,!f,g in (x,y),h notin (z)`` as matchers over a label dict."""
    matchers: list[Matcher] = []
    for req in _split_requirements(text):
        matchers.append(_label_requirement(req))
    return matchers


def _label_requirement(req: str) -> Matcher:
    found = _SET_RE.match(req)
    if found:
        key, op, values = found.group(1), found.group(2), found.group(3)
        options = {v.strip() for v in values.split(",") if v.strip()}
        inside = op == "in"

        def in_set(lb: dict[str, str]) -> bool:
            return (lb.get(key) in options) == inside

        return in_set
    if "=" in req:
        negate = "!=" in req
        key, value = (p.strip() for p in req.replace("!=", "=").replace("==", "=").split("=", 1))

        def equals(lb: dict[str, str]) -> bool:
            return (lb.get(key) == value) != negate

        return equals
    if re.fullmatch(r"!?[A-Za-z0-9./_-]+", req):
        absent, key = req.startswith("!"), req.lstrip("!")

        def exists(lb: dict[str, str]) -> bool:
            return (key in lb) != absent

        return exists
    raise ApiError.bad_request(f"unable to parse requirement: {req!r}")


FIELDS: dict[str, tuple[str, ...]] = {
    "pods": (
        "spec.nodeName",
        "status.phase",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "status.podIP",
    ),
    "nodes": ("spec.unschedulable",),
    "namespaces": ("status.phase",),
}


def parse_field_selector(res: Resource, text: str) -> list[Callable[[Obj], bool]]:
    allowed = ("metadata.name", "metadata.namespace", *FIELDS.get(res.plural, ()))
    matchers: list[Callable[[Obj], bool]] = []
    for req in _split_requirements(text):
        negate = "!=" in req
        key, _, value = req.replace("!=", "=").replace("==", "=").partition("=")
        key, value = key.strip(), value.strip()
        if key not in allowed:
            raise ApiError.bad_request(f"field label not supported: {key}")
        matchers.append(_field_requirement(key, value, negate))
    return matchers


def _field_requirement(key: str, value: str, negate: bool) -> Callable[[Obj], bool]:
    def match(obj: Obj) -> bool:
        current: Any = obj
        for part in key.split("."):
            current = current.get(part) if isinstance(current, dict) else None
        text_value = "" if current is None else str(current)
        if isinstance(current, bool):
            text_value = "true" if current else "false"
        return (text_value == value) != negate

    return match


# --------------------------------------------------------------------------------------------
# Errors


class ApiError(Exception):
    """An error answered as a ``kind: Status`` object."""

    def __init__(self, code: int, reason: str, message: str, details: Obj | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> Obj:
        body: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body

    @classmethod
    def not_found(cls, res: Resource, name: str) -> ApiError:
        return cls(
            404,
            "NotFound",
            f'{res.qualified} "{name}" not found',
            {"name": name, "group": res.group, "kind": res.plural},
        )

    @classmethod
    def no_route(cls) -> ApiError:
        return cls(404, "NotFound", "the server could not find the requested resource", {})

    @classmethod
    def bad_request(cls, message: str) -> ApiError:
        return cls(400, "BadRequest", message)


# --------------------------------------------------------------------------------------------
# Store: the objects in etcd, heartbeats as files


def empty_state() -> Obj:
    return {"rv": 1, "objects": {}, "config": copy.deepcopy(DEFAULT_CONFIG)}


class Txn:
    """A read-modify-write of the whole state, under the store's lock."""

    def __init__(self, state: Obj) -> None:
        self.state = state
        self.changed = False
        self.discard = False

    @property
    def objects(self) -> dict[str, Obj]:
        objects: dict[str, Obj] = self.state["objects"]
        return objects

    @property
    def config(self) -> Obj:
        config: Obj = self.state["config"]
        return config

    def get(self, res: Resource, namespace: str, name: str) -> Obj | None:
        return self.objects.get(res.key(namespace, name))

    def put(self, res: Resource, obj: Obj) -> Obj:
        self.state["rv"] = int(self.state["rv"]) + 1
        md = meta(obj)
        md["resourceVersion"] = str(self.state["rv"])
        self.objects[res.key(md.get("namespace", ""), md["name"])] = obj
        self.changed = True
        return obj

    def delete(self, res: Resource, namespace: str, name: str) -> Obj | None:
        obj = self.objects.pop(res.key(namespace, name), None)
        if obj is not None:
            self.state["rv"] = int(self.state["rv"]) + 1
            self.changed = True
        return obj

    def items(self, res: Resource, namespace: str | None = None) -> list[Obj]:
        prefix = res.prefix(namespace)
        return [obj for key, obj in sorted(self.objects.items()) if key.startswith(prefix)]


class Store:
    """The objects live in etcd under one key, read-modify-written under a lock key (a
    :class:`Txn` is one such write); the shared directory keeps what is not the cluster's data:
    heartbeats (the kubelets' leases), the API's token and certificate, the seed, the audit log."""

    def __init__(self, root: Path, etcd: ec.EtcdClient) -> None:
        self.root = root
        self.etcd = etcd
        self.heartbeat_dir = root / "heartbeats"
        self.seed_path = root / "seed.json"
        self._cache: tuple[int, Obj] | None = None
        self._cache_lock = threading.Lock()
        self._owner = f"{socket.gethostname()}:{os.getpid()}"

    def read(self) -> Obj:
        """The current state (a linearizable read: fails without quorum; cached by revision:
        never modify it). Raises EtcdUnavailable."""
        head = self.etcd.get(STATE_KEY, keys_only=True)
        if head is None:
            return empty_state()
        with self._cache_lock:
            if self._cache is not None and self._cache[0] == head["mod_revision"]:
                return self._cache[1]
        kv = self.etcd.get(STATE_KEY)
        if kv is None:
            return empty_state()
        state: Obj = json.loads(kv["value"])
        with self._cache_lock:
            self._cache = (kv["mod_revision"], state)
        return state

    def quorum(self) -> bool:
        """Whether etcd answers a linearizable read (it has a leader and quorum)."""
        try:
            self.etcd.get(STATE_KEY, keys_only=True, timeout=1.5)
        except ec.EtcdUnavailable:
            return False
        return True

    def _lock(self) -> tuple[bytes, Obj]:
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            now_ms = int(time.time() * 1000)
            token = f"{now_ms + LOCK_TTL_MS:016d}|{self._owner}|{secrets.token_hex(4)}".encode()
            expired = f"{now_ms:016d}".encode()
            for compare in (
                ec.compare_missing(LOCK_KEY),
                ec.compare_value(LOCK_KEY, "LESS", expired),  # its holder died holding it
            ):
                answer = self.etcd.txn(
                    [compare], [ec.put_op(LOCK_KEY, token), ec.range_op(STATE_KEY)]
                )
                if answer.get("succeeded"):
                    kvs = answer["responses"][1]["response_range"].get("kvs") or []
                    state = json.loads(ec.unb64(kvs[0]["value"])) if kvs else empty_state()
                    return token, state
            if time.monotonic() > deadline:
                raise ec.EtcdUnavailable("the state lock stays taken")
            time.sleep(0.005 + secrets.randbelow(25) / 1000)

    def _unlock(self, token: bytes) -> None:
        with contextlib.suppress(ec.EtcdUnavailable):  # else it expires after LOCK_TTL_MS
            self.etcd.txn([ec.compare_value(LOCK_KEY, "EQUAL", token)], [ec.delete_op(LOCK_KEY)])

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Txn]:
        token, state = self._lock()
        txn = Txn(state)
        try:
            yield txn
        except BaseException:
            self._unlock(token)
            raise
        if not txn.changed or txn.discard:
            self._unlock(token)
            return
        data = json.dumps(state, separators=(",", ":")).encode()
        answer = self.etcd.txn(
            [ec.compare_value(LOCK_KEY, "EQUAL", token)],
            [ec.put_op(STATE_KEY, data), ec.delete_op(LOCK_KEY)],
        )
        if not answer.get("succeeded"):
            raise ec.EtcdUnavailable("the state lock expired before the write")
        with self._cache_lock:
            self._cache = (int(answer["header"]["revision"]), state)

    def beat(self, node: str, role: str, now: float | None = None) -> None:
        self.heartbeat_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.heartbeat_dir / f".{node}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({"time": now or time.time(), "role": role}), encoding="utf-8")
        tmp.replace(self.heartbeat_dir / f"{node}.json")

    def heartbeats(self) -> dict[str, float]:
        beats: dict[str, float] = {}
        if not self.heartbeat_dir.is_dir():
            return beats
        for path in self.heartbeat_dir.glob("*.json"):
            try:
                beats[path.stem] = float(json.loads(path.read_text(encoding="utf-8"))["time"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return beats

    def token(self) -> str:
        return (self.root / "token").read_text(encoding="utf-8").strip()


# --------------------------------------------------------------------------------------------
# Object life cycle


def new_metadata(obj: Obj, res: Resource, namespace: str, now: float) -> None:
    md = meta(obj)
    if not md.get("name"):
        if md.get("generateName"):
            md["name"] = f"{md['generateName']}{short_hash(uuid.uuid4().hex, 5)}"
        else:
            raise ApiError(
                422,
                "Invalid",
                f"{res.kind} is invalid: metadata.name: "
                "Required value: name or generateName is required",
            )
    if res.namespaced:
        md["namespace"] = namespace or md.get("namespace") or "default"
    else:
        md.pop("namespace", None)
    md["uid"] = str(uuid.uuid4())
    md["creationTimestamp"] = rfc3339(now)
    for transient in ("resourceVersion", "deletionTimestamp", "managedFields"):
        md.pop(transient, None)
    if res.has_spec:
        md["generation"] = 1
    obj["apiVersion"] = res.group_version
    obj["kind"] = res.kind


def apply_defaults(res: Resource, obj: Obj) -> None:
    """The few defaults the model needs (selectors, templates, namespace phase...)."""
    name = meta(obj)["name"]
    if res in WORKLOADS:
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        selector = spec.setdefault("selector", {})
        match_labels = (
            selector.setdefault("matchLabels", {"app": name})
            if not selector.get("matchExpressions")
            else selector.get("matchLabels", {})
        )
        template = spec.setdefault("template", {})
        template.setdefault("metadata", {}).setdefault("labels", dict(match_labels))
        containers = template.setdefault("spec", {}).setdefault("containers", [])
        if not containers:
            containers.append({"name": name, "image": f"registry.local/{name}:latest"})
        if res is STATEFULSETS:
            spec.setdefault("serviceName", name)
        obj.setdefault("status", {})
    elif res is NAMESPACES:
        obj.setdefault("spec", {"finalizers": ["kubernetes"]})
        obj["status"] = {"phase": "Active"}
        meta(obj).setdefault("labels", {})["kubernetes.io/metadata.name"] = name
    elif res is HPAS:  # no controller: the status a new HPA has before its first sync
        obj["status"] = {"currentReplicas": 0, "desiredReplicas": 0}
    elif res is FLUX_GIT:
        obj.setdefault("spec", {}).setdefault("interval", "1m0s")
    elif res in (FLUX_KS, FLUX_HR):
        obj.setdefault("spec", {}).setdefault("interval", "10m0s")


def bump_generation(res: Resource, old: Obj, new: Obj) -> None:
    if not res.has_spec:
        return
    changed = any(
        old.get(k) != new.get(k)
        for k in set(old) | set(new)
        if k not in ("metadata", "status", "kind", "apiVersion")
    )
    generation = int(old.get("metadata", {}).get("generation", 1))
    meta(new)["generation"] = generation + 1 if changed else generation


def preserve_identity(old: Obj, new: Obj) -> None:
    md, old_md = meta(new), old["metadata"]
    for field in ("uid", "creationTimestamp", "name", "namespace", "generation"):
        if field in old_md:
            md[field] = old_md[field]
        else:
            md.pop(field, None)
    new["apiVersion"], new["kind"] = old["apiVersion"], old["kind"]


def seed_state(txn: Txn, seed: Obj, now: float) -> None:
    """Fill an empty state from a seed: ``{"config": {...}, "objects": [...]}``."""
    txn.state["config"] = merge_patch(txn.config, seed.get("config") or {})
    for raw in seed.get("objects") or []:
        obj = copy.deepcopy(raw)
        res = resource_for(str(obj.get("apiVersion")), str(obj.get("kind")))
        if res is None:
            raise ValueError(f"the seed has an object of unknown kind: {obj.get('kind')}")
        namespace = str(obj.get("metadata", {}).get("namespace") or "default")
        status = obj.pop("status", None)
        new_metadata(obj, res, namespace, now)
        apply_defaults(res, obj)
        if isinstance(status, dict):
            obj["status"] = merge_patch(obj.get("status", {}), status)
        txn.put(res, obj)
    txn.state["seeded"] = rfc3339(now)
    txn.state["seededAt"] = now


def ensure_seeded(store: Store) -> None:
    with store.transaction() as txn:
        if txn.state.get("seeded"):
            return
        seed: Obj = {}
        if store.seed_path.exists():
            seed = json.loads(store.seed_path.read_text(encoding="utf-8"))
        seed_state(txn, seed, time.time())


def node_ip() -> str:
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


def register_node(store: Store, name: str, role: str, now: float) -> None:
    """What a kubelet does at start: create (or refresh) its Node object."""
    labels = {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/instance-type": "k3s",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "node.kubernetes.io/instance-type": "k3s",
    }
    if role == "server":
        labels.update(
            {
                "node-role.kubernetes.io/control-plane": "true",
                "node-role.kubernetes.io/etcd": "true",
                "node-role.kubernetes.io/master": "true",
            }
        )
    address = node_ip()
    with store.transaction() as txn:
        existing = txn.get(NODES, "", name)
        node: Obj = copy.deepcopy(existing) if existing else {"metadata": {"name": name}}
        if existing is None:
            new_metadata(node, NODES, "", now)
            index = len(txn.items(NODES))
            node["spec"] = {
                "podCIDR": f"10.42.{index}.0/24",
                "podCIDRs": [f"10.42.{index}.0/24"],
                "providerID": f"k3s://{name}",
            }
        md = meta(node)
        md.setdefault("labels", {}).update(labels)
        md.setdefault("annotations", {}).update(
            {
                "k3s.io/hostname": name,
                "k3s.io/internal-ip": address,
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            }
        )
        capacity = {
            "cpu": "2",
            "ephemeral-storage": "61255492Ki",
            "hugepages-2Mi": "0",
            "memory": "2030940Ki",
            "pods": "110",
        }
        node["status"] = {
            **node.get("status", {}),
            "capacity": capacity,
            "allocatable": dict(capacity),
            "addresses": [
                {"type": "InternalIP", "address": address},
                {"type": "Hostname", "address": name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": str(uuid.uuid4()),
                "containerRuntimeVersion": "containerd://1.7.22-k3s1",
                "kernelVersion": os.uname().release,
                "kubeProxyVersion": K8S_VERSION,
                "kubeletVersion": K8S_VERSION,
                "machineID": "",
                "operatingSystem": "linux",
                "osImage": "Debian GNU/Linux 12 (bookworm)",
                "systemUUID": str(uuid.uuid5(uuid.NAMESPACE_DNS, name)),
            },
        }
        node_status_view(node, now, now, grace=1.0)
        txn.put(NODES, node)
    store.beat(name, role, now)


NODE_CONDITIONS = (
    ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ("Ready", "KubeletReady", "kubelet is posting ready status"),
)


def node_status_view(node: Obj, last_beat: float | None, now: float, grace: float) -> bool:
    """Set a Node's conditions and taints from its kubelet's last heartbeat; return readiness."""
    ready = last_beat is not None and now - last_beat <= grace
    status = node.setdefault("status", {})
    old = {c.get("type"): c for c in status.get("conditions") or [] if isinstance(c, dict)}
    beat_time = rfc3339(last_beat if last_beat is not None else now)
    conditions = []
    for ctype, reason, message in NODE_CONDITIONS:
        if ready:
            value = "True" if ctype == "Ready" else "False"
            entry = {"type": ctype, "status": value, "reason": reason, "message": message}
        else:
            entry = {
                "type": ctype,
                "status": "Unknown",
                "reason": "NodeStatusUnknown",
                "message": "Kubelet stopped posting node status.",
            }
        previous = old.get(ctype)
        same = previous is not None and previous.get("status") == entry["status"]
        entry["lastHeartbeatTime"] = beat_time
        entry["lastTransitionTime"] = (
            previous.get("lastTransitionTime", rfc3339(now)) if same and previous else rfc3339(now)
        )
        conditions.append(entry)
    status["conditions"] = conditions
    spec = node.setdefault("spec", {})
    managed = (TAINT_UNREACHABLE, TAINT_UNSCHEDULABLE, "node.kubernetes.io/not-ready")
    old_taints = {(t.get("key"), t.get("effect")): t for t in spec.get("taints") or []}
    taints = [t for t in spec.get("taints") or [] if t.get("key") not in managed]
    if spec.get("unschedulable"):
        taints.append(
            {
                "key": TAINT_UNSCHEDULABLE,
                "effect": "NoSchedule",
                "timeAdded": old_taints.get((TAINT_UNSCHEDULABLE, "NoSchedule"), {}).get(
                    "timeAdded", rfc3339(now)
                ),
            }
        )
    if not ready:
        for effect in ("NoSchedule", "NoExecute"):
            taint = {"key": TAINT_UNREACHABLE, "effect": effect}
            if effect == "NoExecute":
                taint["timeAdded"] = old_taints.get((TAINT_UNREACHABLE, effect), {}).get(
                    "timeAdded", rfc3339(now)
                )
            taints.append(taint)
    if taints:
        spec["taints"] = taints
    else:
        spec.pop("taints", None)
    return ready


def _node_signature(node: Obj) -> str:
    conds = [(c.get("type"), c.get("status")) for c in node.get("status", {}).get("conditions", [])]
    taints = [(t.get("key"), t.get("effect")) for t in node.get("spec", {}).get("taints", [])]
    return json.dumps([conds, taints])


# --------------------------------------------------------------------------------------------
# Reconcile: node lifecycle, scheduler + kubelets, workload controllers, Flux


def reconcile(txn: Txn, beats: dict[str, float], now: float) -> None:
    cfg = txn.config
    grace = float(cfg.get("nodeGraceSeconds", 3.0))
    ready_nodes: set[str] = set()
    schedulable: list[str] = []
    nodes = txn.items(NODES)
    waiting = set(cfg.get("initialNodes") or []) - {n["metadata"]["name"] for n in nodes}
    booting = bool(waiting) and now - float(txn.state.get("seededAt", 0)) < float(
        cfg.get("initialNodesWaitSeconds", 30.0)
    )
    for node in nodes:
        name = node["metadata"]["name"]
        view = copy.deepcopy(node)
        ready = node_status_view(view, beats.get(name), now, grace)
        if ready:
            ready_nodes.add(name)
            if not view.get("spec", {}).get("unschedulable") and not booting:
                schedulable.append(name)
        if _node_signature(view) != _node_signature(node):
            txn.put(NODES, view)
    expire_terminating(txn, now, ready_nodes)
    for _ in range(4):  # dependency chains settle within one tick
        before = int(txn.state["rv"])
        reconcile_workloads(txn, now, ready_nodes, schedulable, beats)
        reconcile_flux(txn, now)
        if int(txn.state["rv"]) == before:
            break
    reconcile_budgets(txn, now)


def expire_terminating(txn: Txn, now: float, ready_nodes: set[str]) -> None:
    """Remove the Terminating Pods whose grace is over (and whose kubelet confirms)."""
    for pod in txn.items(PODS):
        node = pod.get("spec", {}).get("nodeName")
        if behaviour.termination_over(pod, now, node in ready_nodes):
            txn.delete(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])


def reconcile_budgets(txn: Txn, now: float) -> None:
    """The disruption controller: each PodDisruptionBudget's status from its Pods."""
    pods = txn.items(PODS)
    for pdb in txn.items(PDBS):
        status = behaviour.pdb_status(pdb, pods, now)
        if status != pdb.get("status"):
            fresh = copy.deepcopy(pdb)
            fresh["status"] = status
            txn.put(PDBS, fresh)


def workload_key(res: Resource, obj: Obj) -> str:
    return res.key(obj["metadata"]["namespace"], obj["metadata"]["name"])


def _selector_string(obj: Obj) -> str:
    labels = obj.get("spec", {}).get("selector", {}).get("matchLabels", {}) or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def reconcile_workloads(  # noqa: PLR0912 - one controller loop, kept in one piece
    txn: Txn,
    now: float,
    ready_nodes: set[str],
    schedulable: list[str],
    beats: dict[str, float],
) -> None:
    cfg = txn.config
    start_delay = float(cfg.get("podStartSeconds", 1.0))
    eviction = float(cfg.get("podEvictionSeconds", 300.0))
    pods_by_owner: dict[str, list[Obj]] = {}
    for pod in txn.items(PODS):
        pods_by_owner.setdefault(annotations_of(pod).get(ANN_OWNER, ""), []).append(pod)
    load = dict.fromkeys(schedulable, 0)
    for pods in pods_by_owner.values():
        for pod in pods:
            node = pod.get("spec", {}).get("nodeName")
            if node in load:
                load[node] += 1
    owners = {workload_key(res, obj): (res, obj) for res in WORKLOADS for obj in txn.items(res)}
    for owner, pods in pods_by_owner.items():
        if owner and owner not in owners:  # garbage collection of orphans
            for pod in pods:
                txn.delete(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])
    for key, (res, obj) in owners.items():
        pods = pods_by_owner.get(key, [])
        ns = obj["metadata"]["namespace"]
        kept: list[Obj] = []
        for pod in pods:  # pods on nodes gone too long are evicted (taint-based eviction)
            node = pod.get("spec", {}).get("nodeName")
            beat = beats.get(node or "")
            if node and node not in ready_nodes and (beat is None or now - beat > eviction):
                txn.delete(PODS, ns, pod["metadata"]["name"])
            else:
                kept.append(pod)
        # Terminating Pods are not counted (a Deployment replaces them at once); a StatefulSet
        # makes a Pod of the same name only after the old one is gone.
        leaving = {p["metadata"]["name"] for p in kept if behaviour.is_terminating(p)}
        pods = [p for p in kept if p["metadata"]["name"] not in leaving]
        desired = int(obj.get("spec", {}).get("replicas", 1) or 0)
        if res is STATEFULSETS:
            pods.sort(key=lambda p: int(p["metadata"]["name"].rsplit("-", 1)[-1]))
        else:
            pods.sort(
                key=lambda p: (p["metadata"].get("creationTimestamp", ""), p["metadata"]["name"])
            )
        while len(pods) > desired:
            victim = pods.pop()
            txn.delete(PODS, ns, victim["metadata"]["name"])
        existing = {p["metadata"]["name"] for p in pods} | leaving
        grace = int(cfg.get("terminationGraceSeconds", 30))
        while len(pods) < desired:
            pod = new_pod(res, obj, existing, now, grace)
            existing.add(pod["metadata"]["name"])
            pods.append(txn.put(PODS, pod))
        ready_count = 0
        for pod in pods:
            updated = kubelet_view(pod, now, ready_nodes, schedulable, load, start_delay)
            if updated != pod:
                txn.put(PODS, updated)
            if is_ready(updated):
                ready_count += 1
        new_status = workload_status(res, obj, len(pods), ready_count, now)
        if new_status != obj.get("status"):
            fresh = copy.deepcopy(obj)
            fresh["status"] = new_status
            txn.put(res, fresh)


def template_hash(owner: Obj) -> str:
    """The ``pod-template-hash`` of a workload's current template."""
    return short_hash(json.dumps(owner.get("spec", {}).get("template", {}), sort_keys=True), 10)


def new_pod(res: Resource, owner: Obj, existing: set[str], now: float, grace: int = 30) -> Obj:
    md = owner["metadata"]
    template = owner.get("spec", {}).get("template", {})
    labels = dict(template.get("metadata", {}).get("labels", {}))
    template_hash = short_hash(json.dumps(template, sort_keys=True), 10)
    if res is STATEFULSETS:
        index = 0
        while f"{md['name']}-{index}" in existing:
            index += 1
        name = f"{md['name']}-{index}"
        labels.update(
            {
                "controller-revision-hash": f"{md['name']}-{template_hash}",
                "statefulset.kubernetes.io/pod-name": name,
                "apps.kubernetes.io/pod-index": str(index),
            }
        )
        owner_ref = {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "name": md["name"],
            "uid": md["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    else:
        name = f"{md['name']}-{template_hash}-{short_hash(uuid.uuid4().hex, 5)}"
        labels["pod-template-hash"] = template_hash
        owner_ref = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": f"{md['name']}-{template_hash}",
            "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, md["uid"] + template_hash)),
            "controller": True,
            "blockOwnerDeletion": True,
        }
    pod: Obj = {
        "metadata": {
            "name": name,
            "namespace": md["namespace"],
            "labels": labels,
            "annotations": {ANN_OWNER: workload_key(res, owner)},
            "ownerReferences": [owner_ref],
        },
        "spec": {
            "terminationGracePeriodSeconds": grace,
            **copy.deepcopy(template.get("spec", {})),
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "serviceAccountName": "default",
        },
        "status": {"phase": "Pending", "qosClass": "BestEffort"},
    }
    new_metadata(pod, PODS, md["namespace"], now)
    pod["metadata"].pop("generation", None)
    return pod


def kubelet_view(
    pod: Obj,
    now: float,
    ready_nodes: set[str],
    schedulable: list[str],
    load: dict[str, int],
    start_delay: float,
) -> Obj:
    """Schedule a pending Pod and set its status as its node's kubelet would."""
    pod = copy.deepcopy(pod)
    spec, status, md = pod.setdefault("spec", {}), pod.setdefault("status", {}), pod["metadata"]
    annotations = md.setdefault("annotations", {})
    if not spec.get("nodeName") and schedulable:
        target = min(schedulable, key=lambda n: (load.get(n, 0), n))
        load[target] = load.get(target, 0) + 1
        spec["nodeName"] = target
    node = spec.get("nodeName")
    containers = spec.get("containers") or [{"name": "main", "image": "unknown"}]
    if not node:
        status.update({"phase": "Pending"})
        status["conditions"] = [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "lastProbeTime": None,
                "lastTransitionTime": md["creationTimestamp"],
                "message": f"0/{len(load)} nodes are available: no Ready, schedulable node.",
            }
        ]
        annotations.pop(ANN_STARTED, None)
        return pod
    if node in ready_nodes:
        started = float(annotations.setdefault(ANN_STARTED, f"{now:.3f}"))
        ready = now - started >= start_delay
    else:
        annotations.pop(ANN_STARTED, None)
        started, ready = now, False
    value = "True" if ready else "False"
    index = sum(ord(c) for c in md["name"]) % 250 + 2
    conditions: list[Obj] = [
        {"type": "PodReadyToStartContainers", "status": "True"},
        {"type": "Initialized", "status": "True"},
        {"type": "Ready", "status": value},
        {"type": "ContainersReady", "status": value},
        {"type": "PodScheduled", "status": "True"},
    ]
    previous = {c.get("type"): c for c in status.get("conditions") or []}
    for cond in conditions:
        old = previous.get(cond["type"])
        cond["lastProbeTime"] = None
        cond["lastTransitionTime"] = (
            old["lastTransitionTime"]
            if old and old.get("status") == cond["status"]
            else rfc3339(now)
        )
        if cond["type"] in ("Ready", "ContainersReady") and not ready:
            cond["reason"] = "ContainersNotReady"
            names = " ".join(str(c["name"]) for c in containers)
            cond["message"] = f"containers with unready status: [{names}]"
    status.update(
        {
            "phase": "Running",
            "conditions": conditions,
            "hostIP": node,
            "podIP": f"10.42.{sum(ord(c) for c in node) % 250}.{index}",
            "startTime": status.get("startTime") or rfc3339(now),
            "containerStatuses": [
                {
                    "name": c["name"],
                    "image": c.get("image", ""),
                    "imageID": "",
                    "containerID": f"containerd://{sha1_hex(md['uid'] + c['name'])}",
                    "ready": ready,
                    "started": node in ready_nodes,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": rfc3339(started)}}
                    if node in ready_nodes
                    else {"waiting": {"reason": "ContainerCreating"}},
                }
                for c in containers
            ],
        }
    )
    return pod


def workload_status(res: Resource, obj: Obj, count: int, ready: int, now: float) -> Obj:
    """Status as the real controllers write it (zero counts omitted where the API omits them)."""
    generation = obj.get("metadata", {}).get("generation", 1)
    old = obj.get("status", {}) or {}
    desired = int(obj.get("spec", {}).get("replicas", 1) or 0)
    status: Obj = {"observedGeneration": generation}
    if res is DEPLOYMENTS:
        for field, value in (
            ("replicas", count),
            ("updatedReplicas", count),
            ("readyReplicas", ready),
            ("availableReplicas", ready),
            ("unavailableReplicas", max(count - ready, 0)),
        ):
            if value:
                status[field] = value
        probe = {"status": copy.deepcopy(old)}
        available = ready >= desired
        set_condition(
            probe,
            "Available",
            "True" if available else "False",
            "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
            "Deployment has minimum availability."
            if available
            else "Deployment does not have minimum availability.",
            now,
            generation=False,
        )
        set_condition(
            probe,
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            f'ReplicaSet "{obj["metadata"]["name"]}-{template_hash(obj)}" has '
            "successfully progressed.",
            now,
            generation=False,
        )
        for cond in probe["status"]["conditions"]:
            cond["lastUpdateTime"] = cond["lastTransitionTime"]
        status["conditions"] = probe["status"]["conditions"]
    else:
        revision = f"{obj['metadata']['name']}-{template_hash(obj)}"
        status.update(
            {
                "replicas": count,
                "availableReplicas": ready,
                "currentReplicas": count,
                "updatedReplicas": count,
                "currentRevision": revision,
                "updateRevision": revision,
                "collisionCount": 0,
            }
        )
        if ready:
            status["readyReplicas"] = ready
    return status


def _owner_kustomization(txn: Txn, obj: Obj) -> Obj | None:
    labels = labels_of(obj)
    name = labels.get(LABEL_KS_NAME)
    if not name:
        return None
    return txn.get(FLUX_KS, labels.get(LABEL_KS_NS, "flux-system"), name)


def _handle_request(obj: Obj) -> None:
    requested = annotations_of(obj).get(ANN_REQUESTED)
    if requested:
        obj.setdefault("status", {})["lastHandledReconcileAt"] = requested


def reconcile_flux(txn: Txn, now: float) -> None:  # noqa: PLR0912 - three controllers
    gitea = txn.config.get("gitea", {})
    for repo in txn.items(FLUX_GIT):
        if repo.get("spec", {}).get("suspend"):
            continue
        new = copy.deepcopy(repo)
        spec = new.get("spec", {})
        url = str(spec.get("url", ""))
        branch = str((spec.get("ref") or {}).get("branch") or "master")
        host = urlsplit(url).hostname or ""
        commit = sha1_hex(f"{url}#{branch}")
        failure = None
        if gitea.get("hostMatch") and str(gitea["hostMatch"]) in host:
            deployment = txn.get(
                DEPLOYMENTS, gitea.get("namespace", "gitea"), gitea.get("name", "gitea")
            )
            branches = gitea.get("branches") or {}
            if isinstance(branches, list):
                branches = {b: sha1_hex(f"{url}#{b}") for b in branches}
            up = (
                deployment is not None
                and int(deployment.get("status", {}).get("readyReplicas", 0) or 0) >= 1
            )
            if not up:
                failure = (
                    f"failed to checkout and determine revision: unable to list remote "
                    f"for '{url}': Get \"{url}/info/refs?service=git-upload-pack\": dial "
                    f"tcp {host}:3000: connect: connection refused"
                )
            elif branch not in branches:
                failure = (
                    f"failed to checkout and determine revision: unable to clone "
                    f"'{url}': couldn't find remote ref \"refs/heads/{branch}\""
                )
            else:
                commit = str(branches[branch])
        ns, name = new["metadata"]["namespace"], new["metadata"]["name"]
        status = new.setdefault("status", {})
        if failure:
            set_condition(new, "Ready", "False", "GitOperationFailed", failure, now)
        else:
            revision = f"{branch}@sha1:{commit}"
            artifact = status.get("artifact") or {}
            if artifact.get("revision") != revision:
                status["artifact"] = {
                    "digest": "sha256:" + hashlib.sha256(revision.encode()).hexdigest(),
                    "lastUpdateTime": rfc3339(now),
                    "path": f"gitrepository/{ns}/{name}/{commit}.tar.gz",
                    "revision": revision,
                    "size": 20480,
                    "url": f"http://source-controller.flux-system.svc.cluster.local./"
                    f"gitrepository/{ns}/{name}/{commit}.tar.gz",
                }
            set_condition(
                new, "Ready", "True", "Succeeded", f"stored artifact for revision '{revision}'", now
            )
        status["observedGeneration"] = new["metadata"].get("generation", 1)
        _handle_request(new)
        if new != repo:
            txn.put(FLUX_GIT, new)

    for ks in txn.items(FLUX_KS):
        if ks.get("spec", {}).get("suspend"):
            continue
        new = copy.deepcopy(ks)
        spec, ns = new.get("spec", {}), new["metadata"]["namespace"]
        source_ref = spec.get("sourceRef") or {}
        source = None
        if source_ref.get("kind", "GitRepository") == "GitRepository":
            source = txn.get(
                FLUX_GIT, source_ref.get("namespace") or ns, str(source_ref.get("name", ""))
            )
        status = new.setdefault("status", {})
        blocked = None
        if source is None:
            blocked = (
                "ArtifactFailed",
                f"{source_ref.get('kind', 'GitRepository')}."
                f'source.toolkit.fluxcd.io "{source_ref.get("name")}" not found',
            )
        elif not is_ready(source):
            blocked = ("ArtifactFailed", "Source artifact not found, retrying in 30s")
        else:
            for dep in spec.get("dependsOn") or []:
                dep_ns = dep.get("namespace") or ns
                if not is_ready(txn.get(FLUX_KS, dep_ns, str(dep.get("name")))):
                    blocked = (
                        "DependencyNotReady",
                        f"dependency '{dep_ns}/{dep.get('name')}' is not ready",
                    )
                    break
        if blocked:
            set_condition(new, "Ready", "False", blocked[0], blocked[1], now)
        else:
            assert source is not None
            revision = source["status"]["artifact"]["revision"]
            status["lastAttemptedRevision"] = revision
            status["lastAppliedRevision"] = revision
            set_condition(
                new,
                "Ready",
                "True",
                "ReconciliationSucceeded",
                f"Applied revision: {revision}",
                now,
            )
            drive_workloads(txn, new)
        status["observedGeneration"] = new["metadata"].get("generation", 1)
        _handle_request(new)
        if new != ks:
            txn.put(FLUX_KS, new)

    for release in txn.items(FLUX_HR):
        if release.get("spec", {}).get("suspend"):
            continue
        new = copy.deepcopy(release)
        owner = _owner_kustomization(txn, new)
        chart = new.get("spec", {}).get("chart", {}).get("spec", {})
        name, ns = new["metadata"]["name"], new["metadata"]["namespace"]
        target = new.get("spec", {}).get("targetNamespace") or ns
        version = str(chart.get("version", "1.0.0"))
        if owner is not None and not is_ready(owner):
            set_condition(
                new,
                "Ready",
                "False",
                "DependencyNotReady",
                f"Kustomization '{owner['metadata']['namespace']}/"
                f"{owner['metadata']['name']}' is not ready",
                now,
            )
        else:
            message = (
                f"Helm install succeeded for release {target}/{name}.v1 with chart "
                f"{chart.get('chart', name)}@{version}"
            )
            set_condition(new, "Ready", "True", "InstallSucceeded", message, now)
            set_condition(new, "Released", "True", "InstallSucceeded", message, now)
            new["status"]["lastAttemptedRevision"] = version
        new["status"]["observedGeneration"] = new["metadata"].get("generation", 1)
        _handle_request(new)
        if new != release:
            txn.put(FLUX_HR, new)


def drive_workloads(txn: Txn, ks: Obj) -> None:
    """A Ready Kustomization applies its manifests: owned workloads get their desired replicas."""
    name, ns = ks["metadata"]["name"], ks["metadata"]["namespace"]
    for res in WORKLOADS:
        for obj in txn.items(res):
            labels = labels_of(obj)
            if labels.get(LABEL_KS_NAME) != name or labels.get(LABEL_KS_NS, ns) != ns:
                continue
            desired = annotations_of(obj).get(ANN_DESIRED)
            if desired is None or not desired.strip().isdigit():
                continue
            if int(obj.get("spec", {}).get("replicas", 1)) != int(desired):
                new = copy.deepcopy(obj)
                new["spec"]["replicas"] = int(desired)
                bump_generation(res, obj, new)
                txn.put(res, new)


# --------------------------------------------------------------------------------------------
# The API


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: bytes
    content_type: str
    accept: str = ""

    @property
    def wants_table(self) -> bool:
        """kubectl get asks for a server-side Table (``as=Table``)."""
        return "as=Table" in self.accept


class Watch:
    """A watch to stream: an iterator of events."""

    def __init__(self, events: Iterator[Obj]) -> None:
        self.events = events


Response = tuple[int, Any]


class Api:
    """Routing and verbs over a :class:`Store`; HTTP-free, so it can be used in-process too."""

    def __init__(self, store: Store, stopping: threading.Event | None = None) -> None:
        self.store = store
        self.stopping = stopping or threading.Event()

    # -- views --------------------------------------------------------------------------------

    def view(
        self,
        res: Resource,
        obj: Obj,
        *,
        with_type: bool = True,
        beats: dict[str, float] | None = None,
    ) -> Obj:
        """An object as clients see it (Nodes get their live conditions)."""
        out = copy.deepcopy(obj)
        if res is NODES:
            state = self.store.read()
            grace = float(state.get("config", {}).get("nodeGraceSeconds", 3.0))
            if beats is None:
                beats = self.store.heartbeats()
            node_status_view(out, beats.get(obj["metadata"]["name"]), time.time(), grace)
        if res is PODS:
            out["metadata"].get("annotations", {}).pop(ANN_STARTED, None)
            out["metadata"].get("annotations", {}).pop(behaviour.ANN_DELETE_AT, None)
        if with_type:
            out = {"apiVersion": res.group_version, "kind": res.kind, **out}
        else:
            out.pop("apiVersion", None)
            out.pop("kind", None)
        return out

    # -- discovery -----------------------------------------------------------------------------

    def discovery(self, parts: list[str]) -> Response:
        versions = group_versions()
        if parts == ["api"]:
            return 200, {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{node_ip()}:6443"}
                ],
            }
        if parts == ["apis"]:
            groups = [self._group(g, v) for g, v in versions.items() if g]
            return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
        if len(parts) == 2 and parts[0] == "apis":
            if not parts[1] or parts[1] not in versions:
                raise ApiError.no_route()
            return 200, {
                "kind": "APIGroup",
                "apiVersion": "v1",
                **self._group(parts[1], versions[parts[1]]),
            }
        group = "" if parts[0] == "api" else parts[1]
        version = parts[1] if parts[0] == "api" else parts[2]
        if version not in versions.get(group, []):
            raise ApiError.no_route()
        resources = []
        for res in RESOURCES:
            if (res.group, res.version) != (group, version):
                continue
            verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
            resources.append(
                {
                    "name": res.plural,
                    "singularName": res.singular,
                    "namespaced": res.namespaced,
                    "kind": res.kind,
                    "verbs": verbs,
                    "shortNames": list(res.short_names),
                }
            )
            for sub in res.subresources:
                entry: Obj = {
                    "name": f"{res.plural}/{sub}",
                    "singularName": "",
                    "namespaced": res.namespaced,
                    "kind": res.kind,
                    "verbs": ["get", "patch", "update"],
                }
                if sub == "scale":
                    entry.update(group="autoscaling", version="v1", kind="Scale")
                if sub == "eviction":
                    entry.update(group="policy", version="v1", kind="Eviction", verbs=["create"])
                resources.append(entry)
        gv = f"{group}/{version}" if group else version
        return 200, {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": gv,
            "resources": resources,
        }

    @staticmethod
    def _group(name: str, versions: list[str]) -> Obj:
        entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
        return {"name": name, "versions": entries, "preferredVersion": entries[0]}

    # -- routing -------------------------------------------------------------------------------

    def handle(self, req: Request) -> Response | Watch:
        parts = [p for p in req.path.split("/") if p]
        if not parts or parts[0] not in ("api", "apis"):
            raise ApiError.no_route()
        if (
            parts in (["api"], ["apis"])
            or (parts[0] == "apis" and len(parts) == 2)
            or (parts[0] == "api" and len(parts) == 2)
            or (parts[0] == "apis" and len(parts) == 3)
        ):
            if req.method != "GET":
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method")
            return self.discovery(parts)
        group = "" if parts[0] == "api" else parts[1]
        version = parts[1] if parts[0] == "api" else parts[2]
        rest = parts[2:] if parts[0] == "api" else parts[3:]
        namespace: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3 and find_resource(group, version, rest[2]):
            namespace, rest = rest[1], rest[2:]
        res = find_resource(group, version, rest[0])
        if res is None or len(rest) > 3 or (namespace is not None and not res.namespaced):
            raise ApiError.no_route()
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub is not None and sub not in res.subresources:
            raise ApiError.no_route()
        if res.namespaced and name is not None and namespace is None:
            raise ApiError.no_route()
        return self.verb(req, res, namespace, name, sub)

    def verb(  # noqa: PLR0911 - one return per verb
        self,
        req: Request,
        res: Resource,
        namespace: str | None,
        name: str | None,
        sub: str | None,
    ) -> Response | Watch:
        method = req.method
        if name is None:
            if method == "GET":
                if req.query.get("watch") in ("true", "1"):
                    return Watch(self.watch(res, namespace, req.query))
                code, listing = self.list(res, namespace, req.query)
                if req.wants_table:
                    return code, as_table(
                        res, listing["items"], listing["metadata"]["resourceVersion"]
                    )
                return code, listing
            if method == "POST":
                return self.create(res, namespace or "", self.body(req), req.query)
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on a collection")
        ns = namespace or ""
        if sub == "eviction":
            if method != "POST":
                raise ApiError(405, "MethodNotAllowed", "evictions can only be created")
            return self.evict(ns, name, req.query, self.options(req))
        if sub == "scale":
            return self.scale(req, res, ns, name)
        if method == "GET":
            obj = self.view(res, self.get(res, ns, name))
            return 200, as_table(res, [obj], obj["metadata"]["resourceVersion"]) if (
                req.wants_table
            ) else obj
        if method == "PUT":
            return self.replace(res, ns, name, self.body(req), sub, req.query)
        if method == "PATCH":
            return self.patch(req, res, ns, name, sub)
        if method == "DELETE":
            return self.delete(res, ns, name, req.query, self.options(req))
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported")

    @staticmethod
    def body(req: Request) -> Any:
        if not req.body:
            raise ApiError.bad_request("the request has no body")
        try:
            return json.loads(req.body)
        except ValueError as exc:
            if "yaml" in req.content_type:
                raise ApiError.bad_request(
                    "the twin's API stand-in reads JSON bodies only (YAML's JSON subset); "
                    "send the apply patch as JSON"
                ) from exc
            raise ApiError.bad_request(f"the body is not valid JSON: {exc}") from exc

    @staticmethod
    def options(req: Request) -> Obj:
        """A DELETE's DeleteOptions body, or an Eviction's ``deleteOptions`` ({} when none)."""
        if not req.body:
            return {}
        try:
            body = json.loads(req.body)
        except ValueError as exc:
            raise ApiError.bad_request(f"the body is not valid JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise ApiError.bad_request("the body must be an object")
        if body.get("kind") == "Eviction":
            body = body.get("deleteOptions") or {}
        return body if isinstance(body, dict) else {}

    # -- verbs ---------------------------------------------------------------------------------

    def get(self, res: Resource, namespace: str, name: str) -> Obj:
        obj: Obj | None = self.store.read()["objects"].get(res.key(namespace, name))
        if obj is None:
            raise ApiError.not_found(res, name)
        return obj

    def _select(self, res: Resource, namespace: str | None, query: dict[str, str]) -> list[Obj]:
        state = self.store.read()
        prefix = res.prefix(namespace)
        labels = parse_label_selector(query.get("labelSelector", ""))
        fields = parse_field_selector(res, query.get("fieldSelector", ""))
        items = []
        for key in sorted(state["objects"]):
            if not key.startswith(prefix):
                continue
            obj = state["objects"][key]
            lb = labels_of(obj)
            if all(m(lb) for m in labels) and all(f(obj) for f in fields):
                items.append(obj)
        return items

    def list(self, res: Resource, namespace: str | None, query: dict[str, str]) -> Response:
        rv = str(self.store.read()["rv"])
        items = self._select(res, namespace, query)
        list_meta: Obj = {"resourceVersion": rv}
        start = 0
        if query.get("continue"):
            try:
                start = int(json.loads(base64.urlsafe_b64decode(query["continue"]))["start"])
            except (ValueError, KeyError, TypeError) as exc:
                raise ApiError.bad_request("invalid continue token") from exc
        items = items[start:]
        beats = self.store.heartbeats() if res is NODES else None
        limit = int(query.get("limit") or 0)
        if limit and len(items) > limit:
            items = items[:limit]
            token = json.dumps({"rv": rv, "start": start + limit}).encode()
            list_meta["continue"] = base64.urlsafe_b64encode(token).decode()
            list_meta["remainingItemCount"] = len(self._select(res, namespace, query)) - (
                start + limit
            )
        return 200, {
            "kind": f"{res.kind}List",
            "apiVersion": res.group_version,
            "metadata": list_meta,
            "items": [self.view(res, obj, with_type=not res.builtin, beats=beats) for obj in items],
        }

    def watch(self, res: Resource, namespace: str | None, query: dict[str, str]) -> Iterator[Obj]:
        deadline = time.monotonic() + min(float(query.get("timeoutSeconds") or 300), 1800)
        since = int(query.get("resourceVersion") or 0)

        def snapshot() -> dict[str, Obj]:
            beats = self.store.heartbeats() if res is NODES else {}
            return {
                f"{o['metadata'].get('namespace', '')}/{o['metadata']['name']}": self.view(
                    res, o, beats=beats
                )
                if res is NODES
                else o
                for o in self._select(res, namespace, query)
            }

        def signature(obj: Obj) -> str:
            conds = [
                c.get("status")
                for c in obj.get("status", {}).get("conditions") or []
                if isinstance(c, dict)
            ]
            return f"{obj['metadata'].get('resourceVersion')}|{conds}"

        known: dict[str, tuple[str, Obj]] = {}
        for key, obj in snapshot().items():
            known[key] = (signature(obj), obj)
            if since == 0 or int(obj["metadata"].get("resourceVersion", 0)) > since:
                yield {"type": "ADDED", "object": self.view(res, obj)}
        while not self.stopping.is_set() and time.monotonic() < deadline:
            time.sleep(0.25)
            current = snapshot()
            for key, obj in current.items():
                sig = signature(obj)
                if key not in known:
                    yield {"type": "ADDED", "object": self.view(res, obj)}
                elif known[key][0] != sig:
                    yield {"type": "MODIFIED", "object": self.view(res, obj)}
                known[key] = (sig, obj)
            for key in [k for k in known if k not in current]:
                yield {"type": "DELETED", "object": self.view(res, known.pop(key)[1])}

    def _check_namespace(self, txn: Txn, res: Resource, namespace: str) -> None:
        if res.namespaced and txn.get(NAMESPACES, "", namespace) is None:
            raise ApiError(
                404,
                "NotFound",
                f'namespaces "{namespace}" not found',
                {"name": namespace, "kind": "namespaces"},
            )

    def _check_type(self, res: Resource, obj: Any) -> Obj:
        if not isinstance(obj, dict):
            raise ApiError.bad_request("the body must be a JSON object")
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if api_version is not None and api_version != res.group_version:
            raise ApiError.bad_request(
                f"the API version in the data ({api_version}) does not match the expected "
                f"API version ({res.group_version})"
            )
        if kind is not None and kind != res.kind:
            raise ApiError.bad_request(
                f"the kind in the data ({kind}) does not match the expected kind ({res.kind})"
            )
        return obj

    def create(self, res: Resource, namespace: str, body: Any, query: dict[str, str]) -> Response:
        obj = copy.deepcopy(self._check_type(res, body))
        body_ns = obj.get("metadata", {}).get("namespace")
        if res.namespaced and body_ns and namespace and body_ns != namespace:
            raise ApiError.bad_request(
                "the namespace of the provided object does not match the namespace sent on "
                "the request"
            )
        namespace = namespace or body_ns or "default"
        now = time.time()
        with self.store.transaction() as txn:
            txn.discard = query.get("dryRun") == "All"
            status = obj.pop("status", None)
            new_metadata(obj, res, namespace, now)
            self._check_namespace(txn, res, namespace)
            name = obj["metadata"]["name"]
            if txn.get(res, namespace, name) is not None:
                raise ApiError(
                    409,
                    "AlreadyExists",
                    f'{res.qualified} "{name}" already exists',
                    {"name": name, "group": res.group, "kind": res.plural},
                )
            apply_defaults(res, obj)
            if res is NODES and isinstance(status, dict):
                obj["status"] = status
            txn.put(res, obj)
        return 201, self.view(res, obj)

    def _update(self, res: Resource, old: Obj, new: Obj, sub: str | None) -> Obj:
        """Merge an updated object as the API server would; returns what to store."""
        if sub == "status":
            result = copy.deepcopy(old)
            result["status"] = new.get("status", {})
            return result
        new = copy.deepcopy(new)
        preserve_identity(old, new)
        if res.has_status and res is not NAMESPACES:
            new["status"] = copy.deepcopy(old.get("status", {}))
        elif res is NAMESPACES:
            new["status"] = old.get("status", {"phase": "Active"})
        bump_generation(res, old, new)
        return new

    def replace(
        self,
        res: Resource,
        namespace: str,
        name: str,
        body: Any,
        sub: str | None,
        query: dict[str, str],
    ) -> Response:
        obj = self._check_type(res, body)
        body_name = obj.get("metadata", {}).get("name")
        if body_name and body_name != name:
            raise ApiError.bad_request("the name of the object does not match the name on the URL")
        with self.store.transaction() as txn:
            txn.discard = query.get("dryRun") == "All"
            old = txn.get(res, namespace, name)
            if old is None:
                raise ApiError.not_found(res, name)
            self._precondition(res, old, obj)
            stored = self._update(res, old, obj, sub)
            txn.put(res, stored)
        return 200, self.view(res, stored)

    @staticmethod
    def _precondition(res: Resource, old: Obj, new: Obj) -> None:
        wanted = new.get("metadata", {}).get("resourceVersion")
        if wanted and wanted != old["metadata"].get("resourceVersion"):
            name = old["metadata"]["name"]
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {res.qualified} "{name}": the object has '
                "been modified; please apply your changes to the latest version and try again",
                {"name": name, "group": res.group, "kind": res.plural},
            )

    def _patched(self, req: Request, current: Obj) -> Obj:
        ctype = req.content_type.split(";")[0].strip()
        body = self.body(req)
        if ctype == "application/json-patch+json":
            result = json_patch(current, body)
        elif ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            result = merge_patch(current, body)
        elif ctype == "application/apply-patch+yaml":
            result = apply_merge(current, body)
        else:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types "
                "include: application/json-patch+json, application/merge-patch+json, "
                "application/apply-patch+yaml, application/strategic-merge-patch+json",
            )
        if not isinstance(result, dict):
            raise ApiError(422, "Invalid", "the patched object is not an object")
        return result

    def patch(
        self, req: Request, res: Resource, namespace: str, name: str, sub: str | None
    ) -> Response:
        apply = req.content_type.startswith("application/apply-patch")
        if apply and not req.query.get("fieldManager"):
            raise ApiError(
                422,
                "Invalid",
                'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is '
                "required for apply patch",
            )
        with self.store.transaction() as txn:
            txn.discard = req.query.get("dryRun") == "All"
            old = txn.get(res, namespace, name)
            if old is None:
                if not apply or sub is not None:
                    raise ApiError.not_found(res, name)
                body = copy.deepcopy(self._check_type(res, self.body(req)))
                meta(body)["name"] = name
                self._check_namespace(txn, res, namespace)
                body.pop("status", None)
                new_metadata(body, res, namespace, time.time())
                apply_defaults(res, body)
                txn.put(res, body)
                return 201, self.view(res, body)
            typed = copy.deepcopy(old)
            if apply:
                self._check_type(res, self.body(req))
            patched = self._patched(req, typed)
            self._precondition(res, old, patched)
            stored = self._update(res, old, patched, sub)
            if stored != old:
                txn.put(res, stored)
        return 200, self.view(res, stored)

    def delete(
        self, res: Resource, namespace: str, name: str, query: dict[str, str], options: Obj
    ) -> Response:
        with self.store.transaction() as txn:
            txn.discard = query.get("dryRun") == "All"
            if res is PODS:
                return 200, self.view(res, delete_pod(txn, namespace, name, query, options))
            obj = txn.delete(res, namespace, name)
            if obj is None:
                raise ApiError.not_found(res, name)
            if res is NAMESPACES:
                for key in [k for k in txn.objects if k.split("/")[2] == name]:
                    del txn.objects[key]
                obj["status"] = {"phase": "Terminating"}
                meta(obj)["deletionTimestamp"] = rfc3339(time.time())
        return 200, self.view(res, obj)

    def evict(self, namespace: str, name: str, query: dict[str, str], options: Obj) -> Response:
        with self.store.transaction() as txn:
            txn.discard = query.get("dryRun") == "All"
            pod = txn.get(PODS, namespace, name)
            if pod is None:
                raise ApiError.not_found(PODS, name)
            check_budget(txn, pod)
            delete_pod(txn, namespace, name, query, options)
        return 201, {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "code": 201,
        }

    def scale(self, req: Request, res: Resource, namespace: str, name: str) -> Response:
        if res not in WORKLOADS:
            raise ApiError.no_route()

        def as_scale(obj: Obj) -> Obj:
            md = obj["metadata"]
            replicas = int(obj.get("spec", {}).get("replicas", 1) or 0)
            spec = {"replicas": replicas} if replicas else {}
            return {
                "kind": "Scale",
                "apiVersion": "autoscaling/v1",
                "metadata": {
                    k: md[k]
                    for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                    if k in md
                },
                "spec": spec,
                "status": {
                    "replicas": int(obj.get("status", {}).get("replicas", 0) or 0),
                    "selector": _selector_string(obj),
                },
            }

        if req.method == "GET":
            return 200, as_scale(self.get(res, namespace, name))
        if req.method not in ("PUT", "PATCH"):
            raise ApiError(405, "MethodNotAllowed", f"{req.method} is not supported on scale")
        with self.store.transaction() as txn:
            txn.discard = req.query.get("dryRun") == "All"
            old = txn.get(res, namespace, name)
            if old is None:
                raise ApiError.not_found(res, name)
            if req.method == "PUT":
                wanted = self.body(req)
                if not isinstance(wanted, dict):
                    raise ApiError.bad_request("the body must be a Scale object")
            else:
                wanted = self._patched(req, as_scale(old))
            self._precondition(res, old, wanted)
            replicas = (wanted.get("spec") or {}).get("replicas", 0)
            if not isinstance(replicas, int) or replicas < 0:
                raise ApiError(
                    422,
                    "Invalid",
                    f'Scale.autoscaling "{name}" is invalid: '
                    "spec.replicas: Invalid value: must be greater than or equal to 0",
                )
            new = copy.deepcopy(old)
            new["spec"]["replicas"] = replicas
            bump_generation(res, old, new)
            if new != old:
                txn.put(res, new)
        return 200, as_scale(new)

    # -- twin-only endpoints -------------------------------------------------------------------

    def twin(self, req: Request) -> Response:
        """``/twin/v1/config`` (GET, PATCH merge) and ``/twin/v1/heartbeats`` (GET)."""
        if req.path == "/twin/v1/heartbeats" and req.method == "GET":
            now = time.time()
            return 200, {name: round(now - t, 3) for name, t in self.store.heartbeats().items()}
        if req.path != "/twin/v1/config":
            raise ApiError.no_route()
        if req.method == "GET":
            return 200, self.store.read()["config"]
        if req.method == "PATCH":
            with self.store.transaction() as txn:
                txn.state["config"] = merge_patch(txn.config, self.body(req))
                txn.changed = True
                return 200, txn.config
        raise ApiError(405, "MethodNotAllowed", f"{req.method} is not supported")


def delete_pod(txn: Txn, namespace: str, name: str, query: dict[str, str], options: Obj) -> Obj:
    """Delete a Pod gracefully: it turns Terminating for its grace period (grace 0: gone now)."""
    pod = txn.get(PODS, namespace, name)
    if pod is None:
        raise ApiError.not_found(PODS, name)
    grace = behaviour.grace_of(pod, query, options)
    marked = behaviour.terminate(copy.deepcopy(pod), grace, time.time())
    if marked is None:
        txn.delete(PODS, namespace, name)
        return pod
    if marked != pod:
        txn.put(PODS, marked)
    return marked


def check_budget(txn: Txn, pod: Obj) -> None:
    """Refuse an eviction its PodDisruptionBudget does not allow (429), as the real API does."""
    if behaviour.pdb_ignores(pod):
        return
    namespace = pod["metadata"]["namespace"]
    budgets = behaviour.budgets_of(pod, txn.items(PDBS, namespace))
    if len(budgets) > 1:
        raise ApiError(500, "InternalError", behaviour.too_many_budgets_message())
    if not budgets:
        return
    status = behaviour.pdb_status(budgets[0], txn.items(PODS, namespace), time.time())
    if status["disruptionsAllowed"] < 1:
        refusal = behaviour.eviction_refusal(budgets[0], status)
        raise ApiError(429, "TooManyRequests", refusal["message"], refusal["details"])


# --------------------------------------------------------------------------------------------
# Tables (what kubectl get prints)


def _age(timestamp: str | None) -> str:
    if not timestamp:
        return "<unknown>"
    try:
        seconds = int(time.time() - calendar.timegm(time.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return "<unknown>"
    seconds = max(seconds, 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit != "m" else 1):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _row_cells(res: Resource, obj: Obj) -> list[Any]:
    md, spec, status = obj["metadata"], obj.get("spec", {}), obj.get("status", {})
    age = _age(md.get("creationTimestamp"))
    if res is NODES:
        state = "Ready" if is_ready(obj) else "NotReady"
        if spec.get("unschedulable"):
            state += ",SchedulingDisabled"
        roles = sorted(
            k.split("/", 1)[1] for k in labels_of(obj) if k.startswith("node-role.kubernetes.io/")
        )
        return [
            md["name"],
            state,
            ",".join(roles) or "<none>",
            age,
            status.get("nodeInfo", {}).get("kubeletVersion", ""),
        ]
    if res is PODS:
        containers = status.get("containerStatuses") or []
        ready = sum(1 for c in containers if c.get("ready"))
        return [
            md["name"],
            f"{ready}/{len(spec.get('containers') or [])}",
            "Terminating" if md.get("deletionTimestamp") else status.get("phase", "Pending"),
            0,
            age,
        ]
    if res is DEPLOYMENTS:
        return [
            md["name"],
            f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
            status.get("updatedReplicas", 0),
            status.get("availableReplicas", 0),
            age,
        ]
    if res is STATEFULSETS:
        return [md["name"], f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}", age]
    if not res.builtin:
        cond = condition(obj, "Ready") or {}
        cells = [md["name"], age, cond.get("status", "Unknown"), cond.get("message", "")]
        if res is FLUX_GIT:
            cells.insert(1, spec.get("url", ""))
        return cells
    return [md["name"], age]


def _columns(res: Resource) -> list[str]:  # noqa: PLR0911 - one return per kind
    if res is NODES:
        return ["Name", "Status", "Roles", "Age", "Version"]
    if res is PODS:
        return ["Name", "Ready", "Status", "Restarts", "Age"]
    if res is DEPLOYMENTS:
        return ["Name", "Ready", "Up-to-date", "Available", "Age"]
    if res is STATEFULSETS:
        return ["Name", "Ready", "Age"]
    if res is FLUX_GIT:
        return ["Name", "URL", "Age", "Ready", "Status"]
    if not res.builtin:
        return ["Name", "Age", "Ready", "Status"]
    return ["Name", "Age"]


def as_table(res: Resource, items: list[Obj], resource_version: str) -> Obj:
    """A ``meta.k8s.io/v1`` Table, the server-side printing kubectl asks for."""
    columns = [
        {
            "name": name,
            "type": "integer" if name == "Restarts" else "string",
            "format": "name" if name == "Name" else "",
            "description": name,
            "priority": 0,
        }
        for name in _columns(res)
    ]
    rows = [
        {
            "cells": _row_cells(res, obj),
            "object": {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj["metadata"],
            },
        }
        for obj in items
    ]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": columns,
        "rows": rows,
    }


# --------------------------------------------------------------------------------------------
# HTTP


class StandinServer(ThreadingHTTPServer):
    """The HTTP(S) server; TLS when ``tls`` (a server context) is given."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        api: Api,
        token: str,
        tls: ssl.SSLContext | None = None,
        node: str = "standin",
    ) -> None:
        super().__init__(address, Handler)
        self.api = api
        self.token = token
        self.node = node
        self._audit_lock = threading.Lock()
        self._quorum: tuple[float, bool] = (0.0, False)
        self.registered = threading.Event()  # its own Node is in etcd: ready from then on
        if tls is not None:
            # The handshake happens in the request's thread (Handler.setup), not in accept().
            self.socket = tls.wrap_socket(
                self.socket, server_side=True, do_handshake_on_connect=False
            )

    def quorum(self) -> bool:
        """Whether etcd has quorum, looked at most every 0.25 s."""
        now = time.monotonic()
        checked, answer = self._quorum
        if now - checked > 0.25:
            try:
                answer = self.api.store.quorum()
            except (OSError, ValueError):
                answer = False
            self._quorum = (now, answer)
        return answer

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ssl.SSLError | OSError):
            super().handle_error(request, client_address)

    def audit(self, req: Request, code: int, payload: Any) -> None:
        """With ``audit: true`` in the twin's config, append the request and the answer to
        ``<state>/audit/<node>.jsonl``: the tests check every object served and sent against
        the published schemas (tests/testbed/schemas.py)."""
        store = self.api.store
        if not store.read().get("config", {}).get("audit") or req.path.startswith("/twin/"):
            return
        try:
            body: Any = json.loads(req.body) if req.body else None
        except ValueError:
            body = req.body.decode("utf-8", "replace")
        entry = {
            "method": req.method,
            "path": req.path,
            "query": req.query,
            "contentType": req.content_type,
            "table": req.wants_table,
            "request": body,
            "code": code,
            "response": payload,
        }
        line = json.dumps(entry, separators=(",", ":")) + "\n"
        directory = store.root / "audit"
        with self._audit_lock:
            directory.mkdir(parents=True, exist_ok=True)
            with (directory / f"{self.node}.jsonl").open("a", encoding="utf-8") as handle:
                handle.write(line)


def tls_context(state_dir: Path) -> ssl.SSLContext | None:
    """A server context from ``<state>/tls/server.{crt,key}`` (made by the twin), if present."""
    cert, key = state_dir / "tls" / "server.crt", state_dir / "tls" / "server.key"
    if not (cert.exists() and key.exists()):
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


VERSION_INFO: Obj = {
    "major": "1",
    "minor": "36",
    "gitVersion": K8S_VERSION,
    "gitCommit": "1829eaae5ac85bd7d4bd4dbeb7a26f1f3e6c1b9d",
    "gitTreeState": "clean",
    "buildDate": "2026-05-20T00:00:00Z",
    "goVersion": "go1.25.9",
    "compiler": "gc",
    "platform": "linux/amd64",
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hecate-twin-apiserver"
    server: StandinServer
    timeout = 300  # idle keep-alive connections end, as the real server's do

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(10)
            self.request.do_handshake()
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        if os.environ.get("TWIN_DEBUG"):
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

    def do_GET(self) -> None:
        self.dispatch("GET")

    def do_POST(self) -> None:
        self.dispatch("POST")

    def do_PUT(self) -> None:
        self.dispatch("PUT")

    def do_PATCH(self) -> None:
        self.dispatch("PATCH")

    def do_DELETE(self) -> None:
        self.dispatch("DELETE")

    def send_body(self, code: int, payload: Any) -> None:
        if isinstance(payload, str):
            data, ctype = payload.encode(), "text/plain; charset=utf-8"
        else:
            data, ctype = json.dumps(payload).encode(), "application/json"
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self.wfile.write(data)

    def authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and secrets.compare_digest(
            token.strip().encode(), self.server.token.encode()
        )

    def dispatch(self, method: str) -> None:  # noqa: PLR0912
        req: Request | None = None
        try:
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path = url.path.rstrip("/") or "/"
            quorum = self.server.quorum()
            if path in ("/readyz", "/livez", "/healthz") and method == "GET":
                if self.server.api.stopping.is_set():
                    self.send_body(503, "[-]shutdown failed: process is shutting down\n")
                elif not (quorum and self.server.registered.is_set()) and path != "/livez":
                    self.send_body(500, f"[-]etcd failed: reason withheld\n{path[1:]} failed\n")
                elif "verbose" in query:
                    self.send_body(200, f"[+]ping ok\n[+]etcd ok\n{path[1:]} check passed\n")
                else:
                    self.send_body(200, "ok")
                return
            if path == "/version" and method == "GET":
                self.send_body(200, VERSION_INFO)
                return
            if not self.authorized():
                self.send_body(401, ApiError(401, "Unauthorized", "Unauthorized").status())
                return
            if not quorum and not path.startswith("/twin/"):
                # etcd without quorum: every read and write times out
                timeout = ApiError(504, "Timeout", "etcdserver: request timed out")
                self.send_body(504, timeout.status())
                return
            req = Request(
                method,
                path,
                query,
                body,
                self.headers.get("Content-Type", ""),
                self.headers.get("Accept", ""),
            )
            if path.startswith("/twin/"):
                result: Response | Watch = self.server.api.twin(req)
            else:
                result = self.server.api.handle(req)
            if isinstance(result, Watch):
                self.stream(result)
            else:
                self.server.audit(req, *result)
                self.send_body(*result)
        except ApiError as err:
            if req is not None:
                self.server.audit(req, err.code, err.status())
            self.send_body(err.code, err.status())
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except ec.EtcdUnavailable:  # quorum lost during the request
            self.send_body(504, ApiError(504, "Timeout", "etcdserver: request timed out").status())
        except Exception as exc:  # an internal error is answered, never kills the server
            self.send_body(
                500, ApiError(500, "InternalError", f"{type(exc).__name__}: {exc}", {}).status()
            )

    def stream(self, watch: Watch) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for event in watch.events:
                data = json.dumps(event).encode() + b"\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        finally:
            self.close_connection = True


# --------------------------------------------------------------------------------------------
# Processes: server, agent, snapshot


def sd_notify(message: str) -> None:
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(address)
        sock.sendall(message.encode())


def node_conf() -> Obj:
    try:
        conf: Obj = json.loads(Path(NODE_CONF).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        conf = {}
    return conf


def start_shim(node: str) -> None:
    """Stand-in for the pods' containerd shims, left running by ``systemctl stop k3s``.

    Real k3s units use ``KillMode=process``, so stopping k3s leaves the containers running;
    ``k3s-killall.sh`` kills them. The twin's "containers" are one idle process per node.
    """
    run_dir = Path(RUN_DIR)
    run_dir.mkdir(parents=True, exist_ok=True)
    pid_file = run_dir / "containerd-shim.pid"
    with contextlib.suppress(OSError, ValueError):
        pid = int(pid_file.read_text())
        if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"containerd-shim"):
            return
    sleep = shutil.which("sleep") or "/usr/bin/sleep"
    proc = subprocess.Popen(
        ["containerd-shim-runc-v2", "infinity"],
        executable=sleep,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )
    pid_file.write_text(f"{proc.pid}\n")
    del node


def heartbeat_loop(store: Store, node: str, role: str, stopping: threading.Event) -> None:
    """Post the node's status every second; re-register if the Node object was deleted."""
    beats = 0
    while not stopping.wait(1.0):
        with contextlib.suppress(OSError, ValueError):  # EtcdUnavailable is an OSError
            store.beat(node, role)
            beats += 1
            if beats % 10 == 0 and NODES.key("", node) not in store.read()["objects"]:
                register_node(store, node, role, time.time())


def install_signal_handlers(stopping: threading.Event) -> None:
    def handler(signum: int, frame: object) -> None:
        del signum, frame
        stopping.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


READY_WAIT_S = 5.0


def notify_ready(registered: threading.Event) -> None:
    """``systemctl start k3s`` returns once the API serves (etcd has quorum, the Node is in it),
    or after READY_WAIT_S without quorum: a real k3s would keep waiting for its peers; the twin
    stops waiting so that a flow starting servers one at a time still ends (they are slow, not
    stuck)."""
    registered.wait(READY_WAIT_S)
    sd_notify("READY=1")


def etcd_client_for(conf: Obj) -> ec.EtcdClient:
    """A server's own member; an agent's ``etcdClient`` (endpoints and TLS files)."""
    if conf.get("role") == "server":
        return member.local_client(conf["etcd"])
    client = conf["etcdClient"]
    tls = None
    if client.get("ca"):
        tls = ec.EtcdTls(Path(client["ca"]), Path(client["cert"]), Path(client["key"]))
    return ec.EtcdClient(list(client["endpoints"]), tls)


def run_server(
    conf: Obj,
    port: int,
    *,
    shim: bool = True,
    host: str = "0.0.0.0",  # noqa: S104
) -> int:
    """``k3s server``: the etcd member (a child: it dies with this process, as k3s's embedded
    etcd), the API (504 until etcd has quorum), the kubelet's heartbeats and the controllers."""
    state_dir, node = Path(conf["stateDir"]), conf["name"]
    store = Store(state_dir, etcd_client_for(conf))
    stopping = threading.Event()
    install_signal_handlers(stopping)
    if shim:
        start_shim(node)
    api = Api(store, stopping)
    # In a node's container: every address (published on 127.0.0.1); on the host: --host.
    server = StandinServer((host, port), api, store.token(), tls_context(state_dir), node=node)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
    ).start()
    threading.Thread(target=notify_ready, args=(server.registered,), daemon=True).start()
    print(f"twin apiserver for {node} listening on :{port}", flush=True)
    etcd = member.start(conf["etcd"], stopping)
    threading.Thread(
        target=heartbeat_loop, args=(store, node, "server", stopping), daemon=True
    ).start()
    registered, code = False, 0
    while not stopping.is_set():
        interval = 0.5
        if etcd is not None and etcd.poll() is not None:
            print(f"etcd exited ({etcd.returncode}): k3s stops", file=sys.stderr, flush=True)
            code = 1
            break
        try:
            if not registered:
                ensure_seeded(store)
                register_node(store, node, "server", time.time())
                registered = True
                server.registered.set()
            interval = float(store.read()["config"].get("reconcileSeconds", 0.5))
            with store.transaction() as txn:
                reconcile(txn, store.heartbeats(), time.time())
        except ec.EtcdUnavailable:
            pass  # no quorum: etcd takes no writes, the controllers wait
        except Exception as exc:  # keep serving; log for the journal
            print(f"reconcile failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            interval = 1.0
        stopping.wait(interval)
    sd_notify("STOPPING=1")
    server.shutdown()
    server.server_close()
    member.stop(etcd, conf["etcd"])
    return code


def run_agent(conf: Obj, *, shim: bool = True) -> int:
    node = conf["name"]
    store = Store(Path(conf["stateDir"]), etcd_client_for(conf))
    stopping = threading.Event()
    install_signal_handlers(stopping)
    # Like a real agent, wait for a server before registering (systemctl start blocks meanwhile).
    while not stopping.is_set():
        try:
            register_node(store, node, "agent", time.time())
            break
        except ec.EtcdUnavailable:
            stopping.wait(0.5)
    if stopping.is_set():
        return 0
    if shim:
        start_shim(node)
    sd_notify("READY=1")
    print(f"twin agent {node} registered", flush=True)
    heartbeat_loop(store, node, "agent", stopping)
    sd_notify("STOPPING=1")
    return 0


def run_snapshot(conf: Obj, name: str, directory: Path) -> int:
    """``k3s etcd-snapshot save``: a real ``etcdctl snapshot save`` of this server's member."""
    active = subprocess.run(["/usr/bin/systemctl", "is-active", "--quiet", "k3s"], check=False)
    if active.returncode != 0 or "etcd" not in conf:
        print(
            'level=fatal msg="etcd datastore is not running: k3s is not active on this node"',
            file=sys.stderr,
        )
        return 1
    return member.snapshot_save(conf["etcd"], name, directory)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kube_standin")
    parser.add_argument("--conf", type=Path, default=Path(NODE_CONF), help="the node's JSON")
    parser.add_argument(
        "--no-shim",
        action="store_true",
        help="do not start the containerd-shim stand-in (to run outside a node)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    server = commands.add_parser("server")
    server.add_argument("--port", type=int, default=API_PORT)
    server.add_argument("--host", default="0.0.0.0", help="address to listen on")  # noqa: S104
    server.add_argument("--cluster-reset", action="store_true")
    server.add_argument("--cluster-reset-restore-path")
    server.add_argument("--token")
    server.add_argument("--token-file", type=Path, help="as k3s: the token from this file")
    # Accepted as k3s does; the twin's node.json decides (first boot: static bootstrap, later:
    # join through the other servers' members).
    server.add_argument("--cluster-init", action="store_true")
    server.add_argument("--server", dest="join_url")
    commands.add_parser("agent")
    snapshot = commands.add_parser("snapshot")
    snapshot.add_argument("--name", default="on-demand")
    snapshot.add_argument("--dir", type=Path, default=Path(SNAPSHOT_DIR))
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "snapshot":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    conf = json.loads(args.conf.read_text(encoding="utf-8"))
    conf.setdefault("stateDir", STATE_DIR)
    conf.setdefault("name", socket.gethostname())
    if args.command == "server" and (args.cluster_reset or args.cluster_reset_restore_path):
        if not args.cluster_reset:
            parser.error("--cluster-reset-restore-path needs --cluster-reset")
        token = args.token
        if token is None and args.token_file is not None:
            token = args.token_file.read_text(encoding="utf-8").strip() or None
        return member.cluster_reset(conf["etcd"], args.cluster_reset_restore_path, token)
    if args.command == "server":
        return run_server(conf, args.port, shim=not args.no_shim, host=args.host)
    if args.command == "agent":
        return run_agent(conf, shim=not args.no_shim)
    return run_snapshot(conf, args.name, args.dir)


if __name__ == "__main__":
    sys.exit(main())
