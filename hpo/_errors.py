"""Errors that reach the user as a message and an exit code, never as a traceback."""

from __future__ import annotations


class HpoError(Exception):
    """A failure the user can act on; the CLI prints the message and exits with ``exit_code``."""

    exit_code = 1


class SpecError(HpoError):
    """A bad space file or override: names the file, the key path, what was expected and found.

    Example:
        >>> str(SpecError("space.yaml", "space.lr.low", "must be > 0 when log is true, got 0.0"))
        'space.yaml: space.lr.low: must be > 0 when log is true, got 0.0'
    """

    exit_code = 2

    def __init__(self, source: str, key_path: str, message: str) -> None:
        self.source, self.key_path, self.message = source, key_path, message
        where = f"{source}: {key_path}: " if key_path else f"{source}: "
        super().__init__(where + message)


class UsageError(HpoError):
    """Bad input that is not a space file: a missing study, a bad export file, a bad flag value."""

    exit_code = 2
