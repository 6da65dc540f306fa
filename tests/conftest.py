"""Shared pytest set-up: the test bed fixtures live in tests/testbed and are loaded as plugins."""

pytest_plugins = [
    "tests.testbed.pytest_nut",
    "tests.testbed.pytest_twin",
]
