"""Pytest fixtures for the cluster twin (loaded as a plugin by tests/conftest.py).

* ``twin_image``: the node image's reference (built once if missing; session scope).
* ``twin``: a started 1 server + 2 agents twin shared by a test module. Tests that stop units or
  power nodes off must put them back (or use ``make_twin``).
* ``make_twin``: a factory, ``make_twin(servers=1, agents=2, seed=None, **kwargs) -> Twin``;
  every twin it made is destroyed after the test.

No skipping: without podman (or root) these fixtures fail, as CI must have them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import pytest

from tests.testbed.image import ensure_image
from tests.testbed.twin import Twin


class TwinFactory(Protocol):
    def __call__(
        self,
        servers: int = 1,
        agents: int = 2,
        seed: Mapping[str, Any] | Path | None = None,
        **kwargs: Any,
    ) -> Twin: ...


@pytest.fixture(scope="session")
def twin_image() -> str:
    return ensure_image()


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory, twin_image: str) -> Iterator[Twin]:
    cluster = Twin(servers=1, agents=2, workdir=tmp_path_factory.mktemp("twin"), image=twin_image)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def make_twin(tmp_path_factory: pytest.TempPathFactory, twin_image: str) -> Iterator[TwinFactory]:
    made: list[Twin] = []

    def factory(
        servers: int = 1,
        agents: int = 2,
        seed: Mapping[str, Any] | Path | None = None,
        **kwargs: Any,
    ) -> Twin:
        kwargs.setdefault("image", twin_image)
        cluster = Twin(
            servers, agents, workdir=tmp_path_factory.mktemp("twin"), seed=seed, **kwargs
        )
        made.append(cluster)
        return cluster.start()

    try:
        yield factory
    finally:
        for cluster in made:
            cluster.destroy()
