"""The installed systemd units, rendered from the role's templates, scored by
`systemd-analyze security --offline=yes` (issue #13): hecate.service at most 3.0, the others at
most 5.0. Also what the daemon's unit must say: unprivileged user, reload, restart, fds."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import jinja2
import pytest
import yaml

ROLE = Path(__file__).resolve().parents[4] / "roles" / "hecate_install"
LIMITS = {
    "hecate.service": 3.0,
    "hecate-bootstrap.service": 5.0,
    "hecate-update.service": 5.0,
    "hecate-poweroff.service": 5.0,
}


def render(name: str, template: str | None = None, **extra: object) -> str:
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    values = {
        **{k: v for k, v in defaults.items() if not isinstance(v, str) or "{{" not in v},
        "ansible_managed": "Ansible managed",
        "hecate_install_source": "/opt/hecate-src",
        "hecate_install_resolved_state_dir": "/var/lib/hecate",
        "hecate_install_resolved_manage_nut": True,
        **extra,
    }
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(ROLE / "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 - unit files, not HTML
    )
    env.filters["bool"] = lambda value: str(value).lower() in ("1", "true", "yes")
    env.filters["quote"] = lambda value: f"'{value}'"
    env.filters["dirname"] = lambda value: str(Path(value).parent)
    return env.get_template(template or f"systemd/{name}.j2").render(**values)


def exposure(unit: Path) -> float:
    done = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", done.stdout)
    assert found, done.stdout + done.stderr
    return float(found.group(1))


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
@pytest.mark.parametrize(("name", "limit"), sorted(LIMITS.items()))
def test_units_score_within_their_limit(tmp_path: Path, name: str, limit: float) -> None:
    unit = tmp_path / name
    unit.write_text(render(name))
    score = exposure(unit)
    assert score <= limit, f"{name} scores {score}, above {limit}"


def test_the_daemon_runs_unprivileged_reloads_and_restarts() -> None:
    unit = render("hecate.service")
    lines = set(unit.splitlines())
    for line in (
        "User=hecate-daemon",
        "CapabilityBoundingSet=",
        "NoNewPrivileges=yes",
        "PrivateDevices=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectClock=yes",
        "ProtectHostname=yes",
        "RestrictNamespaces=yes",
        "SystemCallFilter=@system-service",
        "UMask=0077",
        "LimitNOFILE=16384",
        "Restart=always",  # SIGHUP or any signal death counted as "clean" is restarted too
        "ExecReload=/bin/kill -HUP $MAINPID",
    ):
        assert line in lines, line
    assert any(line.startswith("RestrictAddressFamilies=AF_UNIX AF_INET") for line in lines)


def test_the_poweroff_helper_does_one_thing() -> None:
    path = render("hecate-poweroff.path")
    service = render("hecate-poweroff.service")
    assert "PathExists=/run/hecate/poweroff" in path
    execs = [line for line in service.splitlines() if line.startswith("Exec")]
    assert execs == [
        "ExecStartPre=/bin/rm -f /run/hecate/poweroff",
        "ExecStart=/usr/bin/systemctl poweroff",
    ]
