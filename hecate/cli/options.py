"""The options most commands share, as typer types (this module imports typer; the read
commands' lean path, hecate.cli.read_run, never imports it)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ConfigOpt = Annotated[
    Path,
    typer.Option("--config", "-c", help="Hecate config file.", show_default=True),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
