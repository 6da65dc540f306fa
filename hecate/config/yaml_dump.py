"""YAML text from data that may hold the config's typed values (hecate.config.addresses:
NodeName, HostPort, Address, UpsTarget, ListenAddress): each dumps as the plain text it holds.

Every YAML dump of such data goes through `safe_dump` (a unit test checks): PyYAML is imported
here and by the config parser, not by the config model, so a read command whose config was kept
validated (hecate.config.snapshot) parses no YAML and never imports PyYAML (about 90 M
instructions, 0.04 s here).
"""

from __future__ import annotations

from typing import Any

import yaml

from hecate.config.addresses import ParsedStr


def _represent(dumper: yaml.SafeDumper, value: ParsedStr) -> yaml.Node:
    return dumper.represent_str(str(value))


# The typed values dump as the plain text they hold (inventories, playbooks, config text).
yaml.SafeDumper.add_multi_representer(ParsedStr, _represent)


def safe_dump(data: Any, **options: Any) -> str:
    """`yaml.safe_dump(data, **options)` as text, the typed values as their text."""
    text: str = yaml.safe_dump(data, **options)
    return text
