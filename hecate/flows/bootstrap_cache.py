"""The Gitea bootstrap cache: live copies of what a cold start needs before Flux can run.

`startup.gitea_bootstrap_manifests` name the objects (storage, database, Gitea) in local files.
While the cluster is healthy the daemon refreshes `state_dir/bootstrap-cache/<file>` with the
live versions of those objects, so that a cold start applies what Flux last deployed, not a
stale hand-written copy. The deadlock fallback applies the cache when present, else the files.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from hecate.config import HecateConfig
from hecate.errors import KubeError, StateError
from hecate.flows.context import KubeApi

CACHE_DIR = "bootstrap-cache"


def cache_dir(config: HecateConfig) -> Path:
    return config.state_dir / CACHE_DIR


def cached_or_configured(config: HecateConfig, path: Path) -> Path:
    cached = cache_dir(config) / path.name
    return cached if cached.exists() else path


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
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / path.name
        tmp = target.with_suffix(target.suffix + ".tmp")
        try:
            tmp.write_text(yaml.safe_dump_all(live, sort_keys=False))
            tmp.replace(target)
        except OSError as exc:
            raise StateError(f"cannot write {target}: {exc.strerror}") from None
    return problems
