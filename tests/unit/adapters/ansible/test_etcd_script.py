"""Review findings (issue 26): roles/etcd/files/hecate-etcd.sh run by a real sh on real files
(the SUDO word is a wrapper that roots /var/lib/rancher in a temporary directory and runs a
recording k3s). A move_aside destination already there must not leave a data dir in place (k3s
would start on it); the reset never puts the server token on a command line (`ps` shows it)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).parents[4] / "roles" / "etcd" / "files" / "hecate-etcd.sh"
RANCHER = "/var/lib/rancher"


def _run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    wrap = root / "wrap"
    wrap.write_text(
        '#!/bin/sh\nfor a in "$@"; do shift; set -- "$@" "$(printf %s "$a" | '
        f"sed -e 's#^{RANCHER}#{root}/rancher#' -e 's#^/usr/local/bin/k3s$#{root}/k3s#')\"; "
        'done\nexec "$@"\n'
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


def test_the_reset_never_puts_the_token_on_a_command_line(tmp_path: Path) -> None:
    server = tmp_path / "rancher" / "k3s" / "server"
    server.mkdir(parents=True)
    (server / "token").write_text("K10abc::server:TheClusterSecret\n")
    argv = tmp_path / "argv"
    k3s = tmp_path / "k3s"
    k3s.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {argv}\n')
    k3s.chmod(0o755)
    done = _run(tmp_path, "reset", "/snap.db", f"{RANCHER}/k3s/server/token")
    assert done.returncode == 0, done.stdout + done.stderr
    args = argv.read_text()
    assert "--cluster-reset" in args and "--cluster-reset-restore-path=/snap.db" in args
    assert "TheClusterSecret" not in args
    assert f"--token-file\n{tmp_path}/rancher/k3s/server/token\n" in args


def test_the_reset_refuses_an_empty_token_file(tmp_path: Path) -> None:
    server = tmp_path / "rancher" / "k3s" / "server"
    server.mkdir(parents=True)
    (server / "token").write_text("")
    done = _run(tmp_path, "reset", "/snap.db", f"{RANCHER}/k3s/server/token")
    assert done.returncode == 3 and "is empty" in done.stdout


def _probe(root: Path, unit: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The probe with `systemctl is-active k3s` answering `unit`, no curl, and an etcdctl that
    records its calls (a real one retries a refused connection for its 5 s command timeout)."""
    bin_dir, calls = root / "bin", root / "etcdctl-calls"
    bin_dir.mkdir()
    for tool in ("sh", "stat", "grep", "tr", "sed"):  # only these: no curl on PATH
        (bin_dir / tool).symlink_to(shutil.which(tool) or f"/usr/bin/{tool}")
    (root / "rancher" / "k3s" / "server" / "db" / "etcd").mkdir(parents=True)
    (bin_dir / "systemctl").write_text(
        f'#!/bin/sh\n[ "$1" = is-active ] && {{ echo {unit}; [ {unit} = active ]; exit; }}\n'
    )
    (bin_dir / "etcdctl").write_text(f'#!/bin/sh\necho "$*" >> {calls}\necho "{{}}"\n')
    for tool in ("systemctl", "etcdctl"):
        (bin_dir / tool).chmod(0o755)
    wrap = root / "wrap"
    wrap.write_text(
        '#!/bin/sh\nfor a in "$@"; do shift; set -- "$@" "$(printf %s "$a" | '
        f'sed -e \'s#^{RANCHER}#{root}/rancher#\')"; done\nexec "$@"\n'
    )
    wrap.chmod(0o755)
    done = subprocess.run(
        ["sh", "-c", SCRIPT.read_text(), "hecate-etcd", str(wrap), "probe"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
        env={"PATH": str(bin_dir)},
    )
    return done, calls


def test_the_probe_asks_no_etcd_while_k3s_is_stopped(tmp_path: Path) -> None:
    """Embedded etcd runs inside k3s: with the unit inactive nothing can answer, and each
    etcdctl call waited out its 5 s timeout (15 s per server before every startup)."""
    done, calls = _probe(tmp_path, "inactive")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "unit=inactive" in done.stdout and "data=empty" in done.stdout
    assert "health=k3s is inactive: its embedded etcd is not running" in done.stdout
    assert not calls.exists(), calls.read_text()


def test_the_probe_asks_etcd_while_k3s_runs(tmp_path: Path) -> None:
    done, calls = _probe(tmp_path, "active")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "unit=active" in done.stdout and "health={}" in done.stdout
    asked = calls.read_text().splitlines()
    assert [a.split(" -w ")[0].rsplit(" ", 2)[-2:] for a in asked] == [
        ["endpoint", "health"],
        ["member", "list"],
        ["endpoint", "status"],
    ], asked
