"""Hecate: power-protection and cold-start orchestrator for self-hosted k3s clusters."""

__version__ = "0.1.0"
