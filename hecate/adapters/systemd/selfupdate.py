"""What `hecate status` says about the self-update (hecate-update.timer, roles/hecate_install).

The update installs only commits signed by a key the operator listed at install time
(HECATE_UPDATE_TRUSTED_KEYS, copied to TRUSTED_KEYS); without keys the installer leaves the
timer off. Read from the files the installer writes; whether the last update run failed is
asked of systemd (`systemctl is-failed`), for `hecate status` and the metrics.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

TRUSTED_KEYS = Path("/etc/hecate/update-trusted-keys")
TIMER_LINK = Path("/etc/systemd/system/timers.target.wants/hecate-update.timer")


@dataclass(frozen=True)
class SelfUpdate:
    enabled: bool
    trusted_keys: str | None

    @property
    def text(self) -> str:
        if self.trusted_keys is None:
            return (
                "off: no trusted keys (install with HECATE_UPDATE_TRUSTED_KEYS=FILE, an ssh "
                "allowed-signers file or a GPG keyring, to switch it on)"
            )
        if not self.enabled:
            return (
                "off: the timer is not enabled (HECATE_ENABLE_UPDATE=0, or the checkout is not a "
                f"git checkout on its branch: the installer said which); trusted keys in "
                f"{self.trusted_keys}"
            )
        return f"on: installs only commits signed by a key in {self.trusted_keys}"

    def to_json(self) -> dict[str, object]:
        return {"enabled": self.enabled, "trusted_keys": self.trusted_keys, "text": self.text}


def self_update(keys: Path = TRUSTED_KEYS, timer_link: Path = TIMER_LINK) -> SelfUpdate:
    try:
        has_keys = keys.is_file() and keys.stat().st_size > 0
    except OSError:
        has_keys = False
    return SelfUpdate(
        enabled=has_keys and timer_link.exists(), trusted_keys=str(keys) if has_keys else None
    )


def update_failed() -> bool:
    """True when systemd shows hecate-update.service failed (False without systemd)."""
    try:
        done = subprocess.run(
            ["systemctl", "is-failed", "--quiet", "hecate-update.service"],  # noqa: S607
            capture_output=True,
            timeout=5,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


class UpdateFailedCache:
    """`update_failed()` at most once per `ttl_s` (a scrape every few seconds must not fork
    systemctl each time)."""

    def __init__(self, ttl_s: float = 60.0) -> None:
        self.ttl_s = ttl_s
        self._at: float | None = None
        self._value = False

    def __call__(self) -> bool:
        now = time.monotonic()
        if self._at is None or now - self._at >= self.ttl_s:
            self._value, self._at = update_failed(), now
        return self._value
