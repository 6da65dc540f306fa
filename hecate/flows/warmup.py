"""Keeping ssh connections to the nodes open before a flow needs them.

A new ssh connection costs about 0.3 s per node on this class of host, and the first stage of a
shutdown used to pay it for every node. :class:`ConnectionWarmer` runs ``playbooks/connect.yml``
(one raw round trip per node) through the flow's own Ansible port, so the ControlPersist masters
the stages reuse are already up: the daemon does it when an outage begins (during the debounce
window) and keeps them fresh while it lasts; a CLI flow starts it as the context opens, in the
background, while the flow's API stages run.

Whether to warm is a pure decision (:func:`warm_due`); the warmer only carries it out, in a
thread, never blocking the caller. A failed warm-up is reported (`on_outcome`: the daemon logs
it once and counts it; by default a warning) and changes nothing: the stages connect on their own
as before. :meth:`ConnectionWarmer.stop` cancels a running warm-up: the port kills its
ansible-playbook (ansible-runner's cancel callback), so a daemon told to stop never waits for
a node that does not answer.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from hecate.adapters.ansible.rundir import CONTROL_PERSIST_S

if TYPE_CHECKING:
    from collections.abc import Sequence

    from hecate.adapters.ansible.protocol import Ansible, PlaybookRequest

log = logging.getLogger(__name__)

CONNECT_PLAYBOOK = "connect"
# A warm-up's end: None when it ran (whatever the nodes said), else why it could not run.
Outcome = Callable[[Exception | None], None]

# Refresh well before they expire, so a trigger late in a long outage still finds them open.
REFRESH_S = CONTROL_PERSIST_S * 0.75


def warm_due(last_warm: float | None, now: float, refresh_s: float = REFRESH_S) -> bool:
    """True when the connections should be (re)opened at monotonic time `now`."""
    return last_warm is None or now - last_warm >= refresh_s


class ConnectionWarmer:
    """Runs the connect playbook in the background through one long-lived port.

    `factory` makes the port on first use (the daemon's: building the inventory may run the
    jump-host preflight, which must not happen in the poll thread); pass ``lambda: port`` for a
    port that exists already.
    """

    def __init__(
        self,
        factory: Callable[[], Ansible],
        *,
        timeout_s: float = 60.0,
        on_outcome: Outcome | None = None,
        ahead: Callable[[], Sequence[PlaybookRequest]] | None = None,
    ) -> None:
        self._factory = factory
        # the run the decision would start, started now and held (hecate/adapters/ansible/held.py)
        self._ahead = ahead
        self._on_outcome = on_outcome or _warn
        self._ansible: Ansible | None = None
        self.timeout_s = timeout_s
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()  # set once: no warm-up starts or keeps running after it
        self.last_warm: float | None = None
        self.runs = 0

    @property
    def ansible(self) -> Ansible:
        with self._lock:
            if self._ansible is None:
                self._ansible = self._factory()
            return self._ansible

    @property
    def opened(self) -> Ansible | None:
        """The port if it was made (to close it), else None."""
        return self._ansible

    def warm(self, now: float, *, force: bool = False) -> bool:
        """Start a warm-up unless one runs or the last one is recent; True if one started."""
        with self._lock:
            if self._stop.is_set():
                return False
            if self._thread is not None and self._thread.is_alive():
                return False
            if not force and not warm_due(self.last_warm, now):
                return False
            self.last_warm = now
            self._thread = threading.Thread(target=self._run, name="hecate-warmup", daemon=True)
            self._thread.start()
            return True

    def _run(self) -> None:
        # Imported here: the idle daemon never loads the Ansible chain (issue 23: idle RSS).
        from hecate.adapters.ansible.protocol import PlaybookRequest  # noqa: PLC0415

        request = PlaybookRequest(CONNECT_PLAYBOOK, timeout_s=self.timeout_s)
        try:
            result = self.ansible.run(request, cancel=self._stop)
        except Exception as exc:  # never kills its thread: a warm-up is optional
            self._on_outcome(exc)
            return
        self._on_outcome(None)
        self.runs += 1
        if result.canceled:
            log.info("ssh warm-up stopped")
            return
        if result.ok:
            log.info("ssh connections open to %d node(s)", len(result.succeeded_hosts))
        else:
            log.info("ssh warm-up: %s (the stages will connect on their own)", result.summary())
        if self._ahead is not None and not self._stop.is_set():
            try:  # a hint: the flow runs anew when it was not held
                self.ansible.hold(self._ahead())
            except Exception as exc:
                log.info("could not start the shutdown's node stages ahead: %s", exc)

    def join(self, timeout_s: float) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout_s)

    def stop(self, timeout_s: float) -> bool:
        """Cancel a running warm-up (its ansible-playbook is killed) and start no other; wait
        at most `timeout_s` for it to end. True when no warm-up runs any more."""
        self._stop.set()
        self.join(timeout_s)
        thread = self._thread
        return thread is None or not thread.is_alive()


def _warn(exc: Exception | None) -> None:
    if exc is not None:
        log.warning("ssh warm-up could not run: %s", exc)
