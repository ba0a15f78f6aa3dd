"""Exceptions and warnings raised by lenskit."""

__all__ = [
    "LenskitError",
    "LenskitPluginError",
    "LenskitPluginWarning",
    "LenskitFileError",
]


class LenskitError(Exception):
    """Base class for lenskit errors."""


class LenskitPluginError(LenskitError):
    """A plugin is unknown, broken, or registers a name that is already taken."""


class LenskitPluginWarning(UserWarning):
    """A plugin failed to load; the remaining plugins are still available."""


class LenskitFileError(LenskitError, OSError):
    """A file is missing, truncated, or does not follow its lenskit schema."""
