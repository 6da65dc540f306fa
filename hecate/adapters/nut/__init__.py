"""The NUT adapter: one port (`Ups`) to one UPS on upsd, speaking NUT's protocol itself.

- `hecate.adapters.nut.protocol`: the answers' grammar, read strictly (pure: lines in, values out);
- `hecate.adapters.nut.session`: one upsd connection (one deadline per session, bounded reads,
always
  closed);
- `hecate.adapters.nut.client`: `NutClient`, the protocol client (read, `LIST UPS`, instant
command),
  every failure a `UpsError` subclass (see its module doc);
- `hecate.adapters.nut.port`: `Ups`, the port the daemon, the CLI and the flows use, built once
with its
  credentials; `poll()` returns a `CommError` instead of raising.

Where a UPS is, is `hecate.config.addresses.UpsTarget`, parsed with the config. Each name is
imported from its own module (this package re-exports nothing).
"""
