"""The SSH jump-host preflight: can the jump host be reached, and so which inventory to use.

The only I/O here is one bounded ``ssh ... JUMP true`` (:func:`check_jump_host`); the command
line and the inventory given its outcome are built by the pure
:mod:`hecate.adapters.ansible.inventory`.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from hecate.adapters.ansible.inventory import InventoryPlan, jump_preflight_argv, plan_inventory
from hecate.config.model import HecateConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JumpCheck:
    ok: bool
    detail: str = ""


Runner = Callable[..., "subprocess.CompletedProcess[str]"]


def check_jump_host(
    config: HecateConfig, *, timeout_s: int | None = None, run: Runner = subprocess.run
) -> JumpCheck:
    """Can the jump host be reached (``ssh -o BatchMode=yes ... JUMP true``)? Fails fast."""
    argv = jump_preflight_argv(config, timeout_s)
    connect = timeout_s or config.ssh_connect_timeout_seconds
    try:
        done = run(
            argv,
            capture_output=True,
            text=True,
            timeout=connect + 5,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return JumpCheck(False, f"no answer within {connect + 5}s")
    except OSError as exc:
        return JumpCheck(False, f"cannot run ssh: {exc.strerror or exc}")
    if done.returncode == 0:
        return JumpCheck(True)
    lines = (done.stderr or "").strip().splitlines()
    return JumpCheck(False, lines[-1] if lines else f"ssh exited {done.returncode}")


def prepare_inventory(
    config: HecateConfig,
    *,
    preflight: bool = True,
    check: Callable[[HecateConfig], JumpCheck] = check_jump_host,
) -> InventoryPlan:
    """The inventory to run with: through the jump host if it answers, else direct (warned)."""
    if not config.ssh_jump_host or not preflight:
        return plan_inventory(config)
    outcome = check(config)
    plan = plan_inventory(config, jump_reachable=outcome.ok, jump_detail=outcome.detail)
    for warning in plan.warnings:
        log.warning("%s", warning)
    return plan


__all__ = ["JumpCheck", "Runner", "check_jump_host", "prepare_inventory"]
