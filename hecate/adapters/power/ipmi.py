"""IPMI 2.0 over LAN (lanplus) through Debian's `ipmitool`, one bounded process per call.

Why ipmitool and not pyghmi as the client: the standard tool operators already use to check a
BMC by hand (the same command line reproduces any failure), nothing imported into the daemon
(pyghmi's client keeps a process-wide I/O thread and session table), and a hanging BMC is bounded
by killing one process. The password never appears in the arguments (visible to every user in
`ps`): it goes through the child's environment with `-E` (IPMI_PASSWORD), which only root and
the same user can read.
"""

from __future__ import annotations

import os
import subprocess

from hecate.adapters.secret_file import read_secret_file
from hecate.config.power import IpmiPower
from hecate.core.power import (
    PowerAction,
    PowerReading,
    PowerResult,
    ipmi_failure_reason,
    one_line,
    parse_ipmi_power,
)
from hecate.errors import ConfigError

IPMITOOL = "ipmitool"
# ipmitool's own bounds: -N seconds per try, -R tries, for each message of the session setup.
IPMI_TRY_SECONDS = 1
IPMI_RETRIES = 2
DEFAULT_TIMEOUT = 10.0  # the whole call, session setup included
_COMMANDS: dict[PowerAction, str] = {"on": "on", "off": "soft", "hard_off": "off"}


class IpmiDriver:
    """One node's BMC. Every call returns a value; nothing here raises for a BMC's failure."""

    def __init__(
        self,
        node: str,
        config: IpmiPower,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        ipmitool: str = IPMITOOL,
    ) -> None:
        self.node = node
        self.config = config
        self.timeout = timeout
        self.ipmitool = ipmitool

    @property
    def where(self) -> str:
        return f"BMC {self.config.address.host}:{self.config.port}"

    def argv(self, *command: str) -> list[str]:
        """The ipmitool command line (no password in it: -E reads IPMI_PASSWORD)."""
        c = self.config
        return [
            self.ipmitool,
            "-v",  # says which step of the session failed (see ipmi_failure_reason)
            "-I",
            "lanplus",
            "-H",
            c.address.host,
            "-p",
            str(c.port),
            "-U",
            c.user,
            "-E",
            "-C",
            str(c.cipher_suite),
            "-N",
            str(IPMI_TRY_SECONDS),
            "-R",
            str(IPMI_RETRIES),
            *command,
        ]

    def _run(self, *command: str) -> tuple[bool, str]:
        """(ok, stdout) or (False, the reason): one line, without the password."""
        try:
            password = read_secret_file(
                self.config.password_file, "BMC password file", loose="warn"
            )
        except ConfigError as exc:
            return False, str(exc)
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "LC_ALL": "C",
            "IPMI_PASSWORD": password.decode("utf-8", "replace").strip("\r\n"),
        }
        try:
            done = subprocess.run(  # noqa: S603 - fixed argv, no shell
                self.argv(*command),
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=self.timeout,
                check=False,
            )
        except FileNotFoundError:
            return False, f"{self.ipmitool} is not installed (Debian: apt install ipmitool)"
        except subprocess.TimeoutExpired:
            return False, f"{self.where} did not answer within {self.timeout:g}s"
        secret = env["IPMI_PASSWORD"]
        out = done.stdout.replace(secret, "***") if secret else done.stdout
        err = done.stderr.replace(secret, "***") if secret else done.stderr
        if done.returncode != 0:
            reason = ipmi_failure_reason(err + "\n" + out)
            return False, f"{self.where}: {reason}"
        return True, out

    def status(self) -> PowerReading:
        ok, out = self._run("chassis", "power", "status")
        if not ok:
            return PowerReading(self.node, "ipmi", "unknown", out)
        state = parse_ipmi_power(out)
        if state is None:
            return PowerReading(
                self.node, "ipmi", "unknown", f"{self.where} said {one_line(out, 80)!r}"
            )
        return PowerReading(self.node, "ipmi", state, f"{self.where} says {state}")

    def act(self, action: PowerAction) -> PowerResult:
        command = _COMMANDS[action]
        ok, out = self._run("chassis", "power", command)
        if not ok:
            return PowerResult(self.node, action, False, out)
        return PowerResult(
            self.node, action, True, f"{self.where} accepted chassis power {command}"
        )
