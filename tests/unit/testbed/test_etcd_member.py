"""The twin's k3s stand-in refuses a restore as k3s does, before touching any data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.testbed.node import etcd_member

TOKEN = "K10" + "ab" * 32 + "::server:s3cret"


def _conf(tmp_path: Path, *, token: str | None = TOKEN) -> dict[str, Any]:
    data = tmp_path / "db" / "etcd"
    (data / "member").mkdir(parents=True)
    (data / "member" / "marker").write_text("old data")
    token_file = tmp_path / "token"
    if token is not None:
        token_file.write_text(token + "\n")
    return {
        "name": "s1",
        "dataDir": str(data),
        "clientUrls": ["http://127.0.0.1:1"],
        "peerUrl": "http://127.0.0.1:2",
        "tokenFile": str(token_file),
        "checkUnit": False,
    }


def _untouched(conf: dict[str, Any]) -> bool:
    data = Path(conf["dataDir"])
    return (data / "member" / "marker").read_text() == "old data" and not list(
        data.parent.glob("etcd-old-*")
    )


def test_a_restore_without_any_token_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = _conf(tmp_path, token=None)
    snapshot = tmp_path / "snap"
    snapshot.write_bytes(b"x")
    assert etcd_member.cluster_reset(conf, str(snapshot), None) == 1
    assert "token is required" in capsys.readouterr().err
    assert _untouched(conf)


def test_a_restore_with_another_token_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = _conf(tmp_path)
    snapshot = tmp_path / "snap"
    snapshot.write_bytes(b"x")
    assert etcd_member.cluster_reset(conf, str(snapshot), "K10ff::server:other") == 1
    assert "encrypted with different token" in capsys.readouterr().err
    assert _untouched(conf)


@pytest.mark.parametrize("given", [None, TOKEN, "s3cret"])  # the file's, the full one, the bare
def test_the_right_token_passes_and_a_missing_snapshot_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], given: str | None
) -> None:
    conf = _conf(tmp_path)
    assert etcd_member.cluster_reset(conf, str(tmp_path / "nowhere"), given) == 1
    assert "snapshot path does not exist" in capsys.readouterr().err
    assert _untouched(conf)


def test_a_reset_without_data_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = _conf(tmp_path)
    conf["dataDir"] = str(tmp_path / "empty")
    assert etcd_member.cluster_reset(conf, None, None) == 1
    assert "no data to reset" in capsys.readouterr().err


def test_etcd_flags_as_k3s_lays_them_out() -> None:
    conf = {
        "name": "twin-s1",
        "dataDir": "/var/lib/rancher/k3s/server/db/etcd",
        "clientUrls": ["https://127.0.0.1:2379", "https://10.89.0.11:2379"],
        "peerUrl": "https://10.89.0.11:2380",
        "tlsDir": "/var/lib/rancher/k3s/server/tls/etcd",
    }
    restart = etcd_member.etcd_argv(conf, None, "existing")
    assert not any(a.startswith("--initial-cluster") for a in restart)
    tls = "/var/lib/rancher/k3s/server/tls/etcd"
    assert f"--cert-file={tls}/server-client.crt" in restart
    assert f"--peer-trusted-ca-file={tls}/peer-ca.crt" in restart
    assert "--advertise-client-urls=https://10.89.0.11:2379" in restart
    cluster = {"twin-s1": "https://10.89.0.11:2380", "twin-s2": "https://10.89.0.12:2380"}
    new = etcd_member.etcd_argv(conf, cluster, "new")
    assert (
        "--initial-cluster=twin-s1=https://10.89.0.11:2380,twin-s2=https://10.89.0.12:2380" in new
    )
    assert "--initial-cluster-state=new" in new
