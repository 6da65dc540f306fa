"""Validated configs kept for the read commands (issue 29: `status`, `config check` and `replay`
answer within 0.3 s).

Validating a config costs more than the rest of `hecate status` together (the YAML parse and the
build of HecateConfig's validator, about 150 M instructions of some 1000 M). Validation is a pure
function of the file's text and of the code that validates it (`parse_config` looks at no file
the config names), so its result is kept, pickled, under a key that covers both: the text, every
source file of hecate.config and hecate.errors, the versions of pydantic, pydantic-core and
PyYAML, and Python's. A changed config, an upgraded Hecate or library is a new key, validated
again; a config that does not validate is never kept (its errors are made anew each time).

Where: `$XDG_CACHE_HOME/hecate` (else `~/.cache/hecate`), one file per key, the newest
`KEEP` kept. A kept file is trusted, as Python trusts its own `__pycache__`, only when it and
its directory belong to the user running Hecate and nobody else may write them; anything
else (another owner, a symlink, a torn or foreign file, a key that does not match) is ignored
and the config validated as if nothing were kept. The cache never fails a command: a directory
that cannot be made or written is no cache. Only the read commands use it; the daemon and the
flows validate their config as always (`hecate.config.model.load_config`).

Beside each kept config, under the same key, its view (hecate.config.view says why): what
`status`, `config check` and `replay` read, loaded without importing pydantic. This module
imports pydantic (the config models) only on a miss, and names the libraries' versions by their
files (`_LIBRARIES`), so a kept view costs no pydantic import even for its key.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.machinery
import os
import pickle
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import hecate.config
from hecate.config.load import read_config_text
from hecate.config.view import ReadView, read_view

if TYPE_CHECKING:
    from hecate.config.model import HecateConfig

CACHE_ENV = "XDG_CACHE_HOME"
SUFFIX = ".config.pickle"
VIEW_SUFFIX = ".view.pickle"  # the ReadView of the config kept under the same key
KEEP = 8  # kept configs (one per config text and Hecate version), and as many views
MAX_BYTES = 4 << 20  # far above any real config's pickle (the example's is about 5 kB)
_FORMAT = b"hecate-config-snapshot-2"


def cache_dir() -> Path | None:
    """Where validated configs are kept, None when there is no such place (no home)."""
    base = os.environ.get(CACHE_ENV, "")
    if not base:
        try:
            base = str(Path.home() / ".cache")
        except RuntimeError:  # no HOME and no passwd entry
            return None
    return Path(base) / "hecate"


def _code_fingerprint() -> bytes:
    """What validation depends on besides the text: the source of every hecate.config module
    and of hecate.errors, and the versions of the libraries and the interpreter."""
    digest = hashlib.sha256(_FORMAT)
    digest.update(sys.version.encode() + b"\0")
    for library in _LIBRARIES:
        digest.update(_library_id(*library) + b"\0")
    package = Path(hecate.config.__file__).parent
    sources = sorted(path for path in package.iterdir() if path.suffix == ".py")
    for source in [*sources, package.parent / "errors.py"]:
        digest.update(source.name.encode() + b"\0" + source.read_bytes() + b"\0")
    return digest.digest()


# (package, its file that names its version, its compiled part): what identifies an installed
# version without importing it (importing pydantic is what the kept view spares the read commands)
_LIBRARIES = (
    ("pydantic", "version.py", ""),
    ("pydantic_core", "__init__.py", "_pydantic_core"),
    ("yaml", "__init__.py", "_yaml"),
)


def _library_id(package: str, version_file: str, compiled: str) -> bytes:
    """The version file's text and the compiled module's name, size and mtime, found without
    importing the package (a package upgrade rewrites them); b"" for a package not installed."""
    spec = importlib.machinery.PathFinder.find_spec(package)
    locations = list(spec.submodule_search_locations or ()) if spec is not None else []
    if not locations:
        return package.encode() + b" not installed"
    where = Path(locations[0])
    found = [package.encode(), (where / version_file).read_bytes()]
    if compiled:
        for entry in sorted(os.scandir(where), key=lambda e: e.name):
            if entry.name.startswith(compiled + ".") and entry.is_file():
                st = entry.stat()
                found.append(f"{entry.name} {st.st_size} {st.st_mtime_ns}".encode())
    return b"\0".join(found)


def snapshot_key(text: str, *, fingerprint: bytes | None = None) -> str:
    """The key of `text` validated as a config file by this code."""
    code = _code_fingerprint() if fingerprint is None else fingerprint
    return hashlib.sha256(code + b"\0" + text.encode("utf-8", "surrogatepass")).hexdigest()


def _owned_by_me(st: os.stat_result) -> bool:
    return st.st_uid == os.geteuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _read_kept(directory: Path, name: str, key: str) -> object:
    """What is kept in `directory/name` under `key`, or None: absent, not trusted (see the
    module doc) or not kept under this key."""
    try:
        dir_st = os.lstat(directory)
        if not stat.S_ISDIR(dir_st.st_mode) or not _owned_by_me(dir_st):
            return None
        fd = os.open(directory / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or not _owned_by_me(st) or st.st_size > MAX_BYTES:
            return None
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
        kept = pickle.loads(data)  # noqa: S301 - our own file, trusted as described above
    except Exception:  # a torn or foreign file is nothing kept
        return None
    finally:
        os.close(fd)
    if not isinstance(kept, tuple) or len(kept) != 2 or kept[0] != key:
        return None
    return kept[1]


def read_snapshot(directory: Path, key: str) -> HecateConfig | None:
    """The config kept under `key`, or None (see `_read_kept`)."""
    from hecate.config.model import HecateConfig  # noqa: PLC0415 - pydantic: only when used

    config = _read_kept(directory, key + SUFFIX, key)
    return config if isinstance(config, HecateConfig) else None


def read_view_kept(directory: Path, key: str) -> ReadView | None:
    """The view kept under `key`, or None (see `_read_kept`). Imports no pydantic, unless the
    file names its classes (then it is no view and ignored)."""
    view = _read_kept(directory, key + VIEW_SUFFIX, key)
    return view if type(view) is ReadView else None


def write_snapshot(directory: Path, key: str, config: HecateConfig) -> None:
    """Keep `config` under `key` (see `_write_kept`)."""
    _write_kept(directory, key + SUFFIX, key, config)


def write_view(directory: Path, key: str, view: ReadView) -> None:
    """Keep `view` under `key`, beside the config it was made from (see `_write_kept`)."""
    _write_kept(directory, key + VIEW_SUFFIX, key, view)


def _write_kept(directory: Path, name: str, key: str, value: object) -> None:
    """Keep `value` under `key` (atomically: a reader sees the whole file or none), and drop
    all but the newest KEEP of its kind. Best effort: any failure leaves nothing kept, never
    an error."""
    tmp = directory / f".{name}.{os.getpid()}.tmp"
    try:
        data = pickle.dumps((key, value), protocol=pickle.HIGHEST_PROTOCOL)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        dir_st = os.lstat(directory)
        if not stat.S_ISDIR(dir_st.st_mode) or not _owned_by_me(dir_st):
            return
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(tmp, flags, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        tmp.replace(directory / name)
        _prune(directory)
    except Exception:  # no cache is never an error
        with contextlib.suppress(OSError):
            tmp.unlink()


def _prune(directory: Path) -> None:
    for suffix in (SUFFIX, VIEW_SUFFIX):
        kept: list[tuple[int, str]] = []
        for entry in os.scandir(directory):
            if entry.name.endswith(suffix) and entry.is_file(follow_symlinks=False):
                kept.append((entry.stat(follow_symlinks=False).st_mtime_ns, entry.path))
        for _, path in sorted(kept, reverse=True)[KEEP:]:
            with contextlib.suppress(OSError):
                Path(path).unlink()


def _place(text: str, *, defaults: bool = False) -> tuple[Path, str] | None:
    """Where the snapshot of `text` (or of the defaults) would be, None when there is no cache:
    no cache directory, or code whose sources cannot be read (a zipped install)."""
    directory = cache_dir()
    if directory is None:
        return None
    try:
        code = _code_fingerprint()
    except OSError:
        return None
    return directory, snapshot_key(
        text, fingerprint=code + (b"default_config" if defaults else b"")
    )


def _validate(text: str, source: str) -> HecateConfig:
    """`text` parsed and validated as `load_config` does (PyYAML and pydantic: on a miss only)."""
    from hecate.config.load import parse_yaml  # noqa: PLC0415
    from hecate.config.model import parse_config  # noqa: PLC0415

    return parse_config(parse_yaml(text, source), source, file=True)


def _validated(text: str, path: Path, place: tuple[Path, str] | None) -> HecateConfig:
    """The config of `text`: kept under `place`, else validated (and then kept)."""
    if place is not None and (kept := read_snapshot(*place)) is not None:
        return kept
    config = _validate(text, str(path))
    if place is not None:
        write_snapshot(*place, config)
    return config


def load_config_kept(path: Path) -> HecateConfig:
    """`hecate.config.model.load_config(path)`, the same config or the same ConfigError, from
    the kept snapshot when this text was validated by this code before."""
    text = read_config_text(path)  # its errors (missing, a directory, too large) as always
    return _validated(text, path, _place(text))


def load_view_kept(path: Path) -> ReadView:
    """`read_view(load_config(path))`, or the same ConfigError: the kept view when this text
    was validated by this code before (no pydantic imported), else from the kept or a fresh
    validation, and then kept."""
    text = read_config_text(path)
    return _view(_place(text), lambda place: _validated(text, path, place))


def default_view_kept() -> ReadView:
    """`read_view(default_config())`, kept as `load_view_kept` keeps a file's."""
    return _view(_place("", defaults=True), lambda _: default_config_kept())


def _view(
    place: tuple[Path, str] | None, config: Callable[[tuple[Path, str] | None], HecateConfig]
) -> ReadView:
    """The view kept under `place`, else made from `config(place)` and kept."""
    if place is not None and (view := read_view_kept(*place)) is not None:
        return view
    made = read_view(config(place))
    if place is not None:
        write_view(*place, made)
    return made


def default_config_kept() -> HecateConfig:
    """`hecate.config.model.default_config()`, from the kept snapshot when there is one."""
    from hecate.config.model import default_config  # noqa: PLC0415

    place = _place("", defaults=True)
    if place is not None and (kept := read_snapshot(*place)) is not None:
        return kept
    config = default_config()
    if place is not None:
        write_snapshot(*place, config)
    return config
