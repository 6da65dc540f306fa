r"""NUT's network protocol, read strictly (pure: no I/O; lines come from a callable).

The grammar is the one in NUT's developer guide ("Network protocol information") and what upsd
sends (`common/parseconf.c`, `pconf_encode`):

- a quoted value is `"..."`; inside it, `\` escapes `"`, `\` and `#` (upsd escapes all three);
  any other escape, a bare `"` or `\`, or a missing closing quote is malformed;
- `LIST VAR <ups>` answers `BEGIN LIST VAR <ups>`, then `VAR <ups> <var> "<value>"` lines, then
  `END LIST VAR <ups>`; `GET VAR <ups> <var>` answers `VAR <ups> <var> "<value>"`;
  `LIST UPS` answers `BEGIN LIST UPS`, `UPS <ups> "<description>"` lines, `END LIST UPS`;
- any command may instead be answered `ERR <CODE> [<extra>...]` (first line only: an ERR inside
  a list is not something upsd sends).

Every line is matched whole against what the request allows: the UPS asked for, the variable
asked for, the quoting. Anything else (a line naming another UPS, a second value for a variable,
a NUL byte, a line over `MAX_LINE_BYTES`, more than `MAX_LIST_LINES` lines) raises
`ProtocolViolation`, which the client turns into a failed poll: a reading is made only from an
answer that is entirely well formed. Values stay bytes here: what a value that is not UTF-8
means is decided by the one reading parser (`hecate.core.readings`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

# upsd's values are at most 256 bytes (ST_MAX_VALUE_LEN), 512 escaped; names are short.
MAX_LINE_BYTES: Final = 4096
# A real UPS serves 20-400 variables; a list longer than this is not upsd.
MAX_LIST_LINES: Final = 4096

# An unquoted word: printable ASCII without space, '"' or '\' (NUT names never hold those).
_WORD: Final = rb"[!#-\[\]-~]+"
# A quoted value: any byte but '"', '\', NUL and LF, or an escape upsd writes.
_QUOTED: Final = rb'"((?:[^"\\\x00\n]|\\["\\#])*)"'
_UNESCAPE: Final = re.compile(rb'\\(["\\#])')

_ERR: Final = re.compile(rb"ERR ([A-Z0-9][A-Z0-9-]*)(?: [ -~]*)?")
_VAR: Final = re.compile(rb"VAR (" + _WORD + rb") (" + _WORD + rb") " + _QUOTED)
_UPS: Final = re.compile(rb"UPS (" + _WORD + rb") " + _QUOTED)
_OK: Final = re.compile(rb"OK(?: [!-~]+)*")


class ProtocolViolation(Exception):  # noqa: N818  # a condition of the answer, not a bug
    """The answer is not what upsd sends for this request. `reason` is a short fixed phrase
    (for counting), `line` the offending line (bytes, as received; may be empty)."""

    def __init__(self, reason: str, line: bytes = b"") -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line


class ErrAnswer(Exception):  # noqa: N818  # upsd's own answer, not a bug
    """upsd answered `ERR <code> ...` (`code` is the word, `text` the whole line)."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


NextLine = Callable[[], bytes]


def quote(text: str) -> str:
    """`text` as one quoted protocol word (for USERNAME and PASSWORD), escaped as upsd does."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("#", "\\#")
    return f'"{escaped}"'


def unescape(quoted_body: bytes) -> bytes:
    r"""The value inside a well-formed quoted word (`\"` -> `"`, `\\` -> `\`, `\#` -> `#`)."""
    return _UNESCAPE.sub(rb"\1", quoted_body)


def check_line(line: bytes) -> bytes:
    """A line as the session hands it over (no LF): bounded, and no NUL (upsd is C: its strings
    cannot carry one)."""
    if len(line) > MAX_LINE_BYTES:
        raise ProtocolViolation(f"a line longer than {MAX_LINE_BYTES} bytes", line[:80])
    if b"\x00" in line:
        raise ProtocolViolation("a NUL byte in a line", line)
    return line


def raise_if_err(line: bytes) -> None:
    """`ERR <CODE> ...` raises ErrAnswer; a line that starts like one but is not, a violation."""
    if not line.startswith(b"ERR"):
        return
    match = _ERR.fullmatch(line)
    if match is None:
        raise ProtocolViolation("a malformed ERR line", line)
    raise ErrAnswer(match.group(1).decode("ascii"), line.decode("ascii"))


def expect_ok(line: bytes) -> bytes:
    """`OK`, or `OK` and words (`OK PRIMARY-GRANTED`, `OK TRACKING <id>`); ERR raises
    ErrAnswer."""
    raise_if_err(line)
    if _OK.fullmatch(line) is None:
        raise ProtocolViolation("not an OK answer", line)
    return line


def _expect_exact(line: bytes, wanted: bytes, reason: str) -> None:
    if line != wanted:
        raise ProtocolViolation(reason, line)


def parse_var_line(line: bytes, ups: str, name: str | None = None) -> tuple[str, bytes]:
    """One `VAR <ups> <var> "<value>"` line: (variable name, unescaped value bytes).

    The line must name `ups` (and `name`, when given) exactly."""
    match = _VAR.fullmatch(line)
    if match is None:
        raise ProtocolViolation("not a well-formed VAR line (quoting, escapes or words)", line)
    if match.group(1) != ups.encode("ascii"):
        raise ProtocolViolation("a VAR line for another UPS", line)
    var = match.group(2).decode("ascii")
    if name is not None and var != name:
        raise ProtocolViolation("a VAR line for another variable", line)
    return var, unescape(match.group(3))


def read_list_var(next_line: NextLine, ups: str) -> dict[str, bytes]:
    """The answer to `LIST VAR <ups>`: every variable, values as unescaped bytes."""
    first = check_line(next_line())
    raise_if_err(first)
    _expect_exact(first, b"BEGIN LIST VAR " + ups.encode("ascii"), "not BEGIN LIST VAR <ups>")
    end = b"END LIST VAR " + ups.encode("ascii")
    found: dict[str, bytes] = {}
    for _ in range(MAX_LIST_LINES):
        line = check_line(next_line())
        if line == end:
            return found
        if line.startswith(b"END"):
            raise ProtocolViolation("an END line for another list or UPS", line)
        if line.startswith(b"ERR"):
            raise ProtocolViolation("an ERR line inside a list", line)
        name, value = parse_var_line(line, ups)
        if name in found:
            raise ProtocolViolation("a variable listed twice", line)
        found[name] = value
    raise ProtocolViolation(f"a list longer than {MAX_LIST_LINES} lines")


def read_get_var(next_line: NextLine, ups: str, name: str) -> bytes:
    """The answer to `GET VAR <ups> <name>`: the value as unescaped bytes."""
    line = check_line(next_line())
    raise_if_err(line)
    return parse_var_line(line, ups, name)[1]


def read_list_ups(next_line: NextLine) -> dict[str, bytes]:
    """The answer to `LIST UPS`: UPS name -> description (unescaped bytes)."""
    first = check_line(next_line())
    raise_if_err(first)
    _expect_exact(first, b"BEGIN LIST UPS", "not BEGIN LIST UPS")
    found: dict[str, bytes] = {}
    for _ in range(MAX_LIST_LINES):
        line = check_line(next_line())
        if line == b"END LIST UPS":
            return found
        match = _UPS.fullmatch(line)
        if match is None:
            raise ProtocolViolation("not a well-formed UPS line", line)
        ups = match.group(1).decode("ascii")
        if ups in found:
            raise ProtocolViolation("a UPS listed twice", line)
        found[ups] = unescape(match.group(2))
    raise ProtocolViolation(f"a list longer than {MAX_LIST_LINES} lines")


def as_text(line: bytes) -> str:
    """A received line for a message (bytes that are not UTF-8 as backslash escapes)."""
    return line.decode("utf-8", "backslashreplace")


def cut(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
