"""Keeping ssh connections to the nodes open before a flow needs them.

A new ssh connection costs about 0.3 s per node on this class of host, and the first stage of a
shutdown used to pay it for every node. :class:`ConnectionWarmer` runs ``playbooks/connect.yml``
(one raw round trip per node) through the flow's own Ansible port, so the ControlPersist masters
the stages reuse are already up: the daemon does it when an outage begins (during the debounce
window) and keeps them fresh while it lasts; a CLI flow starts it as the context opens, in the
background, while the flow's API stages run.

Whether to warm is a pure decision (:func:`warm_due`); the warmer only carries it out, in a
thread, never blocking the caller. A failed warm-up is logged and changes nothing: the stages
connect on their own as before.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from hecate.adapters.ansible.protocol import Ansible, PlaybookRequest
from hecate.adapters.ansible.rundir import CONTROL_PERSIST_S
from hecate.errors import HecateError

log = logging.getLogger(__name__)

CONNECT_PLAYBOOK = "connect"
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

    def __init__(self, factory: Callable[[], Ansible], *, timeout_s: float = 60.0) -> None:
        self._factory = factory
        self._ansible: Ansible | None = None
        self.timeout_s = timeout_s
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
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
            if self._thread is not None and self._thread.is_alive():
                return False
            if not force and not warm_due(self.last_warm, now):
                return False
            self.last_warm = now
            self._thread = threading.Thread(target=self._run, name="hecate-warmup", daemon=True)
            self._thread.start()
            return True

    def _run(self) -> None:
        request = PlaybookRequest(CONNECT_PLAYBOOK, timeout_s=self.timeout_s)
        try:
            result = self.ansible.run(request)
        except HecateError as exc:
            log.warning("ssh warm-up could not run: %s", exc)
            return
        self.runs += 1
        if result.ok:
            log.info("ssh connections open to %d node(s)", len(result.succeeded_hosts))
        else:
            log.info("ssh warm-up: %s (the stages will connect on their own)", result.summary())

    def join(self, timeout_s: float) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
