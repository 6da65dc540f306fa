"""The Kubernetes port when no client could be made (e.g. the kubeconfig is missing)."""

from __future__ import annotations

from typing import Any

from hecate.adapters.kube.types import KubeUnavailableError


class UnavailableKube:
    """Stands in for the API when no client could be made (e.g. the kubeconfig is missing):
    `available` is False (and `reason` says why), `readyz()` is False and every other call
    raises, so flows skip the API stages and still run the node stages."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    @property
    def available(self) -> bool:
        """No client: skip the API stages (`reason` says why)."""
        return False

    def readyz(self) -> bool:
        return False

    def close(self) -> None:
        """Nothing to close."""

    def __getattr__(self, name: str) -> Any:
        def unavailable(*args: object, **kwargs: object) -> Any:
            raise KubeUnavailableError(f"Kubernetes API not available: {self.reason}")

        return unavailable
