"""Sphinx configuration for lenskit (sphinx-astropy theme, numpydoc, automodapi, sphinx-gallery)."""

import os
import sys
from datetime import date
from pathlib import Path

from sphinx_astropy.conf.v2 import *  # noqa: F401,F403

import lenskit

project = "lenskit"
author = "The lenskit developers"
copyright = f"{date.today().year}, {author}"
version = release = lenskit.__version__

extensions += ["sphinx_gallery.gen_gallery"]  # noqa: F405
# the build must work offline: no inventories are fetched
intersphinx_mapping = {}
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py", "auto_examples/*.zip",
                    "auto_examples/*.json", "auto_examples/*.md5", "sg_execution_times.rst"]
html_theme_options = {"github_url": "https://github.com/lenskit/lenskit", "use_edit_page_button": False}
html_title = f"lenskit {release}"
numpydoc_show_class_members = False
automodapi_inheritance_diagram = False
automodsumm_inherited_members = False
suppress_warnings = ["config.cache"]

os.environ.setdefault("MPLBACKEND", "Agg")
# Tutorials that need lenskit's development data (../shared beside the checkout: real lenses and real
# galaxies, for validation) run only where it is; elsewhere (a user's checkout, an offline build) they are
# shown with their code and no output, and each says what it needs.  Nothing is downloaded: the files that
# lenskit.datasets.slacs_lenses() downloads for users come from the development data, through a file://
# mirror, into a cache inside the build.
NEEDS_SHARED = ("plot_deblend_sl2s", "plot_slacs", "plot_real_galaxy_sources")
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
HAVE_SHARED = SHARED_DATA.is_dir()
if HAVE_SHARED:
    os.environ["LENSKIT_DATA_MIRROR"] = SHARED_DATA.as_uri()
    os.environ["LENSKIT_DATA_DIR"] = str(Path(__file__).resolve().parent / "_build" / "lenskit-data")
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_" if HAVE_SHARED else r"/plot_(?!" + "|".join(n[5:] for n in NEEDS_SHARED) + ")",
    "ignore_pattern": r"plugin_package",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "abort_on_example_error": True,
    "reset_modules": ("matplotlib",),
}
sys.path.insert(0, os.path.abspath("."))
