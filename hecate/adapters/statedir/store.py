"""The state directory: intent.json and runs.json, read and written through statefiles.

A corrupt intent fails closed: the file is set aside and a marker (`intent.json.blocked`) is
written next to it. While the marker exists the intent is unknown: reads raise
IntentCorruptError, so startup stays refused (a shutdown may still run: it is always safe),
until the operator checks the cluster and runs `hecate state reset --intent`.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from hecate.adapters.statedir import unsaved
from hecate.adapters.statedir.files import (
    _dumps,
    load_state,
)
from hecate.adapters.statedir.save import (
    LOCK_WAIT_S,
    STRICT_LOCK_WAIT_S,
    keep_unlocked,
    replace_unreadable,
    save_json,
    save_json_strict,
    save_text,
    state_write_lock,
)
from hecate.core.intent import Intent, IntentState, initial_intent, transition
from hecate.core.run_history import RunRecord, append_bounded, encode_runs, parse_runs
from hecate.errors import IntentCorruptError, StateBusyError, StateCorruptError, StateError

INTENT_FILE = "intent.json"
RUNS_FILE = "runs.json"
BLOCKED_FILE = "intent.json.blocked"
WRITE_LOCK = ".write.lock"

log = logging.getLogger("hecate.statefiles")

# Always allowed, even while the intent is unknown: protecting the hardware comes first.
_SAFE_WHEN_UNKNOWN = frozenset({IntentState.SHUTTING_DOWN, IntentState.SHUTDOWN_COMPLETE})


class StateStore:
    def __init__(self, state_dir: Path, *, host: str | None = None) -> None:
        self.state_dir = state_dir
        self.host = host or socket.gethostname()

    @property
    def intent_path(self) -> Path:
        return self.state_dir / INTENT_FILE

    @property
    def runs_path(self) -> Path:
        return self.state_dir / RUNS_FILE

    @property
    def blocked_path(self) -> Path:
        return self.state_dir / BLOCKED_FILE

    @contextlib.contextmanager
    def _write_lock(
        self, *, required: bool = True, wait_s: float | None = None
    ) -> Iterator[StateBusyError | None]:
        """The write lock; without `required`, a lock another process holds past the short
        wait yields why (the caller keeps its write instead: protection never waits)."""
        if wait_s is None:
            wait_s = STRICT_LOCK_WAIT_S if required else LOCK_WAIT_S
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(state_write_lock(self.state_dir, wait_s))
            except StateBusyError as busy:
                if required:
                    raise
                yield busy
                return
            yield None

    def _marker(self) -> str | None:
        """The block marker's text (kept or on disk); None when there is none. A kept marker
        that cannot be read is a marker (fail closed)."""
        try:
            kept = unsaved.kept_text(self.blocked_path)
        except StateCorruptError as exc:
            return str(exc)
        if kept is not None:
            return kept
        try:
            return self.blocked_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return None
        except OSError as exc:  # a failing disk (EIO): the intent cannot be read
            raise StateError(f"cannot read {self.blocked_path}: {exc.strerror}") from None

    def _blocked_error(self, detail: str | None = None) -> IntentCorruptError:
        if detail is None:
            try:
                detail = self._marker()
            except StateError:
                detail = None
        kept = f": {detail.strip()}" if detail and detail.strip() else ""
        return IntentCorruptError(
            f"the intent is unknown ({self.intent_path.name} was unreadable{kept}); startup "
            "stays refused: check the cluster and the kept copy, then run "
            "`hecate state reset --intent`"
        )

    def read_intent(self, now: float | None = None, *, move: bool = True) -> Intent:
        """The recorded intent; `normal` when none was ever written.

        IntentCorruptError when the file (or its kept copy) is corrupt (the intent is then
        blocked, and the file set aside once the block is on disk) or was found corrupt
        earlier and not reset since. With move=False (a read-only look: `hecate status`, a dry
        run) a corrupt file is reported and left as it is, unblocked: the next run that acts on
        the intent sets it aside.
        """
        marker = self._marker()
        if marker is not None:
            raise self._blocked_error(marker)
        try:
            intent = load_state(
                self.intent_path,
                lambda data: Intent.from_json(data, str(self.intent_path)),
                move=move,
                before_move=self._block,
            )
        except StateCorruptError as exc:
            if not move:
                raise IntentCorruptError(
                    f"the intent is unknown ({self.intent_path.name} is unreadable: "
                    f"{exc.reason}; left in place); startup stays refused: check the cluster "
                    "and the file, then run `hecate state reset --intent`",
                    reason=exc.reason,
                ) from None
            where = f"; moved to {exc.kept}" if exc.kept is not None else ""
            self._block(f"{exc.reason}{where}")
            raise self._blocked_error() from None
        if intent is None:
            return initial_intent(now if now is not None else time.time(), self.host)
        return intent

    def _block(self, detail: str) -> bool:
        """Record that the intent is unknown: on disk (True), else kept (memory and the
        runtime directory). The corrupt intent is set aside only once this is on disk: a
        kept marker is lost with a reboot, the corrupt file left in place is not."""
        return save_text(self.blocked_path, detail + "\n")

    def intent_or_none(
        self, now: float | None = None, *, unreadable_is_unknown: bool = False
    ) -> Intent | None:
        """The intent, or None when it is unknown (corrupt; or, with `unreadable_is_unknown`,
        when it cannot be read at all); other errors raise."""
        try:
            return self.read_intent(now)
        except IntentCorruptError:
            return None
        except StateError as exc:
            if not unreadable_is_unknown:
                raise
            log.error("the intent cannot be read (%s): taken as unknown", exc)
            return None

    def set_intent(
        self,
        new: IntentState,
        *,
        reason: str,
        run_id: str | None,
        now: float | None = None,
        keep_if_refused: bool = False,
        nodes: tuple[str, ...] | None = None,
        nodes_down: Mapping[str, str] | None = None,
        nodes_unknown: Mapping[str, str] | None = None,
    ) -> Intent:
        """Move the intent along the transition table and persist it atomically.

        While the intent is unknown only shutdown states may be written, and the block stays.
        `keep_if_refused` (a shutdown: protection before bookkeeping): an intent the disk
        refuses, or cannot give, does not raise; the new one is kept until the disk allows
        (hecate.adapters.statedir.save). Without it, StateError when it cannot be written.
        """
        stamp = now if now is not None else time.time()
        with self._write_lock(required=not keep_if_refused) as busy:
            base = unsaved.identity(self.intent_path)
            current = self.intent_or_none(stamp, unreadable_is_unknown=keep_if_refused)
            if current is None:
                if new not in _SAFE_WHEN_UNKNOWN:
                    raise self._blocked_error()
                nxt = Intent(
                    new,
                    stamp,
                    reason,
                    self.host,
                    run_id,
                    nodes,
                    dict(nodes_down or {}),
                    dict(nodes_unknown or {}),
                )
            else:
                nxt = transition(
                    current,
                    new,
                    now=stamp,
                    reason=reason,
                    host=self.host,
                    run_id=run_id,
                    nodes=nodes,
                    nodes_down=nodes_down,
                    nodes_unknown=nodes_unknown,
                )
            if busy is not None:  # a shutdown never waits on another process's write
                keep_unlocked(self.intent_path, _dumps(nxt.to_json()), base, str(busy))
            elif keep_if_refused:
                save_json(self.intent_path, nxt.to_json())
            else:
                save_json_strict(self.intent_path, nxt.to_json())
            return nxt

    def reset_intent(
        self, state: IntentState = IntentState.NORMAL, *, reason: str, now: float | None = None
    ) -> Intent:
        """The operator's reset: clear the block and record `state` (corrupt copies are kept)."""
        stamp = now if now is not None else time.time()
        with self._write_lock():
            fresh = Intent(state, stamp, reason, self.host, None)
            save_json_strict(self.intent_path, fresh.to_json())
            try:
                self.blocked_path.unlink(missing_ok=True)
            except OSError as exc:
                raise StateError(f"cannot remove {self.blocked_path}: {exc.strerror}") from None
            unsaved.saved(self.blocked_path)  # a kept marker (any process's) goes too
            return fresh

    def load_runs(self, *, move: bool = True) -> list[RunRecord]:
        """The run history; StateCorruptError (file set aside unless move=False) when corrupt."""
        runs = load_state(
            self.runs_path, lambda data: parse_runs(data, str(self.runs_path)), move=move
        )
        return runs or []

    def record_run(self, run: RunRecord, keep: int) -> None:
        """Append a run. A corrupt history is set aside and a new one started: never lost.
        A history the disk cannot give or take never stops a flow: the run is kept until the
        disk allows (hecate.adapters.statedir.save); one that cannot be read is never written
        over."""
        # After every stage: it may wait as long as a healthy writer takes (a snapshot kept
        # over a history others append to would be dropped once they have written).
        with self._write_lock(required=False, wait_s=STRICT_LOCK_WAIT_S) as busy:
            base = unsaved.identity(self.runs_path)
            runs: list[RunRecord] = []
            for _ in range(3):  # a corrupt kept copy, then a corrupt file: each set aside
                try:
                    runs = self.load_runs()
                    break
                except StateCorruptError:
                    runs = []
                except StateError as exc:  # unreadable: never replaced by a shorter history
                    text = _dumps(encode_runs(append_bounded([], run, keep)))
                    replace_unreadable(self.runs_path, text, str(exc))
                    return
            text = _dumps(encode_runs(append_bounded(runs, run, keep)))
            if busy is not None:
                keep_unlocked(self.runs_path, text, base, str(busy))
            else:
                save_text(self.runs_path, text)

    def kept_copies(self) -> list[Path]:
        """Every `*.corrupt-*` file in the state directory, oldest name first."""
        try:
            return sorted(self.state_dir.glob("*.corrupt-*"))
        except OSError:
            return []
