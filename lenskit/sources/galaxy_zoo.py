"""Galaxies from the Galaxy Zoo challenge layout: 424 x 424 RGB JPEGs named by GalaxyID."""

from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.table import Table

from lenskit.core.exceptions import LenskitFileError
from lenskit.core.validation import as_float
from lenskit.sources.stamps import StampSource

__all__ = ["GalaxyZooSource"]


class GalaxyZooSource(StampSource):
    """
    Galaxies from Galaxy Zoo images, as Hezaveh et al. (2017) used them.

    The images are averaged over the colour channels to greyscale, as in the
    paper, then centred, background-subtracted, cleaned of neighbours and
    tapered like every real-galaxy source.

    Parameters
    ----------
    directory : path
        Folder of ``<GalaxyID>.jpg`` files (the Kaggle "Galaxy Zoo - The
        Galaxy Challenge" ``images_training_rev1`` layout).  The images are
        not redistributable: download them yourself.
    solutions : path, optional
        CSV with a ``GalaxyID`` column and class probabilities
        (``training_solutions_rev1.csv``).  When given, only the galaxies it
        lists are used.
    select : dict, optional
        Column -> minimum probability, for example ``{"Class1.1": 0.6}`` for
        smooth galaxies; needs ``solutions``.
    pixel_scale : float
        Nominal arcsec per pixel of the JPEGs (default 0.396", SDSS; only the
        shape matters once galaxies are rescaled to the drawn size).
    crop : int
        Side of the central square kept (default 212 of the 424 pixels).
    **kwargs
        Options of `~lenskit.sources.stamps.StampSource`.
    """

    name = "galaxy_zoo"

    def __init__(self, directory, solutions=None, select=None, pixel_scale=0.396, crop=212, **kwargs):
        kwargs.setdefault("min_snr", 5.0)
        super().__init__(**kwargs)
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise FileNotFoundError(f"directory {self.directory} does not exist")
        files = {p.stem: p for p in sorted(self.directory.glob("*.jpg"))}
        if not files:
            raise ValueError(f"directory {self.directory} holds no <GalaxyID>.jpg file")
        if select and solutions is None:
            raise ValueError("select needs a solutions CSV")
        if solutions is not None:
            ids = self._read_solutions(Path(solutions), select)
            files = {i: files[i] for i in ids if i in files}
            if not files:
                raise ValueError(f"no image in {self.directory} matches the selected rows of {solutions}")
        self.files = files
        pixel_scale = as_float(pixel_scale, "pixel_scale", u.arcsec)
        if not pixel_scale > 0:
            raise ValueError(f"pixel_scale must be > 0 arcsec; got {pixel_scale}")
        self.pixel_scale = pixel_scale
        if int(crop) < 16:
            raise ValueError(f"crop must be at least 16 pixels; got {crop}")
        self.crop = int(crop)

    @staticmethod
    def _read_solutions(path, select):
        if not path.exists():
            raise FileNotFoundError(f"solutions file {path} does not exist")
        try:
            t = Table.read(path, format="ascii.csv")
        except Exception as exc:
            raise LenskitFileError(f"{path} could not be read as CSV: {exc}") from exc
        if "GalaxyID" not in t.colnames:
            raise LenskitFileError(f"{path} has no GalaxyID column")
        if len(t) == 0:
            raise ValueError(f"solutions file {path} is empty")
        keep = np.ones(len(t), bool)
        for col, lo in (select or {}).items():
            if col not in t.colnames:
                raise ValueError(f"select names column {col!r}, which {path} does not have")
            keep &= np.asarray(t[col], float) >= lo
        return [str(i) for i in t["GalaxyID"][keep]]

    def _read(self):
        from PIL import (  # Pillow comes with matplotlib; only JPEG sources need it
            Image,
            UnidentifiedImageError,
        )

        for ident, path in self.files.items():
            try:
                with Image.open(path) as im:
                    arr = np.asarray(im.convert("RGB"), dtype=float)
            except (UnidentifiedImageError, OSError) as exc:
                raise LenskitFileError(f"{path} could not be read as a JPEG: {exc}") from exc
            grey = arr.mean(axis=2)  # average of the colour channels (Hezaveh et al. 2017)
            h, w = grey.shape
            c = min(self.crop, h, w)
            y0, x0 = (h - c) // 2, (w - c) // 2
            yield ident, grey[y0:y0 + c, x0:x0 + c], self.pixel_scale, str(path), None
