"""Where scripts/install.sh spends its time in a test node: a first install, then no-change runs,
each with the slowest tasks (a small timing callback copied into the node; ansible-core alone has
no profile_tasks).

    flock /tmp/hecate-twin.lock python -m bench.install_profile [NO_CHANGE_RUNS]

Findings (2026-12, 2 shared cores): a no-change run is ~50 s, nearly all of it module runs of
~0.7-1 s each (importing ansible.module_utils.basic alone is ~0.3-0.5 s of CPU); controller-only
tasks (set_fact, assert, debug) cost ~0.1 s. Fewer module runs is what makes it faster.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from tests.integration.test_install import (
    CHECKOUT,
    INSTALL_ENV,
    REPO,
    SRC,
    WHEELS,
    copy_in,
    run,
    tar_bytes,
)
from tests.testbed.image import ensure_image, podman
from tests.testbed.twin import LABEL, LABEL_OWNER, LABEL_RUN, owner_label, wait_until

CALLBACK = """
import time
from ansible.plugins.callback import CallbackBase
class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "tasktime"
    CALLBACK_NEEDS_ENABLED = True
    def __init__(self):
        super().__init__(); self.times = []; self.current = None; self.t0 = time.monotonic()
    def _start(self, name):
        now = time.monotonic()
        if self.current:
            self.times.append((now - self.current[1], self.current[0]))
        self.current = (name, now)
    def v2_playbook_on_task_start(self, task, is_conditional): self._start(task.get_name())
    def v2_playbook_on_handler_task_start(self, task): self._start("handler " + task.get_name())
    def v2_playbook_on_stats(self, stats):
        self._start(None)
        print("TASKTIME total %.1f s, %d tasks" % (time.monotonic() - self.t0, len(self.times)))
        for took, name in sorted(self.times, reverse=True)[:20]:
            print("TASKTIME %6.2f %s" % (took, name))
"""


def wheelhouse(work: Path) -> Path:
    """As tests/integration/test_install.py's fixture: the dependencies as wheels."""
    source = work / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(
        REPO / "hecate", source / "hecate", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    wheels = work / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--wheel-dir", str(wheels), str(source)], check=True)
    subprocess.run(
        [*pip, "download", "--only-binary=:all:", "--dest", str(wheels), "setuptools>=68", "wheel"],
        check=True,
    )
    return wheels


def main(no_change_runs: int) -> None:
    name = f"hecate-install-bench-{uuid.uuid4().hex[:6]}"
    env = {k: v for k, v in INSTALL_ENV.items() if k != "HECATE_UPDATE_TRUSTED_KEYS"}
    env |= {"ANSIBLE_CALLBACKS_ENABLED": "tasktime", "ANSIBLE_CALLBACK_PLUGINS": "/root/cb"}
    with tempfile.TemporaryDirectory() as tmp:
        wheels = wheelhouse(Path(tmp))
        podman(
            *("run", "--detach", "--name", name, "--hostname", "hecate-host"),
            *("--label", f"{LABEL}=1", "--label", f"{LABEL_RUN}={name}"),
            *("--label", f"{LABEL_OWNER}={owner_label()}", "--cap-add", "SYS_ADMIN"),
            ensure_image(),
        )
        try:
            wait_until(
                lambda: (
                    run(name, "systemctl is-system-running", check=False).stdout.strip()
                    in ("running", "degraded")
                ),
                60,
                "systemd in the node",
            )
            copy_in(name, tar_bytes(wheels), WHEELS)
            copy_in(name, tar_bytes(REPO, CHECKOUT), SRC)
            run(name, f"mkdir -p /root/cb && cat > /root/cb/tasktime.py <<'EOF'\n{CALLBACK}EOF")
            for i in range(1 + no_change_runs):
                started = time.monotonic()
                done = run(
                    name, f"cd {SRC} && scripts/install.sh", timeout=900, env=env, check=False
                )
                took = time.monotonic() - started
                print(
                    f"== run {i} ({'first' if i == 0 else 'no change'}): {took:.1f} s, "
                    f"exit {done.returncode}"
                )
                for line in done.stdout.splitlines():
                    if line.startswith("TASKTIME") or "changed=" in line:
                        print(line)
        finally:
            podman("rm", "--force", "--time", "0", name, check=False, timeout=120)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
