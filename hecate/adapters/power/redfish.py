"""Redfish (DMTF DSP0266) over HTTPS with the standard library: the ComputerSystem's PowerState
and its ComputerSystem.Reset action (On, GracefulShutdown, ForceOff).

urllib, not sushy: the few calls below need no client library, and the daemon must not carry a
heavy import while it idles (this module is imported only when a power action runs). HTTP Basic
authentication on each request (DSP0266 requires services to support it); no session is left
open on the BMC.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import urllib.error
import urllib.request
from typing import Any

from hecate.adapters.power.deadline import Deadline
from hecate.adapters.secret_file import read_secret_file
from hecate.config.power import RedfishPower
from hecate.core.power import PowerAction, PowerReading, PowerResult, one_line, parse_redfish_power
from hecate.errors import ConfigError

DEFAULT_TIMEOUT = 10.0
_RESET_TYPES: dict[PowerAction, str] = {
    "on": "On",
    "off": "GracefulShutdown",
    "hard_off": "ForceOff",
}
MAX_BODY = 1024 * 1024  # a ComputerSystem is a few kB
IN_BETWEEN = ("PoweringOn", "PoweringOff", "Paused")  # DMTF PowerState values that pass


class RedfishError(Exception):
    """One line saying why a Redfish call failed (never the password)."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # urllib would follow a redirect carrying the Authorization header to wherever it points
    # (another host, plain http) and turn a POST into a GET that "succeeds": a redirect is an
    # error here (HTTPError with the 3xx code).
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class RedfishDriver:
    def __init__(self, node: str, config: RedfishPower, *, timeout: float = DEFAULT_TIMEOUT):
        self.node = node
        self.config = config
        self.timeout = timeout

    @property
    def system_path(self) -> str:
        return f"/redfish/v1/Systems/{self.config.system}"

    def _context(self) -> ssl.SSLContext | None:
        if not self.config.url.startswith("https://"):
            return None
        cafile = str(self.config.ca_file) if self.config.ca_file is not None else None
        context = ssl.create_default_context(cafile=cafile)
        if not self.config.verify_tls:  # the operator said so (verify_tls: false)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            password = read_secret_file(
                self.config.password_file, "BMC password file", loose="warn"
            )
        except ConfigError as exc:
            raise RedfishError(str(exc)) from None
        secret = password.decode("utf-8", "replace").strip("\r\n")
        token = base64.b64encode(f"{self.config.user}:{secret}".encode()).decode("ascii")
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - the config allows http(s) only
            self.config.url + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Basic {token}",
                "Accept": "application/json",
                **({"Content-Type": "application/json"} if data is not None else {}),
            },
        )
        where = f"Redfish {self.config.url}"
        deadline = Deadline(self.timeout)  # the whole call (urllib bounds each read only)
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), *deadline.handlers(self._context()), _NoRedirect()
        )
        late = RedfishError(f"{where} did not answer within {self.timeout:g}s")
        try:
            raw = self._exchange(opener, request, method, path, where)
        except RedfishError:
            if deadline.close():
                raise late from None
            raise
        if deadline.close():
            raise late
        if not raw.strip():
            return None
        try:
            return json.loads(raw[:MAX_BODY])
        except (ValueError, RecursionError):  # RecursionError: JSON nested too deep
            raise RedfishError(f"{where}: {method} {path} did not answer JSON") from None

    def _exchange(
        self,
        opener: urllib.request.OpenerDirector,
        request: urllib.request.Request,
        method: str,
        path: str,
        where: str,
    ) -> bytes:
        try:
            with opener.open(request, timeout=self.timeout) as response:
                raw: bytes = response.read(MAX_BODY + 1)
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                raise RedfishError(
                    f"{where} refused the credentials of user {self.config.user!r} "
                    f"(HTTP {exc.code})"
                ) from None
            if 300 <= exc.code < 400:
                raise RedfishError(
                    f"{where}: {method} {path}: HTTP {exc.code}, a redirect (not followed: give "
                    f"power.nodes.{self.node}.url as the BMC's own https:// address)"
                ) from None
            if exc.code == 404:
                raise RedfishError(
                    f"{where} has no {path} (HTTP 404; check power.nodes.{self.node}.system)"
                ) from None
            raise RedfishError(f"{where}: {method} {path}: HTTP {exc.code} {exc.reason}") from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, ssl.SSLCertVerificationError):
                raise RedfishError(
                    f"{where}: TLS certificate not trusted ({reason.verify_message}); "
                    "give ca_file, or verify_tls: false"
                ) from None
            text = getattr(reason, "strerror", None) or str(reason)
            raise RedfishError(f"{where} does not answer: {one_line(text, 120)}") from None
        except TimeoutError:
            raise RedfishError(f"{where} did not answer within {self.timeout:g}s") from None
        except http.client.HTTPException as exc:  # a broken answer (status line, headers, body)
            raise RedfishError(
                f"{where}: {method} {path}: a broken HTTP answer ({type(exc).__name__})"
            ) from None
        except (OSError, ValueError) as exc:
            raise RedfishError(f"{where}: {one_line(str(exc), 120)}") from None
        return raw

    def status(self) -> PowerReading:
        try:
            system = self._request("GET", self.system_path)
        except RedfishError as exc:
            return PowerReading(self.node, "redfish", "unknown", str(exc))
        value = system.get("PowerState") if isinstance(system, dict) else None
        state = parse_redfish_power(value)
        said = one_line(str(value), 80)
        return PowerReading(
            self.node,
            "redfish",
            state,
            f"Redfish {self.config.url} says PowerState {said}",
            in_between=state == "unknown" and value in IN_BETWEEN,
        )

    def _reset_target(self) -> str:
        system = self._request("GET", self.system_path)
        try:
            target = system["Actions"]["#ComputerSystem.Reset"]["target"]
        except (KeyError, TypeError):
            target = None
        if isinstance(target, str) and target.startswith("/redfish/v1/"):
            return target
        return f"{self.system_path}/Actions/ComputerSystem.Reset"

    def act(self, action: PowerAction) -> PowerResult:
        reset = _RESET_TYPES[action]
        try:
            self._request("POST", self._reset_target(), {"ResetType": reset})
        except RedfishError as exc:
            return PowerResult(self.node, action, False, str(exc))
        return PowerResult(
            self.node, action, True, f"Redfish {self.config.url} accepted ResetType {reset}"
        )
