"""Colour for people at a terminal, never for pipes, files, journals or `NO_COLOR` users.

Only the words that matter are coloured (ok, FAIL, NOT PROTECTED, error:), so the text reads
the same without colour. Light on purpose (the entry points import it, and the read commands'
lean path runs without typer): the escape codes are written here, as click's `style` writes them.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

# The words progress lines, status and doctor colour, by what they mean.
GOOD = "green"
BAD = "red"
NOTE = "yellow"

# ANSI SGR codes of the colours above (click's numbering)
_SGR = {"red": 31, "green": 32, "yellow": 33}

STATUS_COLOURS = {
    "ok": GOOD,
    "changed": GOOD,
    "success": GOOD,
    "failed": BAD,
    "unreachable": BAD,
    "aborted": BAD,
    "partial": NOTE,
    "warning": NOTE,
    "waiting": NOTE,
    "skipped": NOTE,
}


def colour_on(stream: TextIO | None = None) -> bool:
    """Colour when `stream` (stdout by default) is a terminal, unless NO_COLOR is set to
    anything non-empty (no-color.org) or TERM is `dumb`."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    target = stream if stream is not None else sys.stdout
    isatty = getattr(target, "isatty", None)
    return bool(callable(isatty) and isatty())


def paint(text: str, colour: str | None, *, err: bool = False, bold: bool = False) -> str:
    """`text` in `colour` when the stream it goes to (stderr with err=True) shows colour."""
    if colour is None or not colour_on(sys.stderr if err else sys.stdout):
        return text
    return f"\x1b[{_SGR[colour]}m" + ("\x1b[1m" if bold else "") + f"{text}\x1b[0m"


def paint_status(word: str, width: int = 0, *, err: bool = False) -> str:
    """A status word padded to `width`, coloured by what it means (padding stays uncoloured
    so columns line up with and without colour)."""
    padding = " " * max(0, width - len(word))
    return paint(word, STATUS_COLOURS.get(word.strip()), err=err) + padding
