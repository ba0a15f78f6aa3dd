"""
How lenskit's value types reach their file formats, without `lenskit.core` importing the layer above.

`~lenskit.LensDataset`, `~lenskit.Estimate`, `~lenskit.core.Deblended` and
`~lenskit.core.ModelWeights` have ``write`` (and ``read``) methods, but the
formats live in `lenskit.io`, above `lenskit.core`.  `lenskit.io.asdf`
registers its reader and writer here when it is imported (which
``import lenskit`` does), and the methods call them.
"""

__all__ = ["register", "read", "write", "guess_format", "FORMATS", "SUFFIXES"]

#: Format name -> (reader, writer), filled by `lenskit.io`.
FORMATS = {}


def register(name, reader, writer):
    """Make ``reader(path)`` and ``writer(obj, path, overwrite=...)`` the ones used for format ``name``."""
    if not (callable(reader) and callable(writer)):
        raise TypeError("reader and writer must be callable")
    FORMATS[str(name)] = (reader, writer)


#: File suffix -> format, for ``format=None``.
SUFFIXES = {".asdf": "asdf", ".fits": "fits", ".fit": "fits", ".fts": "fits", ".ecsv": "ascii.ecsv"}


def guess_format(path, format=None):
    """``format`` when given, else the format of ``path``'s suffix (ASDF for any other)."""
    if format is not None:
        return str(format)
    name = str(path).lower()
    return next((f for suf, f in SUFFIXES.items() if name.endswith(suf)), "asdf")


def _get(name):
    if name not in FORMATS:
        raise ValueError(f"format must be one of {sorted(FORMATS) or ['(none registered: import lenskit)']}; "
                         f"got {name!r}")
    return FORMATS[name]


def write(obj, path, overwrite=False, format=None):
    """Write a lenskit value type with the registered writer of ``format`` (default: from the suffix)."""
    return _get(guess_format(path, format))[1](obj, path, overwrite=overwrite)


def read(path, format=None):
    """Read a lenskit value type with the registered reader of ``format`` (default: from the suffix)."""
    return _get(guess_format(path, format))[0](path)
