"""Exceptions and warnings raised by lenskit."""

__all__ = [
    "LenskitError",
    "LenskitPluginError",
    "LenskitPluginWarning",
    "LenskitFileError",
    "LenskitCorruptFileError",
    "LenskitDataWarning",
    "LenskitFitWarning",
]


class LenskitError(Exception):
    """Base class for lenskit errors."""


class LenskitPluginError(LenskitError):
    """A plugin is unknown, broken, or registers a name that is already taken."""


class LenskitPluginWarning(UserWarning):
    """A plugin failed to load; the remaining plugins are still available."""


class LenskitFileError(LenskitError, OSError):
    """A file is missing, truncated, or does not follow its lenskit schema."""


class LenskitCorruptFileError(LenskitFileError):
    """A file's bytes do not match its checksums (a damaged disk, a bad copy, or an edit)."""


class LenskitDataWarning(UserWarning):
    """Data lenskit uses could not be verified (for example a first download without a published checksum)."""


class LenskitFitWarning(UserWarning):
    """A fit ended where its answer is not a measurement (for example a parameter at the bound of its range)."""
