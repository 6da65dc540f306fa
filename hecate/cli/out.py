"""Printing a line, without the CLI framework: the read commands' lean path (hecate.cli.read_run)
runs without typer, so the modules it imports print through `echo`, as click's `echo` does for
text (a newline, flushed; colour only ever added for a terminal, by hecate.cli.style)."""

from __future__ import annotations

import sys


def echo(message: str = "", *, err: bool = False) -> None:
    stream = sys.stderr if err else sys.stdout
    stream.write(f"{message}\n")
    stream.flush()
