"""The UPS policy: its values, its judgements of one reading, and its step function."""
