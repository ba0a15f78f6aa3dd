"""Reading and writing lenskit products (ASDF natively, FITS for real data)."""

from lenskit.core import storage
from lenskit.io import tables  # noqa: F401  (registers the table formats: FITS, ECSV, astropy's "lenskit")
from lenskit.io.fits import read_images  # noqa: F401

__all__ = ["read", "write", "read_images"]


def read(path, format=None):
    """
    Read a lenskit file: ASDF (any value type), or an estimate table in FITS or ECSV.

    ``format`` (``"asdf"``, ``"fits"``, ``"ascii.ecsv"``) defaults to the file's suffix.
    """
    return storage.read(path, format=format)


def write(obj, path, overwrite=False, format=None):
    """Write a lenskit value type: ASDF, or (estimates) FITS or ECSV, by ``format`` or the file's suffix."""
    return storage.write(obj, path, overwrite=overwrite, format=format)
