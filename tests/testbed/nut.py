"""A real NUT server for tests and by hand: `upsd` with `dummy-ups` drivers, no systemd.

Each `NutServer` lives in its own temp dir (NUT_CONFPATH = NUT_STATEPATH), listens on 127.0.0.1
at a free port and runs one dummy-ups driver per UPS, all as foreground child processes in their
own process groups. Several servers can run at once. A server starts in about 3 s: dummy-ups
only serves upsd on its 1 s poll ticks.

Through `setpriv --pdeathsig KILL` the processes die with the test process, even on SIGKILL.
The kernel ties that signal to the *thread* that started them: start (and restart) servers,
drivers and upsd from a thread that outlives them, such as pytest's main thread.

Readings change through `set_reading()`: it rewrites the UPS's `.dev` file (the dump, then the
overridden variables; the value survives a driver restart, and variables the dump lacks can be
added) and waits, bounded, until upsd serves the new values: about one driver poll (1 s). A
`SET VAR` would be no faster: dummy-ups applies it at its next poll too. Every wait in this
module is bounded.

By hand: `scripts/nut-testbed up [--ups NAME]... [--from-dump [NAME=]FILE]...`
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

UPSD = Path("/lib/nut/upsd")
DUMMY_UPS = Path("/lib/nut/dummy-ups")
# NUT's device dump library: real UPS models' variables, served through dummy-ups.
DDL_DIR = Path(os.environ.get("HECATE_NUT_DDL", "/work/shared/nut-ddl"))

DEFAULT_UPS = "pyrphoros"
USER = "hecate"
SECONDARY_USER = "monitor"

# A UPS on mains with a full battery.
DEFAULT_VARS: Mapping[str, str] = {
    "ups.status": "OL",
    "battery.runtime": "1800",
    "battery.charge": "100",
    "ups.load": "20",
}

_VAR_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_UPS_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")

# Every PID any NutServer in this process started (for leftover checks).
_SPAWNED: set[int] = set()


class NutTestbedError(RuntimeError):
    """The test bed could not do what was asked (a process did not start, a wait ran out)."""


class NutAnswerError(Exception):
    """upsd answered a command with an error line."""

    def __init__(self, answer: str) -> None:
        super().__init__(answer)
        self.answer = answer


def spawned_pids() -> frozenset[int]:
    """PIDs of every upsd / dummy-ups process started by a NutServer in this process."""
    return frozenset(_SPAWNED)


def leftover_processes() -> list[int]:
    """PIDs that a NutServer started and that still run as upsd or dummy-ups (per pgrep)."""
    running: set[int] = set()
    for name in ("upsd", "dummy-ups"):
        result = subprocess.run(
            ["pgrep", "-x", name], capture_output=True, text=True, check=False, timeout=10
        )
        running.update(int(pid) for pid in result.stdout.split())
    return sorted(running & _SPAWNED)


_INLINE_COMMENT = re.compile(r"(^|\s)#.*$")


def parse_dump(text: str) -> dict[str, str]:
    """A device dump (`.dev`, as `upsc` prints a UPS) as a dict: `name: value` lines.

    Comments, also trailing ones (`ups.status: OFF  #BAD: ...`), and other lines are dropped.
    """
    found: dict[str, str] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        name, sep, value = stripped.partition(":")
        if not sep or not _VAR_NAME.fullmatch(name):
            continue
        found[name] = _INLINE_COMMENT.sub("", value).strip()
    return found


def read_dump(path: Path) -> dict[str, str]:
    return parse_dump(path.read_text(encoding="utf-8", errors="replace"))


def wait_until(
    condition: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.05
) -> None:
    """Poll `condition` until it holds; NutTestbedError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return
        if time.monotonic() >= deadline:
            raise NutTestbedError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(interval_s)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _format_value(value: float | str) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# --------------------------------------------------------------------------------------------
# A minimal NUT protocol client, independent of the code under test.


class NutSession:
    """One connection to upsd speaking the raw text protocol."""

    def __init__(self, host: str, port: int, timeout_s: float = 5.0) -> None:
        self._sock = socket.create_connection((host, port), timeout=timeout_s)
        self._buffer = b""

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.sendall(b"LOGOUT\n")
        self._sock.close()

    def __enter__(self) -> NutSession:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _line(self) -> str:
        while b"\n" not in self._buffer:
            chunk = self._sock.recv(4096)
            if not chunk:
                raise ConnectionResetError("upsd closed the connection")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode("utf-8", "replace")

    def command(self, line: str) -> str:
        """Send one command; return its one-line answer, raising NutAnswerError on ERR."""
        self._sock.sendall(f"{line}\n".encode())
        answer = self._line()
        if answer.startswith("ERR"):
            raise NutAnswerError(answer)
        return answer

    def login(self, user: str, password: str) -> None:
        self.command(f"USERNAME {user}")
        self.command(f"PASSWORD {_quote(password)}")

    def list_vars(self, ups: str) -> dict[str, str]:
        self.command(f"LIST VAR {ups}")
        found: dict[str, str] = {}
        while not (line := self._line()).startswith("END LIST VAR"):
            words = shlex.split(line)
            if len(words) == 4 and words[0] == "VAR":
                found[words[2]] = words[3]
        return found

    def set_var(self, ups: str, name: str, value: str) -> None:
        self.command(f"SET VAR {ups} {name} {_quote(value)}")


# --------------------------------------------------------------------------------------------
# Processes


class _Processes:
    """The children of one server; kill_all() is also the server's GC/exit finalizer."""

    def __init__(self) -> None:
        self.running: dict[str, subprocess.Popen[bytes]] = {}
        self.lock = threading.Lock()

    def spawn(self, key: str, args: Sequence[str], env: Mapping[str, str], log: Path) -> None:
        prefix: list[str] = []
        setpriv = shutil.which("setpriv")
        if setpriv is not None:  # die with the test process even if it is SIGKILLed
            prefix = [setpriv, "--pdeathsig", "KILL", "--"]
        with log.open("ab") as log_file:
            proc = subprocess.Popen(
                [*prefix, *args],
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _SPAWNED.add(proc.pid)
        with self.lock:
            self.running[key] = proc

    def alive(self, key: str) -> bool:
        proc = self.running.get(key)
        return proc is not None and proc.poll() is None

    def stop(self, key: str, timeout_s: float = 5.0) -> None:
        with self.lock:
            proc = self.running.pop(key, None)
        if proc is None:
            return
        if proc.poll() is None:  # not reaped yet: its PID (= its process group) is still ours
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout_s)

    def kill_all(self) -> None:
        for key in list(self.running):
            self.stop(key)


def _run_as() -> str:
    """NUT daemons started as root switch to user `nut` unless told: stay who we are."""
    return pwd.getpwuid(os.geteuid()).pw_name


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


# --------------------------------------------------------------------------------------------
# The server


class NutServer:
    """A real upsd with one dummy-ups driver per UPS. Use as a context manager or call close().

    `ups` names UPSes that start from DEFAULT_VARS (on mains, runtime 1800 s, charge 100 %);
    `devices` maps further UPS names to a real device dump (a `.dev` file, e.g. from
    /work/shared/nut-ddl) or to a dict of variables. With neither, one UPS named `pyrphoros`.
    """

    def __init__(
        self,
        ups: Sequence[str] = (),
        devices: Mapping[str, Path | Mapping[str, str]] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        start: bool = True,
        ready_timeout_s: float = 20.0,
    ) -> None:
        devices = dict(devices or {})
        names = [*ups, *devices]
        if not names:
            names = [DEFAULT_UPS]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate UPS names in {names}")
        for name in names:
            if not _UPS_NAME.fullmatch(name) or name == "default":
                raise ValueError(f"invalid UPS name {name!r}")
        self.host = host
        self._fixed_port = port
        self.port = port if port is not None else free_port(host)
        self.ready_timeout_s = ready_timeout_s
        self.ups_names: tuple[str, ...] = tuple(names)
        self.user = USER
        self.password = secrets.token_hex(12)
        self.secondary_user = SECONDARY_USER
        self.secondary_password = secrets.token_hex(12)
        self.dir = Path(tempfile.mkdtemp(prefix="nut-"))  # short: driver socket paths are limited
        self.password_file = self.dir / "password"
        self._procs = _Processes()
        self._finalizer = weakref.finalize(self, _cleanup, self._procs, self.dir)
        self._base: dict[str, str] = {}
        self._overrides: dict[str, dict[str, str]] = {name: {} for name in names}
        self._mtime: dict[str, int] = {}
        for name in names:
            source = devices.get(name)
            if source is None:
                self._base[name] = "".join(f"{k}: {_quote(v)}\n" for k, v in DEFAULT_VARS.items())
            elif isinstance(source, Path):
                self._base[name] = source.read_text(encoding="utf-8", errors="replace")
            else:
                self._base[name] = "".join(f"{k}: {_quote(v)}\n" for k, v in source.items())
        self._env = {**os.environ, "NUT_CONFPATH": str(self.dir), "NUT_STATEPATH": str(self.dir)}
        self._write_config()
        if start:
            try:
                self.start()
            except BaseException:
                self.close()
                raise

    # -- description ---------------------------------------------------------------------

    def target(self, ups: str = DEFAULT_UPS) -> str:
        """`ups@host:port` as hecate and upsc take it."""
        return f"{ups}@{self.host}:{self.port}"

    def __repr__(self) -> str:
        return f"NutServer({self.host}:{self.port}, ups={list(self.ups_names)}, dir={self.dir})"

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start every driver, then upsd, and wait until upsd serves every UPS."""
        for name in self.ups_names:
            self._spawn_driver(name)
        for name in self.ups_names:
            self._wait_driver_socket(name)
        attempts = 1 if self._fixed_port is not None else 3
        for attempt in range(attempts):
            try:
                self.start_upsd()
            except NutTestbedError:
                if attempt + 1 == attempts or self.upsd_running:
                    raise
                self.port = free_port(self.host)  # lost a race for the port: try another one
                self._write_config()
            else:
                return

    def close(self) -> None:
        """Stop every process this server started and remove its directory. Idempotent."""
        self._finalizer()

    def __enter__(self) -> NutServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def pids(self) -> list[int]:
        """PIDs of this server's processes that still run."""
        return sorted(p.pid for p in list(self._procs.running.values()) if p.poll() is None)

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    # -- upsd ----------------------------------------------------------------------------

    @property
    def upsd_running(self) -> bool:
        return self._procs.alive("upsd")

    def start_upsd(self) -> None:
        """Start upsd (on the same port as before) and wait until it serves every running UPS."""
        if self.upsd_running:
            return
        log = self.dir / "upsd.log"
        self._procs.spawn("upsd", [str(UPSD), "-F", "-u", _run_as()], self._env, log)

        def ready() -> bool:
            if not self.upsd_running:
                raise NutTestbedError(f"upsd exited during start-up:\n{_log_tail(log)}")
            return all(self._serves(name) for name in self.ups_names if self._driver_alive(name))

        wait_until(ready, self.ready_timeout_s, f"upsd on {self.host}:{self.port}")

    def stop_upsd(self) -> None:
        """Stop upsd; connections to its port are refused afterwards."""
        self._procs.stop("upsd")
        wait_until(lambda: not self._accepts(), 5.0, "upsd's port to close")

    # -- drivers -------------------------------------------------------------------------

    def start_driver(self, ups: str) -> None:
        """Start the UPS's driver and wait until upsd serves its current reading again."""
        self._known(ups)
        if self._driver_alive(ups):
            return
        self._spawn_driver(ups)
        if self.upsd_running:
            wait_until(lambda: self._serves(ups), self.ready_timeout_s, f"upsd to serve {ups}")
        else:
            self._wait_driver_socket(ups)

    def stop_driver(self, ups: str) -> None:
        """Stop the UPS's driver; upsd then answers ERR DRIVER-NOT-CONNECTED for it."""
        self._known(ups)
        self._procs.stop(f"driver:{ups}")
        if self.upsd_running:
            wait_until(
                lambda: self._answer_error(ups) == "ERR DRIVER-NOT-CONNECTED",
                10.0,
                f"upsd to notice the driver of {ups} is gone",
            )

    # -- readings ------------------------------------------------------------------------

    def set_reading(
        self,
        ups: str = DEFAULT_UPS,
        status: str | None = None,
        runtime: float | str | None = None,
        charge: float | str | None = None,
        load: float | str | None = None,
        *,
        extra: Mapping[str, str | float] | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        """Change some variables of a UPS and wait until upsd serves them (if it runs).

        Only the given values change; the others keep their value. `extra` sets any variable.
        Values may be text, to serve garbage (`runtime="36:00"`) as some firmware does.
        """
        self._known(ups)
        changes: dict[str, str] = {}
        for name, value in (
            ("ups.status", status),
            ("battery.runtime", runtime),
            ("battery.charge", charge),
            ("ups.load", load),
            *(extra or {}).items(),
        ):
            if value is not None:
                if not _VAR_NAME.fullmatch(name):
                    raise ValueError(f"invalid variable name {name!r}")
                changes[name] = _format_value(value)
        if not changes:
            return
        self._overrides[ups].update(changes)
        self._write_dev(ups)
        if not (self.upsd_running and self._driver_alive(ups)):
            return
        wait_until(
            lambda: self._shows(ups, changes), timeout_s, f"upsd to serve {changes} for {ups}"
        )

    def vars(self, ups: str = DEFAULT_UPS) -> dict[str, str]:
        """What upsd serves for the UPS now (raises NutAnswerError on ERR answers)."""
        with NutSession(self.host, self.port) as session:
            return session.list_vars(ups)

    # -- internals -----------------------------------------------------------------------

    def _known(self, ups: str) -> None:
        if ups not in self.ups_names:
            raise ValueError(f"{ups!r} is not a UPS of {self!r}")

    def _write_private(self, path: Path, text: str) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.chmod(0o600)
        tmp.replace(path)

    def _write_config(self) -> None:
        sections = [
            f"[{name}]\n  driver = dummy-ups\n  port = {name}.dev\n  pollinterval = 1\n"
            f'  desc = "Hecate test bed UPS {name}"\n'
            for name in self.ups_names
        ]
        self._write_private(self.dir / "ups.conf", "\n".join(sections))
        self._write_private(self.dir / "upsd.conf", f"LISTEN {self.host} {self.port}\n")
        self._write_private(
            self.dir / "upsd.users",
            f"[{self.user}]\n  password = {_quote(self.password)}\n  upsmon primary\n"
            "  actions = SET\n  instcmds = ALL\n\n"
            f"[{self.secondary_user}]\n  password = {_quote(self.secondary_password)}\n"
            "  upsmon secondary\n",
        )
        self._write_private(self.password_file, self.password + "\n")
        for name in self.ups_names:
            if not (self.dir / f"{name}.dev").exists():
                self._write_dev(name)

    def _write_dev(self, ups: str) -> None:
        """The dump, then the overrides (dummy-ups applies lines in order: the last one wins)."""
        text = self._base[ups]
        if not text.endswith("\n"):
            text += "\n"
        overrides = self._overrides[ups]
        if overrides:
            text += "# test bed overrides\n"
            text += "".join(f"{k}: {_quote(v)}\n" for k, v in overrides.items())
        path = self.dir / f"{ups}.dev"
        self._write_private(path, text)
        # dummy-ups re-reads the file when its mtime (whole seconds) changes: always move it on.
        stamp = max(self._mtime.get(ups, 0) + 1, int(time.time()))
        self._mtime[ups] = stamp
        os.utime(path, (stamp, stamp))

    def _driver_socket(self, ups: str) -> Path:
        return self.dir / f"dummy-ups-{ups}"

    def _driver_alive(self, ups: str) -> bool:
        return self._procs.alive(f"driver:{ups}")

    def _spawn_driver(self, ups: str) -> None:
        self._driver_socket(ups).unlink(missing_ok=True)
        args = [str(DUMMY_UPS), "-a", ups, "-u", _run_as(), "-F"]
        self._procs.spawn(f"driver:{ups}", args, self._env, self.dir / f"driver-{ups}.log")

    def _wait_driver_socket(self, ups: str) -> None:
        def ready() -> bool:
            self._check_driver(ups)
            return self._driver_socket(ups).exists()

        wait_until(ready, self.ready_timeout_s, f"the dummy-ups driver of {ups}")

    def _check_driver(self, ups: str) -> None:
        if not self._driver_alive(ups):
            log = _log_tail(self.dir / f"driver-{ups}.log")
            raise NutTestbedError(f"the dummy-ups driver of {ups} exited:\n{log}")

    def _accepts(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1.0):
                return True
        except OSError:
            return False

    def _try_vars(self, ups: str) -> dict[str, str] | str:
        """upsd's variables for the UPS, or the error (an ERR line or a connection problem)."""
        try:
            return self.vars(ups)
        except NutAnswerError as exc:
            return exc.answer
        except OSError as exc:
            return f"{type(exc).__name__}: {exc}"

    def _answer_error(self, ups: str) -> str | None:
        found = self._try_vars(ups)
        return found if isinstance(found, str) else None

    def _serves(self, ups: str) -> bool:
        """upsd serves the driver's data (not just its WAIT placeholder), overrides applied."""
        self._check_driver(ups)
        found = self._try_vars(ups)
        if isinstance(found, str) or "driver.name" not in found:
            return False
        return all(found.get(k) == v for k, v in self._overrides[ups].items())

    def _shows(self, ups: str, expected: Mapping[str, str]) -> bool:
        self._check_driver(ups)
        found = self._try_vars(ups)
        return not isinstance(found, str) and all(found.get(k) == v for k, v in expected.items())


def _cleanup(procs: _Processes, directory: Path) -> None:
    # upsd first: it would otherwise log the drivers going away.
    procs.stop("upsd")
    procs.kill_all()
    shutil.rmtree(directory, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# By hand: python -m tests.testbed.nut up


def _dump_arg(text: str) -> tuple[str, Path]:
    name, sep, file = text.partition("=")
    path = Path(file if sep else text)
    if not sep:
        name = re.sub(r"[^A-Za-z0-9_.+-]", "_", path.stem)
    if not path.is_file():
        candidates = sorted(DDL_DIR.glob(f"**/{path.name}")) if not path.is_absolute() else []
        if len(candidates) != 1:
            raise argparse.ArgumentTypeError(f"no such dump file: {path}")
        path = candidates[0]
    return name, path


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="nut-testbed", description="Run a real upsd with dummy-ups UPSes for by-hand tests."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start a server and stay in the foreground until Ctrl-C")
    up.add_argument("--ups", action="append", default=[], metavar="NAME", help="a UPS on mains")
    up.add_argument(
        "--from-dump",
        action="append",
        default=[],
        type=_dump_arg,
        metavar="[NAME=]FILE",
        help=f"a UPS serving a real device dump (a .dev file, e.g. from {DDL_DIR})",
    )
    up.add_argument("--port", type=int, default=None, help="listen port (default: a free one)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    devices: dict[str, Path | Mapping[str, str]] = dict(args.from_dump)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with NutServer(ups=args.ups, devices=devices, port=args.port) as server:
        first = server.ups_names[0]
        print(f"upsd:          {server.host}:{server.port}")
        print(f"user:          {server.user} (upsmon primary, actions = SET)")
        print(f"password file: {server.password_file}")
        print(f"UPS names:     {', '.join(server.ups_names)}")
        print(f"targets:       {', '.join(server.target(n) for n in server.ups_names)}")
        print(f"directory:     {server.dir}")
        print(f"try:           upsc {server.target(first)}")
        print(
            f"               upsrw -s 'ups.status=OB DISCHRG' -u {server.user}"
            f' -p "$(cat {server.password_file})" {server.target(first)}'
        )
        print("Ctrl-C stops it.", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while server.upsd_running:
                time.sleep(0.5)
            print("upsd exited", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
