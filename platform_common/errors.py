"""Errors that end a stack command with one line telling the user what is wrong and how to fix it."""


class StackError(Exception):
    """A failure the user can act on; the CLI prints its message as a single line."""


class ConfigError(StackError):
    """A missing or invalid configuration value."""


class PrerequisiteError(StackError):
    """A tool the platform needs is missing or too old."""
