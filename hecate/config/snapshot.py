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
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.machinery
import os
import pickle
import stat
import sys
from pathlib import Path

import pydantic
import pydantic_core

import hecate.config
from hecate.config.load import parse_yaml, read_config_text
from hecate.config.model import HecateConfig, default_config, parse_config

CACHE_ENV = "XDG_CACHE_HOME"
SUFFIX = ".config.pickle"
KEEP = 8  # kept configs (one per config text and Hecate version)
MAX_BYTES = 4 << 20  # far above any real config's pickle (the example's is about 5 kB)
_FORMAT = b"hecate-config-snapshot-1"


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
    for part in (sys.version, pydantic.VERSION, pydantic_core.__version__):
        digest.update(part.encode() + b"\0")
    digest.update(_yaml_init() + b"\0")
    package = Path(hecate.config.__file__).parent
    sources = sorted(path for path in package.iterdir() if path.suffix == ".py")
    for source in [*sources, package.parent / "errors.py"]:
        digest.update(source.name.encode() + b"\0" + source.read_bytes() + b"\0")
    return digest.digest()


def _yaml_init() -> bytes:
    """PyYAML's `__init__.py` (its `__version__`), found without importing PyYAML."""
    module = sys.modules.get("yaml")
    origin = getattr(module, "__file__", None)
    if origin is None:
        spec = importlib.machinery.PathFinder.find_spec("yaml")
        origin = spec.origin if spec is not None else None
    return Path(origin).read_bytes() if origin else b"no PyYAML"


def snapshot_key(text: str, *, fingerprint: bytes | None = None) -> str:
    """The key of `text` validated as a config file by this code."""
    code = _code_fingerprint() if fingerprint is None else fingerprint
    return hashlib.sha256(code + b"\0" + text.encode("utf-8", "surrogatepass")).hexdigest()


def _owned_by_me(st: os.stat_result) -> bool:
    return st.st_uid == os.geteuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def read_snapshot(directory: Path, key: str) -> HecateConfig | None:
    """The config kept under `key`, or None: absent, not trusted (see the module doc) or not
    a snapshot of this key."""
    try:
        dir_st = os.lstat(directory)
        if not stat.S_ISDIR(dir_st.st_mode) or not _owned_by_me(dir_st):
            return None
        fd = os.open(directory / (key + SUFFIX), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or not _owned_by_me(st) or st.st_size > MAX_BYTES:
            return None
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
        kept = pickle.loads(data)  # noqa: S301 - our own file, trusted as described above
    except Exception:  # a torn or foreign file is no snapshot
        return None
    finally:
        os.close(fd)
    if not isinstance(kept, tuple) or len(kept) != 2 or kept[0] != key:
        return None
    config = kept[1]
    return config if isinstance(config, HecateConfig) else None


def write_snapshot(directory: Path, key: str, config: HecateConfig) -> None:
    """Keep `config` under `key` (atomically: a reader sees the whole file or none), and drop
    all but the newest KEEP. Best effort: any failure leaves no snapshot, never an error."""
    tmp = directory / f".{key}.{os.getpid()}.tmp"
    try:
        data = pickle.dumps((key, config), protocol=pickle.HIGHEST_PROTOCOL)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        dir_st = os.lstat(directory)
        if not stat.S_ISDIR(dir_st.st_mode) or not _owned_by_me(dir_st):
            return
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(tmp, flags, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        tmp.replace(directory / (key + SUFFIX))
        _prune(directory)
    except Exception:  # no cache is never an error
        with contextlib.suppress(OSError):
            tmp.unlink()


def _prune(directory: Path) -> None:
    kept: list[tuple[int, str]] = []
    for entry in os.scandir(directory):
        if entry.name.endswith(SUFFIX) and entry.is_file(follow_symlinks=False):
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


def load_config_kept(path: Path) -> HecateConfig:
    """`hecate.config.model.load_config(path)`, the same config or the same ConfigError, from
    the kept snapshot when this text was validated by this code before."""
    text = read_config_text(path)  # its errors (missing, a directory, too large) as always
    place = _place(text)
    if place is not None and (kept := read_snapshot(*place)) is not None:
        return kept
    source = str(path)
    config = parse_config(parse_yaml(text, source), source, file=True)
    if place is not None:
        write_snapshot(*place, config)
    return config


def default_config_kept() -> HecateConfig:
    """`hecate.config.model.default_config()`, from the kept snapshot when there is one."""
    place = _place("", defaults=True)
    if place is not None and (kept := read_snapshot(*place)) is not None:
        return kept
    config = default_config()
    if place is not None:
        write_snapshot(*place, config)
    return config
