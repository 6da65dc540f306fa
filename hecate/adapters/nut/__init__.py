"""The NUT adapter: one port (`Ups`) to one UPS on upsd, speaking NUT's protocol itself.

- `hecate.adapters.nut.target`: `parse_target` turns `ups@host[:port]` into a `NutTarget` (pure);
- `hecate.adapters.nut.protocol`: the answers' grammar, read strictly (pure: lines in, values out);
- `hecate.adapters.nut.session`: one upsd connection (one deadline per session, bounded reads, always
  closed);
- `hecate.adapters.nut.client`: `NutClient`, the protocol client (read, `LIST UPS`, instant command),
  every failure a `UpsError` subclass (see its module doc);
- `hecate.adapters.nut.port`: `Ups`, the port the daemon, the CLI and the flows use, built once with its
  credentials; `poll()` returns a `CommError` instead of raising.

Every name is importable from `hecate.adapters.nut` itself.
"""

from hecate.adapters.nut.client import (
    DEFAULT_TIMEOUT_S,
    AuthCheck,
    NutClient,
    UpsProtocolError,
    UpsUnknownError,
    reading_from_vars,
)
from hecate.adapters.nut.port import (
    KIND_AUTH,
    KIND_DRIVER_DOWN,
    KIND_PROTOCOL,
    KIND_TIMEOUT,
    KIND_UNKNOWN_UPS,
    KIND_UNREACHABLE,
    Ups,
    UpsPort,
    UpsReader,
    client_from_config,
    comm_error_kind,
    poll,
    poll_config,
    read_password_file,
    ups_from_config,
)
from hecate.adapters.nut.target import DEFAULT_PORT, NutTarget, parse_target

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_TIMEOUT_S",
    "KIND_AUTH",
    "KIND_DRIVER_DOWN",
    "KIND_PROTOCOL",
    "KIND_TIMEOUT",
    "KIND_UNKNOWN_UPS",
    "KIND_UNREACHABLE",
    "AuthCheck",
    "NutClient",
    "NutTarget",
    "Ups",
    "UpsPort",
    "UpsProtocolError",
    "UpsReader",
    "UpsUnknownError",
    "client_from_config",
    "comm_error_kind",
    "parse_target",
    "poll",
    "poll_config",
    "read_password_file",
    "reading_from_vars",
    "ups_from_config",
]
