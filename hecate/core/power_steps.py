"""The timing of the power stages (issue 25), as pure numbers: how often a node's SSH is asked,
when a power-on is sent again, how often a BMC is asked whether a node is off yet."""

from __future__ import annotations

from typing import Literal

SSH_POLL_S = 1.0  # between two SSH checks of a node being waited for
BMC_POLL_S = 2.0  # between two power readings of a node being powered off
FIRST_RESEND_S = 5.0
MAX_RESEND_S = 60.0


def resend_delay(attempt: int) -> float:
    """Seconds after power-on number `attempt` (1: the first) before the next is sent while
    the node's SSH stays silent: 5, 10, 20, 40, then every 60 s. Sending it again is harmless
    (a BMC ignores `on` for a node that is on; a booting node ignores a magic packet) and
    covers a lost packet or a BMC that was busy."""
    if attempt < 1:
        return 0.0
    return min(MAX_RESEND_S, FIRST_RESEND_S * float(2 ** (attempt - 1)))


ConfirmStep = Literal["done", "wait", "soft_off", "hard_off", "give_up"]


def confirm_step(
    *,
    state: str,
    reached: bool,
    asked_soft: bool,
    asked_hard: bool,
    waited_s: float,
    timeout_s: float,
    hard_allowed: bool,
) -> ConfirmStep:
    """The next thing to do for a node the shutdown powers off, from its BMC's reading.

    `reached`: its poweroff went through SSH. A node SSH did not reach is asked a soft off
    through its BMC first. Still on after `timeout_s`: a hard off, when `hard_allowed`
    (shutdown.bmc_hard_off) or when SSH never reached it (left alone it dies with the battery
    anyway, less cleanly); then the reading is waited for once more; then given up on."""
    if state == "off":
        return "done"
    if not reached and not asked_soft:
        return "soft_off"
    if waited_s < timeout_s:
        return "wait"
    if not asked_hard and (hard_allowed or not reached):
        return "hard_off"
    return "give_up"
