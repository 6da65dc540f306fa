"""Where `hecate doctor` keeps its last result, read by `hecate status`: a module without the
doctor's Kubernetes, NUT and coordination clients, so status need not import them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DOCTOR_FILE = "doctor.json"


def last_result(state_dir: Path) -> dict[str, Any] | None:
    """The last doctor result (for `hecate status`), or None when doctor never ran."""
    try:
        data = json.loads((state_dir / DOCTOR_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
