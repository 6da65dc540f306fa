"""The twin refuses up front, naming the sysctl, when the host cannot boot that many nodes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.testbed import twin


def _sysctl(tmp_path: Path, instances: int, watches: int) -> Path:
    (tmp_path / "max_user_instances").write_text(f"{instances}\n")
    (tmp_path / "max_user_watches").write_text(f"{watches}\n")
    return tmp_path


def test_default_limit_is_too_small_for_forty_nodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(twin, "inotify_instances_in_use", lambda uid=0: 10)
    fixes = twin.inotify_shortfall(43, sysctl_dir=_sysctl(tmp_path, 128, 192536))
    # 10 in use + 6 x 43 + 16 = 284 > 128: only the instances need raising
    assert fixes == ["sysctl -w fs.inotify.max_user_instances=1024  (now 128)"]


def test_small_twin_fits_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(twin, "inotify_instances_in_use", lambda uid=0: 10)
    assert twin.inotify_shortfall(3, sysctl_dir=_sysctl(tmp_path, 128, 192536)) == []


def test_watches_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(twin, "inotify_instances_in_use", lambda uid=0: 0)
    fixes = twin.inotify_shortfall(200, sysctl_dir=_sysctl(tmp_path, 1 << 20, 8192))
    assert fixes == ["sysctl -w fs.inotify.max_user_watches=800000  (now 8192)"]


def test_check_host_limits_says_what_to_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(twin, "inotify_shortfall", lambda nodes: ["sysctl -w x=1  (now 0)"])
    with pytest.raises(twin.TwinError, match=r"(?s)cannot boot 40 more twin nodes.*sysctl -w x=1"):
        twin.check_host_limits(40)


def test_counts_real_instances_of_this_process() -> None:
    # the count is read from /proc; it must be a plausible number, not an error
    assert twin.inotify_instances_in_use() >= 0
