"""Validated configs kept for the read commands (hecate.config.snapshot): the kept config is the
config validation makes, kept only under a key of the text and the code, trusted only when it
and its directory are the user's own and nobody else may write them; anything else is
validated again, and no failure of the cache fails the command."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import pytest
import yaml

from hecate.config import snapshot
from hecate.config.model import HecateConfig, default_config, load_config
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
def validations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The sources validated (not taken from a snapshot) from here on."""
    seen: list[str] = []
    real = snapshot._validate

    def counting(text: str, source: str) -> HecateConfig:
        seen.append(source)
        return real(text, source)

    monkeypatch.setattr(snapshot, "_validate", counting)
    return seen


def _kept(cache: Path) -> list[Path]:
    return sorted(cache.glob(f"*{snapshot.SUFFIX}"))


def _same(a: HecateConfig, b: HecateConfig) -> None:
    assert a == b
    assert type(a) is type(b)
    assert a.model_dump(mode="json") == b.model_dump(mode="json")
    assert a.model_fields_set == b.model_fields_set
    assert type(a.ups.target) is type(b.ups.target)


def test_the_kept_config_is_the_validated_one(
    cache: Path, config: Path, validations: list[str]
) -> None:
    first = snapshot.load_config_kept(config)
    assert validations == [str(config)]
    assert len(_kept(cache)) == 1
    again = snapshot.load_config_kept(config)
    assert validations == [str(config)]  # from the snapshot: not validated again
    _same(again, load_config(config))
    _same(again, first)
    assert again.nodes.all == first.nodes.all  # methods and properties as on the model


def _rich() -> dict[str, Any]:
    """The example with every power method, feeds, load shedding and a notify target."""
    data: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    servers, agents = data["nodes"]["servers"], data["nodes"]["agents"]
    every = [*servers, *agents]
    data["power"] = {
        "nodes": {
            servers[0]: {
                "method": "ipmi",
                "address": "10.0.0.50:623",
                "user": "admin",
                "password_file": "/etc/hecate/bmc-0",
            },
            agents[0]: {"method": "wol", "mac": "AA-BB-CC-DD-EE-01", "broadcast": "10.0.0.255"},
            agents[1]: {
                "method": "redfish",
                "url": "https://10.0.0.52/",
                "user": "admin",
                "password_file": "/etc/hecate/bmc-2",
            },
        },
        "feeds": {"A": {"instance": "alpha"}, "B": {"instance": "beta"}},
        "node_feeds": {node: ["A", "B"] if node in servers else ["B"] for node in every},
        "shed": {"after_seconds": 60, "label_selector": "hecate.dev/shed=true"},
    }
    data["notify"] = {"targets": [{"name": "hook", "url": "json://127.0.0.1:8080/h"}]}
    return data


@pytest.mark.parametrize("rich", [False, True])
def test_the_kept_config_round_trips_field_by_field(cache: Path, config: Path, rich: bool) -> None:
    if rich:
        config.write_text(yaml.safe_dump(_rich()))
    fresh = load_config(config)
    snapshot.load_config_kept(config)
    kept = snapshot.load_config_kept(config)
    _same(kept, fresh)
    for node, method in fresh.power.nodes.items():
        assert type(kept.power.nodes[node]) is type(method)
        assert kept.power.method_of(node) == fresh.power.method_of(node)
    assert kept.secret_files() == fresh.secret_files()
    assert kept.power.exposure_warnings() == fresh.power.exposure_warnings()


def test_a_changed_text_is_validated_again(
    cache: Path, config: Path, validations: list[str]
) -> None:
    snapshot.load_config_kept(config)
    data = yaml.safe_load(config.read_text())
    data["ups"]["debounce_polls"] = 7
    config.write_text(yaml.safe_dump(data))
    assert snapshot.load_config_kept(config).ups.debounce_polls == 7
    assert len(validations) == 2


def test_changed_code_is_validated_again(
    cache: Path, config: Path, validations: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshot.load_config_kept(config)
    real = snapshot._code_fingerprint
    monkeypatch.setattr(snapshot, "_code_fingerprint", lambda: real() + b"another Hecate")
    snapshot.load_config_kept(config)
    assert len(validations) == 2


def test_the_code_fingerprint_covers_the_config_sources_and_the_libraries() -> None:
    assert snapshot._code_fingerprint() == snapshot._code_fingerprint()
    # each library's version, found without importing it
    import pydantic  # noqa: PLC0415
    import pydantic_core  # noqa: PLC0415
    import yaml  # noqa: PLC0415

    assert yaml.__version__.encode() in snapshot._library_id("yaml", "__init__.py", "_yaml")
    assert pydantic.VERSION.encode() in snapshot._library_id("pydantic", "version.py", "")
    core = snapshot._library_id("pydantic_core", "__init__.py", "_pydantic_core")
    assert b"_pydantic_core.cpython" in core, core[-200:]
    assert snapshot._library_id("no_such_pkg", "x.py", "") == b"no_such_pkg not installed"
    assert {name for name, _, _ in snapshot._LIBRARIES} == {"pydantic", "pydantic_core", "yaml"}
    del pydantic_core
    one = snapshot.snapshot_key("a: 1\n", fingerprint=b"x")
    assert one != snapshot.snapshot_key("a: 2\n", fingerprint=b"x")
    assert one != snapshot.snapshot_key("a: 1\n", fingerprint=b"y")


def test_an_invalid_config_fails_as_always_and_is_never_kept(
    cache: Path, config: Path, validations: list[str]
) -> None:
    data = yaml.safe_load(config.read_text())
    data["ups"]["debounce_polls"] = "many"
    data["no_such_key"] = 1
    config.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as expected:
        load_config(config)
    for _ in range(2):
        with pytest.raises(ConfigError) as got:
            snapshot.load_config_kept(config)
        assert (got.value.message, got.value.problems) == (
            expected.value.message,
            expected.value.problems,
        )
    assert _kept(cache) == []
    assert len(validations) == 2


def test_an_unreadable_file_fails_as_always(cache: Path, tmp_path: Path) -> None:
    for path in (tmp_path / "missing.yaml", tmp_path):
        with pytest.raises(ConfigError) as expected:
            load_config(path)
        with pytest.raises(ConfigError) as got:
            snapshot.load_config_kept(path)
        assert got.value.message == expected.value.message


def _trap(marker: Path) -> bytes:
    """A pickle that, if it were loaded, would create `marker`."""

    class Trap:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.mkdir, (str(marker),))

    return pickle.dumps(Trap())


@pytest.mark.parametrize("loose", ["file", "dir"])
def test_a_snapshot_others_may_write_is_never_loaded(
    cache: Path, config: Path, validations: list[str], tmp_path: Path, loose: str
) -> None:
    snapshot.load_config_kept(config)
    (kept,) = _kept(cache)
    marker = tmp_path / "trap-ran"
    kept.write_bytes(_trap(marker))
    (kept if loose == "file" else cache).chmod(0o620 if loose == "file" else 0o770)
    assert snapshot.load_config_kept(config) == load_config(config)
    assert not marker.exists()
    assert len(validations) == 2


def test_a_symlinked_snapshot_or_directory_is_never_loaded(
    cache: Path, config: Path, validations: list[str], tmp_path: Path
) -> None:
    snapshot.load_config_kept(config)
    (kept,) = _kept(cache)
    elsewhere = tmp_path / "elsewhere.pickle"
    kept.rename(elsewhere)
    kept.symlink_to(elsewhere)
    snapshot.load_config_kept(config)
    assert len(validations) == 2
    moved = tmp_path / "moved"
    cache.rename(moved)
    cache.symlink_to(moved)
    snapshot.load_config_kept(config)
    assert len(validations) == 3


def test_a_torn_or_foreign_snapshot_is_validated_again(
    cache: Path, config: Path, validations: list[str]
) -> None:
    snapshot.load_config_kept(config)
    (kept,) = _kept(cache)
    good = kept.read_bytes()
    for content in (
        good[: len(good) // 2],  # torn
        b"not a pickle",
        pickle.dumps(("another key", default_config())),  # another text's config
        pickle.dumps((kept.name.removesuffix(snapshot.SUFFIX), {"ups": "a dict"})),
    ):
        kept.write_bytes(content)
        assert snapshot.load_config_kept(config) == load_config(config)
    assert len(validations) == 5


def test_no_place_to_keep_it_is_no_error(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, validations: list[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(snapshot.CACHE_ENV, str(blocker))  # no directory can be made under it
    for _ in range(2):
        assert snapshot.load_config_kept(config) == load_config(config)
    assert len(validations) == 2


def test_unreadable_sources_mean_no_cache(
    cache: Path, config: Path, monkeypatch: pytest.MonkeyPatch, validations: list[str]
) -> None:
    def unreadable() -> bytes:
        raise FileNotFoundError("a zipped install: no source files")

    monkeypatch.setattr(snapshot, "_code_fingerprint", unreadable)
    for _ in range(2):
        assert snapshot.load_config_kept(config) == load_config(config)
    assert snapshot.default_config_kept() == default_config()
    assert len(validations) == 2
    assert not cache.exists()


def test_only_the_newest_are_kept(
    cache: Path, config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshot, "KEEP", 2)
    names: list[str] = []
    for polls in (2, 3, 4, 5):
        data = yaml.safe_load(EXAMPLE.read_text())
        data["ups"]["debounce_polls"] = polls
        config.write_text(yaml.safe_dump(data))
        snapshot.load_config_kept(config)
        names.append(snapshot.snapshot_key(config.read_text()) + snapshot.SUFFIX)
        os.utime(cache / names[-1], ns=(polls * 10**9, polls * 10**9))  # distinct ages
    assert [p.name for p in _kept(cache)] == sorted(names[-2:])
    assert not list(cache.glob(".*"))  # no temp file left


def test_the_defaults_are_kept_too(cache: Path, validations: list[str]) -> None:
    assert snapshot.default_config_kept() == default_config()
    assert len(_kept(cache)) == 1
    _same(snapshot.default_config_kept(), default_config())
