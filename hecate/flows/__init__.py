"""Staged shutdown and startup: the shell that carries out what the plans and guards decide."""
