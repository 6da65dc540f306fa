"""Prometheus metrics: the daemon's registry and the drill series."""
