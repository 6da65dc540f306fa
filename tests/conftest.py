"""Shared pytest set-up: the test bed fixtures live in tests/testbed and are loaded as plugins."""

pytest_plugins = [
    "tests.testbed.pytest_nut",
    "tests.testbed.pytest_twin",
]


import os  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

from hecate.adapters.statedir import save as statesave  # noqa: E402
from hecate.adapters.statedir import unsaved  # noqa: E402

# No per-example deadline: on a loaded 2-core CI machine (or two xdist workers) an example can
# take 250 ms without anything being wrong; the properties are what the tests check, and
# pytest-timeout still bounds a test that hangs.
settings.register_profile("hecate", deadline=None)
settings.load_profile("hecate")


@pytest.fixture(autouse=True)
def _private_runtime_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Each test gets its own runtime directory (the fallback for state files and locks,
    /run/hecate in production), inherited by the subprocesses it starts."""
    path = tmp_path_factory.mktemp("run-hecate")
    old = os.environ.get(unsaved.RUNTIME_DIR_ENV)
    os.environ[unsaved.RUNTIME_DIR_ENV] = str(path)
    unsaved.reset_for_tests()
    try:
        yield path
    finally:
        unsaved.reset_for_tests()
        statesave.reset_for_tests()
        if old is None:
            os.environ.pop(unsaved.RUNTIME_DIR_ENV, None)
        else:
            os.environ[unsaved.RUNTIME_DIR_ENV] = old


@pytest.fixture(autouse=True)
def _private_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Each test keeps its validated configs (hecate.config.snapshot) in its own directory,
    never in the home directory; the subprocesses it starts inherit it."""
    path = tmp_path_factory.mktemp("cache")
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(path)
    try:
        yield path
    finally:
        if old is None:
            os.environ.pop("XDG_CACHE_HOME", None)
        else:
            os.environ["XDG_CACHE_HOME"] = old
