"""ansible-runner's private data dir for one run: its layout, environment and settings.

Every run gets a fresh dir ``STATE_DIR/ansible-artifacts/<stamp>-<playbook>-<hex>/`` laid out the
way ansible-runner expects (``inventory/hosts``, ``env/settings``, ``env/envvars``,
``env/extravars``, and an empty ``ansible.cfg`` that hides the caller's); its artifacts stay there
for post-mortems and only the newest ``keep`` run dirs are kept (:func:`rotate_run_dirs`).
:func:`runner_envvars` and :func:`runner_settings` are pure: every Ansible option is set there.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from hecate.adapters.statedir import unsaved
from hecate.adapters.statedir.private_files import private_dir, write_private_text
from hecate.errors import AnsibleRunError

ARTIFACTS_DIRNAME = "ansible-artifacts"
DEFAULT_REMOTE_TMP = "~/.ansible/tmp"
# ssh masters outlive their last use this long; the warm-up (flows/warmup.py) refreshes them.
CONTROL_PERSIST_S = 120
# A unix socket path must fit in 108 bytes; ssh's %C hash takes 40 plus a temporary suffix.
_MAX_CONTROL_DIR_LEN = 50
RUN_DIR_RE = re.compile(r"^\d{8}T\d{6}\.\d{6}Z-[A-Za-z0-9_.-]+-[0-9a-f]{8}$")
_STATE_SUBDIRS = ("ansible-home", "ansible-tmp")


@dataclass(frozen=True)
class RunEnv:
    """What the environment of every run of one port is made of."""

    state_dir: Path
    control_dir: Path
    roles_dir: Path
    action_plugins_dir: Path
    remote_tmp: str
    connect_timeout_s: int
    forks: int
    extra_env: Mapping[str, str]


def runner_envvars(env: RunEnv, run_dir: Path) -> dict[str, str]:
    """``env/envvars``: every Ansible option of a run (no ansible.cfg is read)."""
    state = env.state_dir
    out = {
        "ANSIBLE_CONFIG": str(run_dir / "ansible.cfg"),
        "ANSIBLE_HOME": str(state / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(state / "ansible-tmp"),
        "ANSIBLE_REMOTE_TEMP": env.remote_tmp,
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(env.control_dir),
        "ANSIBLE_PERSISTENT_CONTROL_PATH_DIR": str(env.control_dir),
        "ANSIBLE_ROLES_PATH": str(env.roles_dir),
        # hecate_gate, the held runs' gate (hecate/adapters/ansible/held.py)
        "ANSIBLE_ACTION_PLUGINS": str(env.action_plugins_dir),
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_SSH_ARGS": f"-o ControlMaster=auto -o ControlPersist={CONTROL_PERSIST_S}s",
        "ANSIBLE_SSH_RETRIES": "0",
        "ANSIBLE_TIMEOUT": str(env.connect_timeout_s),
        "ANSIBLE_FORKS": str(env.forks),
        "ANSIBLE_GATHERING": "explicit",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_INTERPRETER_PYTHON": "auto_silent",
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
        "ANSIBLE_NOCOLOR": "True",
        # only ansible.builtin is used: skip scanning sys.path for collections (faster start)
        "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "False",
    }
    # ansible-playbook next to this interpreter (a venv) even when PATH lacks it
    bindir = Path(sys.executable).parent
    if (bindir / "ansible-playbook").exists():
        out["PATH"] = os.pathsep.join([str(bindir), os.environ.get("PATH", os.defpath)])
    out.update(env.extra_env)
    return out


def runner_settings(timeout_s: float) -> dict[str, Any]:
    """``env/settings``: the run's bound (job and idle timeout) and quiet output."""
    seconds = max(1, math.ceil(timeout_s))
    return {
        "job_timeout": seconds,
        "idle_timeout": seconds,
        "pexpect_timeout": 0.2,
        "pexpect_use_poll": True,
        "suppress_ansible_output": True,
    }


def short_tmp_dir(prefix: str) -> Path:
    """A private temp dir short enough to hold ssh ControlPersist sockets."""
    base = Path(tempfile.gettempdir())
    if len(str(base)) > 20:
        base = Path("/tmp")  # noqa: S108 - only as a short base for a private mkdtemp
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    if len(str(path)) > _MAX_CONTROL_DIR_LEN:
        raise AnsibleRunError(f"control path dir {path} is too long for ssh sockets")
    return path


def new_run_dir(artifacts_root: Path, playbook: str, now: datetime) -> Path:
    """A fresh, private run dir named by time, playbook and a random suffix."""
    stamp = now.strftime("%Y%m%dT%H%M%S.%fZ")
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(playbook).stem) or "playbook"
    run_dir = artifacts_root / f"{stamp}-{stem}-{uuid.uuid4().hex[:8]}"
    try:
        private_dir(artifacts_root)
        run_dir.mkdir(mode=0o700)
    except OSError as exc:  # a full or read-only state disk: the run cannot start
        raise AnsibleRunError(f"cannot make a run dir in {artifacts_root}: {_why(exc)}") from None
    return run_dir


def write_private_data_dir(
    run_dir: Path,
    *,
    inventory_text: str,
    envvars: Mapping[str, str],
    settings: Mapping[str, Any],
    extravars: Mapping[str, Any],
    state_dir: Path,
    batch: str | None = None,
) -> None:
    """Lay out ansible-runner's private data dir for one run (owner-only: it holds the
    environment and the inventory); `batch`, a combined playbook, goes to `batch.yml`."""
    files = {
        "inventory/hosts": inventory_text,
        "ansible.cfg": "# Hecate sets every option through env/envvars; this file only hides\n"
        "# ./ansible.cfg and /etc/ansible/ansible.cfg from the run.\n[defaults]\n",
        "env/envvars": json.dumps(dict(envvars), indent=1),
        "env/settings": json.dumps(dict(settings), indent=1),
        "env/extravars": json.dumps(dict(extravars), indent=1),
    }
    if batch is not None:
        files["batch.yml"] = batch
    try:
        (run_dir / "inventory").mkdir(mode=0o700)
        (run_dir / "env").mkdir(mode=0o700)
        for name, text in files.items():
            write_private_text(run_dir / name, text)
        for sub in _STATE_SUBDIRS:
            private_dir(state_dir / sub)
    except OSError as exc:
        raise AnsibleRunError(f"cannot write the run dir {run_dir}: {_why(exc)}") from None


def _why(exc: OSError) -> str:
    where = f": {exc.filename}" if exc.filename else ""
    return f"{exc.strerror or exc}{where}"


def fallback_state_dir(state_dir: Path) -> Path:
    """Where a run's private data dir, Ansible's home and temp go when `state_dir` refuses
    them (full, read-only, gone, failing): under the runtime directory, so the stage runs."""
    return unsaved.runtime_dir() / "ansible" / unsaved.dir_key(state_dir)


def prepare_run_dir(
    state_dir: Path,
    name: str,
    now: datetime,
    *,
    envvars: Callable[[Path, Path], Mapping[str, str]],
    inventory_text: str,
    settings: Mapping[str, Any],
    extravars: Mapping[str, Any],
    batch: str | None = None,
) -> Path:
    """A run's private data dir under `state_dir/ansible-artifacts`; when the state disk
    refuses it, the same under fallback_state_dir (protection before bookkeeping: a full or
    failing state disk never stops a node stage). `envvars(run_dir, state)` are the run's
    environment with Ansible's home and temp under `state`."""
    last: OSError | AnsibleRunError | None = None
    for state in (state_dir, fallback_state_dir(state_dir)):
        run_dir: Path | None = None
        try:
            run_dir = new_run_dir(state / ARTIFACTS_DIRNAME, name, now)
            write_private_data_dir(
                run_dir,
                inventory_text=inventory_text,
                envvars=envvars(run_dir, state),
                settings=settings,
                extravars=extravars,
                state_dir=state,
                batch=batch,  # owner-only, as the rest of the run dir
            )
        except (OSError, AnsibleRunError) as exc:  # the two above wrap their OSError
            if run_dir is not None:
                shutil.rmtree(run_dir, ignore_errors=True)
            if last is None:
                why = exc.strerror or str(exc) if isinstance(exc, OSError) else str(exc)
                unsaved.note_failure(state / ARTIFACTS_DIRNAME, why)
            last = exc
            continue
        return run_dir
    raise AnsibleRunError(f"{name}: no private data dir could be made: {last}")


def rotate_run_dirs(artifacts_root: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` run dirs (others are left alone); the deleted ones.
    A directory that cannot be listed (a failing disk) is left alone."""
    try:
        if not artifacts_root.is_dir():
            return []
        names = list(artifacts_root.iterdir())
        runs = sorted(p for p in names if p.is_dir() and RUN_DIR_RE.match(p.name))
    except OSError:
        return []
    doomed = runs[: max(0, len(runs) - keep)]
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return doomed


def stdout_tail(path: Path, lines: int = 5) -> str:
    """The last lines of a run's stdout (why a run failed before any host ran), or ""."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])
