"""Reading and writing lenskit products (ASDF natively, FITS for real data)."""

from lenskit.io.asdf import read, write  # noqa: F401
from lenskit.io.fits import read_images  # noqa: F401

__all__ = ["read", "write", "read_images"]
