"""The state directory: atomic locked files, intent and runs, awaited peers, outages, drills."""
