"""The pure core: every decision, as functions of data (time passed in); it imports only the
core, the config and the errors (import-linter contracts in pyproject.toml)."""
