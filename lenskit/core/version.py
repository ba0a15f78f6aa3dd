"""lenskit's version, for the package and for provenance records (which sit below the package in the layers)."""

try:
    from lenskit._version import version as VERSION
except ImportError:  # pragma: no cover - running from a source tree without setuptools_scm
    VERSION = "0.0.0+unknown"

__all__ = ["VERSION", "DISTRIBUTION"]

#: The distribution's name on package indexes (the import package is ``lenskit``; PyPI's ``lenskit`` is
#: LensKit, a recommender-systems toolkit).
DISTRIBUTION = "lenskit-astro"
