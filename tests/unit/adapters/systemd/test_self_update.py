"""hecate-update (roles/hecate_install/templates/hecate-update.sh.j2), run for real against
local git repositories: a fast-forward to commits signed by a trusted key installs; an unsigned
or wrongly signed one, a writable checkout or remote, or no trusted keys are refused and change
nothing. The installer it would exec is a stub that records that it ran."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from hecate.adapters.systemd.selfupdate import self_update
from tests.unit.adapters.systemd.test_unit_security import render

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("git") is None or shutil.which("ssh-keygen") is None,
    reason="needs root (the script checks ownership), git and ssh-keygen",
)
GIT_ID = ["-c", "user.name=Test", "-c", "user.email=test@example.invalid"]


def sh(*argv: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"{argv}: {done.stderr}"
    return done.stdout.strip()


@dataclass
class Setup:
    root: Path
    src: Path
    remote: Path
    clone: Path
    keys: Path
    script: Path
    marker: Path
    trusted_key: Path
    other_key: Path

    def commit(self, message: str, key: Path | None) -> str:
        (self.clone / "README.md").write_text(
            (self.clone / "README.md").read_text() + message + "\n"
        )
        signing = (
            ["-c", "gpg.format=ssh", "-c", f"user.signingkey={key}", "-c", "commit.gpgsign=true"]
            if key is not None
            else ["-c", "commit.gpgsign=false"]
        )
        sh("git", *GIT_ID, *signing, "commit", "-q", "-am", message, cwd=self.clone)
        sh("git", "push", "-q", "origin", "main", cwd=self.clone)
        return sh("git", "rev-parse", "HEAD", cwd=self.clone)

    def head(self) -> str:
        return sh("git", "-C", self.src, "rev-parse", "HEAD")

    def run(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["/bin/sh", str(self.script)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={"PATH": os.environ["PATH"], "HOME": str(self.root)},
        )


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    root = tmp_path
    root.chmod(0o755)
    src, remote, clone = root / "src", root / "remote.git", root / "clone"
    sh("git", "init", "-q", "--bare", "-b", "main", remote)
    sh("git", "init", "-q", "-b", "main", src)
    (src / "scripts").mkdir()
    marker = root / "installed"
    (src / "scripts" / "install.sh").write_text(f"#!/bin/sh\necho ran > {marker}\n")
    (src / "scripts" / "install.sh").chmod(0o755)
    (src / "README.md").write_text("Hecate\n")
    (src / "playbooks").symlink_to("scripts")  # a symlink's own mode (0777) is no finding
    sh("git", "add", "-A", cwd=src)
    sh("git", *GIT_ID, "commit", "-q", "-m", "base", cwd=src)
    sh("git", "remote", "add", "origin", remote, cwd=src)
    sh("git", "push", "-q", "-u", "origin", "main", cwd=src)
    sh("git", "clone", "-q", remote, clone)
    keys_dir = root / "keys"
    keys_dir.mkdir(mode=0o700)
    trusted, other = keys_dir / "trusted", keys_dir / "other"
    for key in (trusted, other):
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", key.name, "-f", key)
    keys = root / "update-trusted-keys"
    keys.write_text(f"release@hecate {(keys_dir / 'trusted.pub').read_text()}")
    keys.chmod(0o644)
    script = root / "hecate-update"
    script.write_text(
        render(
            "hecate-update.sh",
            "hecate-update.sh.j2",
            hecate_install_source=str(src),
            hecate_install_resolved_state_dir=str(root / "state"),
            hecate_install_update_trusted_keys_path=str(keys),
        )
    )
    return Setup(root, src, remote, clone, keys, script, marker, trusted, other)


def test_a_fast_forward_to_a_signed_commit_installs(setup: Setup) -> None:
    new = setup.commit("signed update", setup.trusted_key)
    done = setup.run()
    assert done.returncode == 0, done.stderr
    assert setup.head() == new
    assert setup.marker.exists()  # the installer ran
    assert "signed by a trusted ssh key" in done.stdout


@pytest.mark.parametrize(
    ("signer", "why"),
    [
        (None, "unsigned: anyone who can push could otherwise run code as root"),
        ("other", "signed, but by a key the operator did not list"),
    ],
)
def test_an_unsigned_or_wrongly_signed_commit_is_refused_and_nothing_changes(
    setup: Setup, signer: str | None, why: str
) -> None:
    before = setup.head()
    setup.commit("update", None if signer is None else setup.other_key)
    done = setup.run()
    assert done.returncode == 1, why
    assert "REFUSED" in done.stderr and "not signed by a trusted" in done.stderr
    assert setup.head() == before
    assert not setup.marker.exists()


def test_a_signed_tip_over_an_unsigned_commit_is_refused(setup: Setup) -> None:
    before = setup.head()
    setup.commit("sneaked in", None)
    setup.commit("signed on top", setup.trusted_key)
    assert setup.run().returncode == 1
    assert setup.head() == before and not setup.marker.exists()


@pytest.mark.parametrize("what", ["checkout file", "checkout dir", "remote", "keys"])
def test_what_a_non_root_user_can_write_is_refused(setup: Setup, what: str) -> None:
    before = setup.head()
    setup.commit("signed update", setup.trusted_key)
    target = {
        "checkout file": setup.src / "scripts" / "install.sh",
        "checkout dir": setup.src / "scripts",
        "remote": setup.remote / "refs",
        "keys": setup.keys,
    }[what]
    if what == "checkout dir":
        target.chmod(0o777)  # world-writable
    else:
        os.chown(target, 65534, 65534)  # nobody's
    done = setup.run()
    assert done.returncode == 1
    assert "can be written by a non-root user" in done.stderr, done.stderr
    assert setup.head() == before and not setup.marker.exists()


def test_without_trusted_keys_nothing_is_installed(setup: Setup) -> None:
    before = setup.head()
    setup.commit("signed update", setup.trusted_key)
    setup.keys.unlink()
    done = setup.run()
    assert done.returncode == 1
    assert "no trusted keys" in done.stderr
    assert setup.head() == before and not setup.marker.exists()


def test_status_says_whether_the_self_update_is_on(tmp_path: Path) -> None:
    keys, link = tmp_path / "keys", tmp_path / "hecate-update.timer"
    off = self_update(keys, link)
    assert not off.enabled and "no trusted keys" in off.text
    assert "HECATE_UPDATE_TRUSTED_KEYS" in off.text
    keys.write_text("release@hecate ssh-ed25519 AAAA\n")
    assert "HECATE_ENABLE_UPDATE=0" in self_update(keys, link).text
    link.write_text("")
    on = self_update(keys, link)
    assert on.enabled and on.text.startswith("on: installs only commits signed")


def gpg_key(home: Path, name: str) -> str:
    home.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    subprocess.run(
        ["gpg", "--batch", "--passphrase", "", "--quick-gen-key", f"{name} <{name}@hecate.invalid>",
         "ed25519", "sign", "never"],
        env=env, capture_output=True, timeout=60, check=True,
    )  # fmt: skip
    listing = subprocess.run(
        ["gpg", "--batch", "--with-colons", "--list-secret-keys"],
        env=env, capture_output=True, text=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    return next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr"))


@pytest.mark.skipif(shutil.which("gpg") is None, reason="needs gpg")
@pytest.mark.parametrize(("signer", "installs"), [("trusted", True), ("other", False)])
def test_a_gpg_keyring_works_the_same_way(setup: Setup, signer: str, installs: bool) -> None:
    homes = {name: setup.root / f"gnupg-{name}" for name in ("trusted", "other")}
    try:
        fingerprints = {name: gpg_key(home, name) for name, home in homes.items()}
        gpg_update(setup, homes, fingerprints, signer, installs)
    finally:
        for home in homes.values():  # the agents gpg started for signing
            subprocess.run(
                ["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"],
                capture_output=True, timeout=30, check=False,
            )  # fmt: skip


def gpg_update(
    setup: Setup, homes: dict[str, Path], fingerprints: dict[str, str], signer: str, installs: bool
) -> None:
    exported = subprocess.run(
        ["gpg", "--batch", "--export", fingerprints["trusted"]],
        env={**os.environ, "GNUPGHOME": str(homes["trusted"])},
        capture_output=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    setup.keys.write_bytes(exported)  # a binary keyring
    before = setup.head()
    (setup.clone / "README.md").write_text("gpg-signed\n")
    subprocess.run(
        ["git", *GIT_ID, "-c", "gpg.format=openpgp",
         "-c", f"user.signingkey={fingerprints[signer]}",
         "commit", "-q", "-S", "-am", "gpg update"],
        cwd=setup.clone, env={**os.environ, "GNUPGHOME": str(homes[signer])},
        capture_output=True, timeout=60, check=True,
    )  # fmt: skip
    sh("git", "push", "-q", "origin", "main", cwd=setup.clone)
    done = setup.run()
    if installs:
        assert done.returncode == 0, done.stderr
        assert setup.head() != before and setup.marker.exists()
        assert "trusted GPG key" in done.stdout
    else:
        assert done.returncode == 1
        assert "not signed by a trusted GPG key" in done.stderr
        assert setup.head() == before and not setup.marker.exists()
