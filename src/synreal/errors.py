"""User-facing errors: one sentence that names the key or file and says what to do.

Anything raised as :class:`SynrealError` is printed by the CLI without a traceback and
exits with :data:`EXIT_USER_ERROR`; anything else is a bug and keeps its traceback.
"""

EXIT_USER_ERROR = 2


class SynrealError(Exception):
    """An error the user can fix: bad config, missing file, bad input data."""


class ConfigError(SynrealError):
    """A study config key is missing, unknown, of the wrong type or points at nothing."""


class DataError(SynrealError):
    """An input dataset or artifact is missing, malformed or inconsistent."""


class StorageError(SynrealError):
    """The results disk is full, read-only or not writable (an ``OSError`` of storage)."""
