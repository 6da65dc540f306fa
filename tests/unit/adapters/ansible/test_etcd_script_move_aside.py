"""Review finding (issue 26): roles/etcd/files/hecate-etcd.sh `move_aside`, run by a real sh on
real files (the SUDO word is a wrapper that roots /var/lib/rancher in a temporary directory).
A destination already there must not leave a data dir in place: k3s would start on it."""

from __future__ import annotations

import subprocess
from pathlib import Path

SCRIPT = Path(__file__).parents[4] / "roles" / "etcd" / "files" / "hecate-etcd.sh"
RANCHER = "/var/lib/rancher"


def _run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    wrap = root / "wrap"
    wrap.write_text(
        '#!/bin/sh\nfor a in "$@"; do shift; set -- "$@" "$(printf %s "$a" | '
        f'sed \'s#^{RANCHER}#{root}/rancher#\')"; done\nexec "$@"\n'
    )
    wrap.chmod(0o755)
    return subprocess.run(
        ["sh", "-c", SCRIPT.read_text(), "hecate-etcd", str(wrap), *args],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )


def test_move_aside_moves_the_data_dir_even_when_the_destination_is_there(
    tmp_path: Path,
) -> None:
    db = tmp_path / "rancher" / "k3s" / "server" / "db"
    (db / "etcd" / "member").mkdir(parents=True)
    (db / "etcd" / "member" / "new").write_text("written after the first move")
    (db / "etcd-old-1").mkdir()
    (db / "etcd-old-1" / "old").write_text("moved by the first attempt")
    done = _run(tmp_path, "move_aside", f"{RANCHER}/k3s/server/db/etcd-old-1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (db / "etcd").exists()  # k3s starts empty and rejoins
    assert (db / "etcd-old-1" / "old").read_text() == "moved by the first attempt"
    kept = [p for p in db.iterdir() if (p / "member" / "new").exists()]
    assert len(kept) == 1 and kept[0].name.startswith("etcd-old-1")  # kept, never deleted


def test_move_aside_twice_is_a_no_op(tmp_path: Path) -> None:
    db = tmp_path / "rancher" / "k3s" / "server" / "db"
    (db / "etcd-old-1").mkdir(parents=True)
    done = _run(tmp_path, "move_aside", f"{RANCHER}/k3s/server/db/etcd-old-1")
    assert done.returncode == 0 and "moved=already" in done.stdout
