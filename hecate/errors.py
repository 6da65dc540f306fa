"""The small exception hierarchy library code raises; only the CLI turns these into exit codes."""


class HecateError(Exception):
    """Base of every error Hecate raises on purpose."""


class ConfigError(HecateError):
    """The configuration file is missing, unreadable or invalid."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems = problems or []

    def __str__(self) -> str:
        return "; ".join([self.message, *self.problems])


class StateError(HecateError):
    """A state file (intent, runs) cannot be read or written."""


class StateCorruptError(StateError):
    """A state file exists but is not valid; it has been set aside for inspection."""

    def __init__(self, message: str, kept: object = None, reason: str = "") -> None:
        super().__init__(message)
        self.kept = kept  # the Path it was moved to, when it was
        self.reason = reason or message


class IntentCorruptError(StateCorruptError):
    """The intent is unknown (its file was corrupt): startup stays refused until a reset."""


class IntentLockedError(StateError):
    """Another Hecate process holds the intent lock."""


class StateBusyError(IntentLockedError):
    """Another process holds the state files' write lock past the short wait."""


class TransitionError(StateError):
    """The requested intent transition is not allowed from the current state."""


class GuardRefusedError(HecateError):
    """A safety guard refused the requested action."""


class StartupStateError(GuardRefusedError):
    """A startup cannot read or write its intent (or take its lock): refused, exit 3."""


class TraceError(HecateError):
    """A UPS trace file is malformed."""


class UpsError(HecateError):
    """Reading the UPS failed."""


class UpsUnreachableError(UpsError):
    """upsd refused the connection or the host is unreachable."""


class UpsDriverDownError(UpsError):
    """upsd answers but the UPS driver is not connected."""


class UpsAuthError(UpsError):
    """upsd rejected the credentials."""


class UpsTimeoutError(UpsError):
    """upsd did not answer within the timeout."""


class AnsibleRunError(HecateError):
    """A playbook could not be started or did not finish."""


class KubeError(HecateError):
    """The Kubernetes API is unreachable or answered with an error."""
