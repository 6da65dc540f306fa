"""Pytest fixtures for the cluster twin (filled in by the twin test bed work)."""
