"""The Gitea bootstrap cache: live copies of what a cold start needs before Flux can run.

`startup.gitea_bootstrap_manifests` name the objects (storage, database, Gitea) in local files.
While the cluster is healthy the daemon refreshes `state_dir/bootstrap-cache/<file>` with the
live versions of those objects, so that a cold start applies what Flux last deployed, not a
stale hand-written copy. The deadlock fallback applies the cache when present, else the files.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from hecate.adapters.statedir.files import atomic_write_text, corrupt, write_lock
from hecate.config.model import HecateConfig
from hecate.errors import KubeError
from hecate.flows.context import KubeApi

CACHE_DIR = "bootstrap-cache"


def cache_dir(config: HecateConfig) -> Path:
    return config.state_dir / CACHE_DIR


def cached_or_configured(config: HecateConfig, path: Path) -> Path:
    """The cached copy when it is readable YAML, else the configured file.

    An unreadable cache file is set aside as NAME.corrupt-TIMESTAMP (and logged, counted).
    """
    cached = cache_dir(config) / path.name
    if not cached.exists():
        return path
    try:
        text = cached.read_text(encoding="utf-8")
        documents = [d for d in yaml.safe_load_all(text) if d]
        if not all(isinstance(d, dict) for d in documents):
            raise ValueError("a document is not a mapping")
    except (OSError, UnicodeError, ValueError, yaml.YAMLError) as exc:
        corrupt(cached, _first_line(str(exc)))  # set aside, logged, counted
        return path
    return cached


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else "unreadable"


def refresh_cache(kube: KubeApi, config: HecateConfig) -> list[str]:
    """Rewrite each cache file from the live objects; returns one problem line per failure.

    A file is replaced only when every object in it could be read, so a half-broken cluster
    never overwrites a good cache with a partial one.
    """
    problems: list[str] = []
    directory = cache_dir(config)
    for path in config.startup.gitea_bootstrap_manifests:
        try:
            documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
        except (OSError, yaml.YAMLError) as exc:
            problems.append(f"{path}: {exc}")
            continue
        try:
            live = [kube.live_manifest(doc) for doc in documents]
        except KubeError as exc:
            problems.append(f"{path}: {exc}")
            continue
        with write_lock(config.state_dir):
            atomic_write_text(directory / path.name, yaml.safe_dump_all(live, sort_keys=False))
    return problems
