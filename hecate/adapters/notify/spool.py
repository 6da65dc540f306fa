"""The notification spool: one file per message and target under `state_dir/notify-spool/`.

Messages made while the network is down (the router is on the same UPS) wait here, are sent in
order with their original time once it is back, also after a restart. Each file is written
atomically (temp, fsync, rename: hecate.adapters.statedir.files) and removed once its target
took the message, so a message is sent once (a crash between the send and the removal is the
only window where it could be sent again). The spool is bounded: beyond `max_messages` the
oldest are dropped (and counted). Files are named `SEQUENCE.TARGET.json`: the sequence orders
them across restarts; a full spool drops its oldest non-critical message first.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from hecate.adapters.statedir.files import atomic_write_json
from hecate.core.notify_events import Notice
from hecate.errors import StateError

log = logging.getLogger(__name__)

SPOOL_DIR = "notify-spool"
MAX_MESSAGES = 500  # a long outage makes a few dozen; this bounds the disk use (a few KB each)
MAX_FILE_BYTES = 16 * 1024
_NAME = re.compile(r"(\d{12})\.([A-Za-z0-9][A-Za-z0-9_.-]{0,62})\.json")


@dataclass(frozen=True)
class Spooled:
    seq: int
    target: str
    notice: Notice
    path: Path


class Spool:
    def __init__(self, state_dir: Path, max_messages: int = MAX_MESSAGES) -> None:
        self.dir = state_dir / SPOOL_DIR
        self.max_messages = max_messages
        self._lock = threading.Lock()
        self._next = max((seq for seq, _, _ in self._names()), default=0) + 1

    def _names(self) -> list[tuple[int, str, Path]]:
        try:
            entries = list(self.dir.iterdir())
        except FileNotFoundError:
            return []
        except OSError as exc:
            log.error("notification spool %s cannot be listed: %s", self.dir, exc.strerror)
            return []
        found = []
        for path in entries:
            match = _NAME.fullmatch(path.name)
            if match:
                found.append((int(match[1]), match[2], path))
        return sorted(found)

    def add(self, notice: Notice, targets: list[str]) -> list[str]:
        """Spool `notice` for each target; returns the targets whose oldest message was
        dropped to keep the bound. Raises StateError when the disk refuses the write."""
        dropped: list[str] = []
        with self._lock:
            for target in targets:
                existing = self._names()
                if len(existing) >= self.max_messages:
                    _, old_target, old = _victim(existing)
                    with contextlib.suppress(OSError):
                        old.unlink()
                    dropped.append(old_target)
                seq = self._next
                self._next += 1
                atomic_write_json(self.dir / f"{seq:012d}.{target}.json", notice.to_json())
        return dropped

    def pending(self) -> list[Spooled]:
        """Every spooled message, oldest first; an unreadable file is set aside (renamed
        `.bad`) so it never blocks the ones after it."""
        out = []
        for seq, target, path in self._names():
            try:
                raw = path.read_bytes()
                if len(raw) > MAX_FILE_BYTES:
                    raise ValueError("too large")
                notice = Notice.from_json(json.loads(raw))
            except FileNotFoundError:
                continue
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.error("notification spool: %s unreadable (%s): set aside", path.name, exc)
                with contextlib.suppress(OSError):
                    path.replace(path.with_name(path.name + ".bad"))
                continue
            out.append(Spooled(seq, target, notice, path))
        return out

    def done(self, item: Spooled) -> None:
        """The target took it: never sent again."""
        try:
            item.path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StateError(f"cannot remove {item.path}: {exc.strerror}") from None

    def targets(self) -> set[str]:
        """The targets with something spooled."""
        return {target for _, target, _ in self._names()}

    def depth(self) -> int:
        return len(self._names())


def _victim(existing: list[tuple[int, str, Path]]) -> tuple[int, str, Path]:
    """The message a full spool drops: the oldest that is not critical (a shutdown told is
    worth more than the outage's updates after it), or the oldest when all are."""
    for entry in existing:
        try:
            if json.loads(entry[2].read_bytes()[:MAX_FILE_BYTES]).get("severity") != "critical":
                return entry
        except (OSError, ValueError, AttributeError):
            return entry  # unreadable: no message lost by dropping it
    return existing[0]
