"""The kept views (hecate.config.snapshot.load_view_kept): kept beside the config's snapshot under
the same key, the view of the validated config; and fail closed: a view file that is torn,
foreign, of another key, or that others may write is never used (the config is taken from its
snapshot or validated again), and a pickle planted there never runs."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest

from hecate.config import snapshot
from hecate.config.model import HecateConfig, default_config, load_config
from hecate.config.view import ReadView, read_view
from hecate.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "configs" / "hecate.example.yaml"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(snapshot.CACHE_ENV, str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "hecate"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "hecate.yaml"
    path.write_text(EXAMPLE.read_text())
    return path


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How often a config was validated, and a view made, from here on."""
    counts = {"validated": 0, "views": 0}
    validate, view = snapshot._validate, read_view

    def counting_validate(text: str, source: str) -> HecateConfig:
        counts["validated"] += 1
        return validate(text, source)

    def counting_view(config: HecateConfig) -> ReadView:
        counts["views"] += 1
        return view(config)

    monkeypatch.setattr(snapshot, "_validate", counting_validate)
    monkeypatch.setattr(snapshot, "read_view", counting_view)
    return counts


def _view_file(cache: Path) -> Path:
    (found,) = cache.glob(f"*{snapshot.VIEW_SUFFIX}")
    return found


def test_the_view_is_kept_beside_the_config_under_the_same_key(
    cache: Path, config: Path, made: dict[str, int]
) -> None:
    first = snapshot.load_view_kept(config)
    assert made == {"validated": 1, "views": 1}
    again = snapshot.load_view_kept(config)
    assert made == {"validated": 1, "views": 1}  # neither validated nor made again
    assert again == first == read_view(load_config(config))
    assert type(again) is ReadView
    view = _view_file(cache)
    assert (cache / (view.name.removesuffix(snapshot.VIEW_SUFFIX) + snapshot.SUFFIX)).is_file()
    assert view.stat().st_mode & 0o777 == 0o600
    # the config's snapshot serves the commands that need the whole config, without validating
    assert snapshot.load_config_kept(config) == load_config(config)
    assert made["validated"] == 1


def test_the_defaults_view_is_kept_too(cache: Path, made: dict[str, int]) -> None:
    assert snapshot.default_view_kept() == read_view(default_config())
    assert snapshot.default_view_kept() == read_view(default_config())
    assert made["views"] == 1


def _corrupt(path: Path, how: str, key: str) -> None:
    if how == "torn":
        path.write_bytes(path.read_bytes()[:100])
    elif how == "garbage":
        path.write_bytes(b"\x80\x05not a pickle at all")
    elif how == "other_key":
        view = pickle.loads(path.read_bytes())[1]  # noqa: S301 - the test's own file
        path.write_bytes(pickle.dumps(("0" * 64, view)))
    elif how == "a_config":  # the config's snapshot in the view's place: no view
        path.write_bytes(pickle.dumps((key, default_config())))
    elif how == "a_dict":
        path.write_bytes(pickle.dumps((key, {"state_dir": "/"})))
    elif how == "a_tuple":  # the view's fields, but not a ReadView
        view = pickle.loads(path.read_bytes())[1]  # noqa: S301 - the test's own file
        path.write_bytes(pickle.dumps((key, tuple(view))))


@pytest.mark.parametrize("how", ["torn", "garbage", "other_key", "a_config", "a_dict", "a_tuple"])
def test_a_torn_or_foreign_view_is_never_used(
    cache: Path, config: Path, made: dict[str, int], how: str
) -> None:
    snapshot.load_view_kept(config)
    view = _view_file(cache)
    _corrupt(view, how, view.name.removesuffix(snapshot.VIEW_SUFFIX))
    got = snapshot.load_view_kept(config)
    assert got == read_view(load_config(config))
    # made again from the kept config (not validated again), and kept again
    assert made == {"validated": 1, "views": 2}
    assert snapshot.load_view_kept(config) == got
    assert made == {"validated": 1, "views": 2}


def test_with_both_files_torn_the_config_is_validated_again(
    cache: Path, config: Path, made: dict[str, int]
) -> None:
    snapshot.load_view_kept(config)
    for path in cache.iterdir():
        path.write_bytes(b"torn")
    assert snapshot.load_view_kept(config) == read_view(load_config(config))
    assert made == {"validated": 2, "views": 2}


class _Planted:
    """A pickle that would create a file when loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("writable", ["file", "dir"])
def test_a_view_others_may_write_is_never_loaded(
    cache: Path, config: Path, made: dict[str, int], tmp_path: Path, writable: str
) -> None:
    snapshot.load_view_kept(config)
    view = _view_file(cache)
    key = view.name.removesuffix(snapshot.VIEW_SUFFIX)
    marker = tmp_path / "ran"
    view.write_bytes(pickle.dumps((key, _Planted(marker))))
    (view if writable == "file" else cache).chmod(0o620 if writable == "file" else 0o777)
    assert snapshot.load_view_kept(config) == read_view(load_config(config))
    assert not marker.exists()  # never unpickled
    assert made["views"] == 2


def test_a_symlinked_view_is_never_loaded(
    cache: Path, config: Path, made: dict[str, int], tmp_path: Path
) -> None:
    snapshot.load_view_kept(config)
    view = _view_file(cache)
    elsewhere = tmp_path / "elsewhere.pickle"
    elsewhere.write_bytes(view.read_bytes())
    view.unlink()
    view.symlink_to(elsewhere)
    assert snapshot.read_view_kept(cache, view.name.removesuffix(snapshot.VIEW_SUFFIX)) is None
    assert snapshot.load_view_kept(config) == read_view(load_config(config))


def test_an_invalid_config_has_no_view(cache: Path, config: Path) -> None:
    config.write_text("ups: {target: 'no target'}\nsurprise: 1\n")
    with pytest.raises(ConfigError) as failed:
        snapshot.load_view_kept(config)
    with pytest.raises(ConfigError) as expected:
        load_config(config)
    assert (failed.value.message, failed.value.problems) == (
        expected.value.message,
        expected.value.problems,
    )
    assert not cache.exists() or not list(cache.iterdir())


def test_no_place_to_keep_it_is_no_error(
    tmp_path: Path, config: Path, monkeypatch: pytest.MonkeyPatch, made: dict[str, int]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(snapshot.CACHE_ENV, str(blocker))
    for _ in range(2):
        assert snapshot.load_view_kept(config) == read_view(load_config(config))
    assert made == {"validated": 2, "views": 2}


def test_old_views_are_pruned_like_the_configs(cache: Path, config: Path) -> None:
    for index in range(snapshot.KEEP + 3):
        config.write_text(EXAMPLE.read_text() + f"\n# change {index}\n")
        snapshot.load_view_kept(config)
    assert len(list(cache.glob(f"*{snapshot.VIEW_SUFFIX}"))) == snapshot.KEEP
    assert len(list(cache.glob(f"*{snapshot.SUFFIX}"))) == snapshot.KEEP
