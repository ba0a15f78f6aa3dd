"""Galaxies cut from CANDELS-style mosaics: a FITS image with a WCS and a catalogue."""

from pathlib import Path

import numpy as np
from astropy.nddata import Cutout2D, NoOverlapError
from astropy.table import Table
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales

from lenskit.core.exceptions import LenskitFileError
from lenskit.io.fits import read_image
from lenskit.sources.stamps import StampSource

__all__ = ["CandelsSource"]


class CandelsSource(StampSource):
    """
    Galaxies cut out of a survey mosaic around catalogue positions.

    Lanusse et al. (2018) lensed CANDELS galaxies.  Each stamp is a square of
    ``stamp_factor`` times the catalogued size (within ``min_stamp`` and
    ``max_stamp`` pixels) around the galaxy; neighbours in the stamp are
    removed by segmentation and deblending and the background is subtracted
    (see `~lenskit.sources.stamps.prepare_stamp`).

    Parameters
    ----------
    mosaic : path
        FITS image with a celestial WCS (for example a CANDELS
        ``hlsp_candels_hst_wfc3_*_drz.fits``).
    catalog : path
        Table readable by `astropy.table.Table.read` (FITS, ECSV, CSV).
    hdu : int
        HDU of the mosaic image.  Default 0.
    id_column, ra_column, dec_column : str
        Columns of the identity and position (degrees).  Defaults ``ID``,
        ``RA``, ``DEC``; give ``x_column`` / ``y_column`` (0-based pixels)
        instead to use pixel positions.
    size_column : str, optional
        Column with each galaxy's size (for example ``FLUX_RADIUS``) in
        ``size_unit`` (``"pix"`` or ``"arcsec"``); without it stamps are
        ``max_stamp`` wide.
    weight : path, optional
        Inverse-variance weight map on the mosaic's grid; its median over a
        stamp gives that stamp's noise.
    **kwargs
        Options of `~lenskit.sources.stamps.StampSource`.
    """

    name = "candels"

    def __init__(self, mosaic, catalog, hdu=0, id_column="ID", ra_column="RA", dec_column="DEC", x_column=None,
                 y_column=None, size_column=None, size_unit="pix", stamp_factor=8.0, min_stamp=32, max_stamp=160,
                 weight=None, **kwargs):
        super().__init__(**kwargs)
        self.mosaic = Path(mosaic)
        self.catalog = Path(catalog)
        for p, what in ((self.mosaic, "mosaic"), (self.catalog, "catalogue")):
            if not p.exists():
                raise FileNotFoundError(f"{what} {p} does not exist")
        self.data, header = read_image(self.mosaic, hdu)
        self.wcs = WCS(header)
        if not self.wcs.has_celestial and x_column is None:
            raise LenskitFileError(f"{self.mosaic} has no celestial WCS; give x_column and y_column")
        self.pixel_scale = (float(np.mean(proj_plane_pixel_scales(self.wcs.celestial)) * 3600)
                            if self.wcs.has_celestial else kwargs.get("pixel_scale"))
        try:
            self.table = Table.read(self.catalog)
        except Exception as exc:
            raise LenskitFileError(f"{self.catalog} could not be read as a table: {exc}") from exc
        if len(self.table) == 0:
            raise ValueError(f"catalogue {self.catalog} is empty")
        cols = [id_column] + ([x_column, y_column] if x_column else [ra_column, dec_column])
        if size_column:
            cols.append(size_column)
        missing = [c for c in cols if c not in self.table.colnames]
        if missing:
            raise LenskitFileError(f"{self.catalog} lacks column(s) {missing}")
        if size_unit not in ("pix", "arcsec"):
            raise ValueError(f"size_unit must be 'pix' or 'arcsec'; got {size_unit!r}")
        self.cols = dict(id=id_column, ra=ra_column, dec=dec_column, x=x_column, y=y_column, size=size_column)
        self.size_unit = size_unit
        self.stamp_factor, self.min_stamp, self.max_stamp = float(stamp_factor), int(min_stamp), int(max_stamp)
        self.weight = None
        if weight is not None:
            self.weight, _ = read_image(Path(weight), 0)
            if self.weight.shape != self.data.shape:
                raise LenskitFileError(f"weight map {weight} has shape {self.weight.shape}, the mosaic "
                                       f"{self.data.shape}")

    def _positions(self):
        t, c = self.table, self.cols
        if c["x"]:
            return np.asarray(t[c["x"]], float), np.asarray(t[c["y"]], float)
        x, y = self.wcs.celestial.all_world2pix(np.asarray(t[c["ra"]], float), np.asarray(t[c["dec"]], float), 0)
        return x, y

    def _read(self):
        x, y = self._positions()
        t, c = self.table, self.cols
        for i in range(len(t)):
            if c["size"]:
                s = float(t[c["size"]][i])
                s_pix = s / self.pixel_scale if self.size_unit == "arcsec" else s
                side = int(np.clip(self.stamp_factor * s_pix, self.min_stamp, self.max_stamp))
            else:
                side = self.max_stamp
            side += (side + 1) % 2  # odd: the galaxy on the central pixel
            try:
                cut = Cutout2D(self.data, (x[i], y[i]), side, mode="partial", fill_value=np.nan)
            except NoOverlapError:
                continue
            img = cut.data
            if np.isnan(img).mean() > 0.25:
                continue  # mostly off the mosaic
            if np.isnan(img).any():
                img = np.where(np.isnan(img), np.nanmedian(img), img)
            noise = None
            if self.weight is not None:
                w = Cutout2D(self.weight, (x[i], y[i]), side, mode="partial", fill_value=0).data
                good = w > 0
                if good.any():
                    noise = float(np.median(1 / np.sqrt(w[good])))
            yield str(t[c["id"]][i]), img, self.pixel_scale, f"{self.mosaic} (row {i})", noise
