"""Disruptive drills: break the cluster on purpose and prove Hecate recovers it."""
