"""
Where lenskit's development data sit (not a benchmark): the ``data`` folder of ``../shared``.

The folder sits beside a lenskit checkout in the development setup only, so
this helper lives with the benchmarks, not in the installed package.  The real
lenses it holds are also what `lenskit.datasets.slacs_lenses` downloads for
users; the benchmarks read them in place from here when the folder is present
(``slacs_lenses(directory=shared_data())``) and download them otherwise.
``LENSKIT_SHARED`` overrides the folder's location.
"""

import os
from pathlib import Path

__all__ = ["shared_data"]

ROOT = Path(__file__).resolve().parents[1]


def shared_data():
    """The ``data`` folder of ../shared (or of ``$LENSKIT_SHARED``), or None when it is absent."""
    path = Path(os.environ.get("LENSKIT_SHARED", ROOT.parent / "shared")) / "data"
    return path if path.is_dir() else None
