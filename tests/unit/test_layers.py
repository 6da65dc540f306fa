"""The layers at run time: importing the pure core or the metrics loads no I/O library.

The import-linter contracts in pyproject.toml (`lint-imports`, run by scripts/test) check the
static import graph; this checks what a fresh interpreter really loads, imports inside
functions and re-exports included.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

IO_LIBRARIES = ("ansible_runner", "ansible", "lightkube", "waitress", "httpx2")

PURE_CORE = (
    "hecate.core.policy.step",
    "hecate.core.budget",
    "hecate.core.readings",
    "hecate.core.intent",
    "hecate.cli.plan_text",
    "hecate.core.plan_marks",
    "hecate.core.startup_refusals",
    "hecate.core.battery",
    "hecate.core.replay",
    "hecate.core.doctor.cluster",
    "hecate.core.supervisor",
    "hecate.core.batch_planner",
)


def loaded_after_import(module: str) -> list[str]:
    """Top-level packages a fresh interpreter has loaded after `import module`."""
    code = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    loaded: list[str] = json.loads(done.stdout)
    return loaded


@pytest.mark.parametrize("module", PURE_CORE)
def test_the_pure_core_loads_no_io_library(module: str) -> None:
    loaded = loaded_after_import(module)
    assert [lib for lib in IO_LIBRARIES if lib in loaded] == []
    assert "prometheus_client" not in loaded


def test_the_metrics_load_neither_ansible_nor_lightkube() -> None:
    loaded = loaded_after_import("hecate.adapters.metrics.registry")
    assert "waitress" in loaded  # the check sees what metrics do load ...
    # ... and not what only the drills and the flows need
    assert [lib for lib in ("ansible_runner", "ansible", "lightkube") if lib in loaded] == []


def test_the_ports_load_their_library() -> None:
    """The counterpart, so the checks above cannot pass by looking at nothing."""
    assert "lightkube" in loaded_after_import("hecate.adapters.kube.client")
