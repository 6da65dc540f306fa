"""The `cluster` and `recover` sections: what the cluster's datastore is, and the bounds of
`hecate recover etcd` (split from `hecate.config.model`, which imports them)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from hecate.config.strict import StrictModel as _Strict


class ClusterConfig(_Strict):
    """What the cluster is made of, beyond its nodes."""

    datastore: Literal["auto", "etcd", "sqlite", "external"] = Field(
        "auto",
        description="The k3s datastore: etcd (embedded etcd: servers started with "
        "--cluster-init or joined to one), sqlite (one server without it), external, or auto "
        "(read from the servers: an etcd data directory or `cluster-init` in k3s's config). "
        "The etcd stages (etcd_snapshot, etcd_quorum) and `hecate recover etcd` run only for "
        "embedded etcd.",
    )


class RecoverConfig(_Strict):
    """`hecate recover etcd`: rebuilding embedded etcd from a snapshot after quorum is lost."""

    max_snapshot_age_seconds: float = Field(
        7 * 86400.0,
        gt=0,
        description="A snapshot older than this is refused unless --force (everything written "
        "to the cluster since it was taken is lost by a restore).",
    )
    token_file: str = Field(
        "/var/lib/rancher/k3s/server/token",
        description="The k3s server token file on the server being reset (k3s requires the "
        "token to restore a snapshot); recovery refuses when it is missing or empty.",
    )
