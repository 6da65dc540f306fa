"""A simulated UPS for drills: the drill sets the reading, the daemon polls it.

Drills exercise Hecate's decisions and flows on the real cluster without touching the real UPS
or its mains supply.
"""

from __future__ import annotations

import threading

from hecate.core.readings import Poll, UpsReading, parse_status


class SimulatedUps:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reading: Poll = UpsReading(parse_status("OL"), 1800.0, 100.0)

    def set(self, status: str, runtime_s: float | None, charge_pct: float | None) -> None:
        with self._lock:
            self._reading = UpsReading(parse_status(status), runtime_s, charge_pct)

    def read(self) -> Poll:
        with self._lock:
            return self._reading
