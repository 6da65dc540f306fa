"""Every notification target: the config's inline ones and those of `notify.urls_file`."""

from __future__ import annotations

from hecate.adapters.secret_file import read_secret_file
from hecate.config.model import HecateConfig
from hecate.config.notify import NotifyTarget, parse_urls_text
from hecate.errors import ConfigError


def load_targets(config: HecateConfig) -> list[NotifyTarget]:
    """Inline targets, then the URLs file's (read like the NUT password file: a loose file is
    read with a warning). Raises ConfigError naming the file, the line and the target, never a
    URL."""
    targets = list(config.notify.targets)
    path = config.notify.urls_file
    if path is None:
        return targets
    data = read_secret_file(path, "notification URLs file", loose="warn")
    try:
        text = data.decode("utf-8")
        extra = parse_urls_text(text, str(path))
    except UnicodeDecodeError:
        raise ConfigError(f"notification URLs file {path} is not UTF-8 text") from None
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    names = {t.name for t in targets}
    for target in extra:
        if target.name in names:
            raise ConfigError(f"{path}: target {target.name!r} is also in notify.targets")
    return [*targets, *extra]
