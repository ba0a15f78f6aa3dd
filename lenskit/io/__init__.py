"""Reading and writing lenskit products (ASDF natively, FITS for real data)."""

import os
from typing import Any

from lenskit.core import storage
from lenskit.io import tables  # noqa: F401  (registers the table formats: FITS, ECSV, astropy's "lenskit")
from lenskit.io.fits import read_images  # noqa: F401

__all__ = ["read", "write", "read_images"]


def read(path: str | os.PathLike, format: str | None = None) -> Any:
    """
    Read a lenskit file: ASDF (any value type), or an estimate table in FITS or ECSV.

    ``format`` (``"asdf"``, ``"fits"``, ``"ascii.ecsv"``) defaults to the file's suffix.
    """
    return storage.read(path, format=format)


def write(obj: Any, path: str | os.PathLike, overwrite: bool = False, format: str | None = None) -> None:
    """Write a lenskit value type: ASDF, or (estimates) FITS or ECSV, by ``format`` or the file's suffix."""
    return storage.write(obj, path, overwrite=overwrite, format=format)
