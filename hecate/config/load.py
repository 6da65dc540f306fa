"""Reading a config file: a bounded, non-blocking read of a regular UTF-8 file, and strict YAML
(duplicate keys, deep nesting and alias bombs are errors). `hecate.config.model.load_config` uses
it.

PyYAML is imported when a text is parsed, not with this module: a read command whose config was
kept validated (hecate.config.snapshot) parses nothing and does without it.
"""

from __future__ import annotations

import functools
import os
import stat
from pathlib import Path
from typing import Any

from hecate.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/hecate/hecate.yaml")  # where an installed Hecate reads it

# Limits of the config file reader: far above any real config, far below any harm.
MAX_CONFIG_BYTES = 1 << 20
MAX_YAML_DEPTH = 32
MAX_YAML_NODES = 100_000


@functools.cache
def _strict_loader() -> Any:
    """The loader class (made once, on the first parse: see the module doc)."""
    import yaml  # noqa: PLC0415

    class _StrictLoader(yaml.SafeLoader):
        """SafeLoader that refuses duplicate keys and nesting deeper than MAX_YAML_DEPTH."""

        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            self._depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            self._depth += 1
            try:
                if self._depth > MAX_YAML_DEPTH:
                    raise yaml.YAMLError(f"nested deeper than {MAX_YAML_DEPTH} levels")
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

        def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
            if isinstance(node, yaml.MappingNode):
                seen: set[object] = set()
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    key = self.construct_object(key_node, deep=True)
                    try:
                        duplicate = key in seen
                        seen.add(key)
                    except TypeError:
                        continue  # an unhashable key: the base class reports it
                    if duplicate:
                        raise yaml.YAMLError(
                            f"duplicate key {key!r} (line {key_node.start_mark.line + 1}); "
                            "keep only one"
                        )
            return super().construct_mapping(node, deep=deep)

    return _StrictLoader


def _count_nodes(data: object, budget: int = MAX_YAML_NODES) -> None:
    """Refuse data that expands (through aliases) to more than `budget` values."""
    stack: list[object] = [data]
    seen = 0
    while stack:
        item = stack.pop()
        seen += 1
        if seen > budget:
            raise ConfigError(f"more than {budget} values once aliases are expanded (a YAML bomb?)")
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and not _encodable(item):
            # YAML's "\ud800" escape makes a lone surrogate: no file, log or JSON document
            # downstream could write it, so it stops here
            raise ConfigError(f"{ascii(item)[:60]}: not valid Unicode (a lone surrogate)")


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_yaml(text: str, source: str = "<config>") -> object:
    """Strict YAML: duplicate keys, deep nesting and alias bombs are errors, never a crash."""
    import yaml  # noqa: PLC0415 - see the module doc

    try:
        data = yaml.load(text, Loader=_strict_loader())  # noqa: S506 - a SafeLoader subclass
        _count_nodes(data)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {_one_line(str(exc))}") from None
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc.message}") from None
    except RecursionError:
        raise ConfigError(f"{source}: not valid YAML: nested too deeply") from None
    except ValueError as exc:  # an integer of more than 4300 digits (int's own limit)
        raise ConfigError(f"{source}: not valid YAML: {_one_line(str(exc))}") from None
    return data


def _one_line(text: str) -> str:
    return " ".join(text.split())


def read_config_text(path: Path) -> str:
    """The file's text: a regular file, at most MAX_CONFIG_BYTES, UTF-8 without NUL bytes.

    Opened without blocking, so a FIFO or a device never hangs the reader.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except ValueError:
        raise ConfigError(f"{path!r}: the path contains a NUL byte") from None
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such config file (copy configs/hecate.example.yaml there, "
            "or pass --config)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise ConfigError(f"{path}: is a directory; pass the config file itself")
        if not stat.S_ISREG(mode):
            raise ConfigError(f"{path}: not a regular file (a FIFO, socket or device?)")
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_CONFIG_BYTES:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    finally:
        os.close(fd)
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes; not a Hecate config")
    raw = b"".join(chunks)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (bad byte at offset {exc.start})") from None
    if "\x00" in text:
        raise ConfigError(f"{path}: contains a NUL byte at offset {text.index(chr(0))}")
    return text.removeprefix("\ufeff")
