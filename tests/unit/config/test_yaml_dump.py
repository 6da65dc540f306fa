"""YAML dumps of the config's typed values (hecate.config.yaml_dump): plain text, and PyYAML left
out of the config model's imports (a read command with a kept config never loads it)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

from hecate.config.addresses import Address, HostPort, ListenAddress, NodeName, UpsTarget
from hecate.config.yaml_dump import safe_dump

ROOT = Path(__file__).resolve().parents[3]
# Dumps of data that never holds a config value: the cluster's own manifests.
RAW_DUMPS_ALLOWED = {"hecate/config/yaml_dump.py", "hecate/flows/bootstrap_cache.py"}


def test_typed_values_dump_as_their_text() -> None:
    data = {
        "node": NodeName.parse("titan-0"),
        "hosts": [HostPort.parse("[fd00::1]:22"), Address.parse("10.0.0.1:22")],
        "ups": UpsTarget.parse("ups@nas:3493"),
        "listen": ListenAddress.parse("127.0.0.1:9560"),
    }
    assert safe_dump(data, sort_keys=False) == (
        "node: titan-0\nhosts:\n- '[fd00::1]:22'\n- 10.0.0.1:22\nups: ups@nas:3493\n"
        "listen: 127.0.0.1:9560\n"
    )


def test_every_dump_goes_through_safe_dump() -> None:
    """A dump straight through PyYAML would fail on a typed value (RepresenterError) whenever
    nothing had imported hecate.config.yaml_dump yet."""
    raw: list[str] = []
    for path in sorted((ROOT / "hecate").rglob("*.py")):
        name = str(path.relative_to(ROOT))
        if name in RAW_DUMPS_ALLOWED:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "yaml"
                and node.attr.startswith(("dump", "safe_dump"))
            ):
                raw.append(f"{name}:{node.lineno}")
    assert raw == []


def test_the_config_model_does_not_import_pyyaml() -> None:
    code = "import sys, hecate.config.model, hecate.config.snapshot; print('yaml' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.stdout.strip() == "False"
