"""Real galaxies in the GalSim RealGalaxyCatalog format (GREAT3, COSMOS training samples)."""

from collections import defaultdict
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from lenskit.core.exceptions import LenskitFileError
from lenskit.sources.stamps import StampSource

__all__ = ["GREAT3Source", "read_real_galaxy_catalog"]

REQUIRED = ("IDENT", "GAL_FILENAME", "GAL_HDU", "PIXEL_SCALE")


def read_real_galaxy_catalog(path):
    """
    Read a RealGalaxyCatalog table and check its columns.

    Returns an `astropy.table.Table`.  A missing file, a file that is not a
    FITS table, a missing required column or an empty table raise an error
    naming the file.
    """

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"catalogue {path} does not exist")
    try:
        t = Table.read(path, hdu=1)
    except Exception as exc:
        raise LenskitFileError(f"{path} could not be read as a FITS table: {type(exc).__name__}: {exc}") from exc
    missing = [c for c in REQUIRED if c not in t.colnames]
    if missing:
        raise LenskitFileError(f"{path} is not a RealGalaxyCatalog: missing column(s) {missing}")
    if len(t) == 0:
        raise ValueError(f"catalogue {path} is empty")
    return t


class GREAT3Source(StampSource):
    """
    Galaxies from a GalSim RealGalaxyCatalog: the format of GREAT3 and of the
    COSMOS 23.5 / 25.2 training samples.

    Parameters
    ----------
    catalog : path or list of paths
        Catalogue FITS table(s) with ``IDENT``, ``GAL_FILENAME``, ``GAL_HDU``,
        ``PIXEL_SCALE`` (and optionally ``NOISE_VARIANCE``, ``PSF_FILENAME``,
        ``PSF_HDU``).  Several catalogues (one per band, for example AEGIS
        F606W and F814W) are matched by ``IDENT`` into multi-band stamps.
    directory : path, optional
        Folder of the image files; default the folder of each catalogue.
    **kwargs
        Options of `~lenskit.sources.stamps.StampSource` (size, rotation,
        split, ...).

    Notes
    -----
    The stamps keep the HST PSF they were observed with (0.1" FWHM for ACS),
    which is small next to the 0.05-0.8" sizes they are rescaled to.
    """

    name = "great3"

    def __init__(self, catalog, directory=None, **kwargs):
        super().__init__(**kwargs)
        cats = [catalog] if isinstance(catalog, (str, Path)) else list(catalog)
        if not cats:
            raise ValueError("catalog must name at least one catalogue file")
        self.catalogs = [Path(c) for c in cats]
        self.directory = None if directory is None else Path(directory)
        if self.directory is not None and not self.directory.is_dir():
            raise FileNotFoundError(f"directory {self.directory} does not exist")
        self.tables = [read_real_galaxy_catalog(c) for c in self.catalogs]
        self.bands = tuple(str(t["BAND"][0]).strip() if "BAND" in t.colnames else f"band{i}"
                           for i, t in enumerate(self.tables))

    def _read(self):
        rows = []
        for cat, t in zip(self.catalogs, self.tables):
            folder = self.directory or cat.parent
            rows.append({str(r["IDENT"]): (folder / str(r["GAL_FILENAME"]).strip(), int(r["GAL_HDU"]),
                                           float(r["PIXEL_SCALE"]),
                                           float(np.sqrt(r["NOISE_VARIANCE"])) if "NOISE_VARIANCE" in t.colnames
                                           else None) for r in t})
        idents = [i for i in rows[0] if all(i in r for r in rows[1:])]
        if not idents:
            raise ValueError(f"the catalogues {[str(c) for c in self.catalogs]} share no IDENT")
        # open every image file once
        by_file = defaultdict(list)
        for r in rows:
            for ident in idents:
                by_file[r[ident][0]].append(r[ident][1])
        opened = {}
        try:
            for path in by_file:
                if not path.exists():
                    raise FileNotFoundError(f"image file {path} (named in the catalogue) does not exist")
                try:
                    opened[path] = fits.open(path, memmap=False)
                except Exception as exc:
                    raise LenskitFileError(f"{path} could not be read as FITS: {type(exc).__name__}: {exc}") from exc
            for ident in idents:
                planes, scales, noise = [], [], None
                for r in rows:
                    path, hdu, scale, nz = r[ident]
                    hl = opened[path]
                    if hdu >= len(hl) or hl[hdu].data is None:
                        raise LenskitFileError(f"{path} has no image in HDU {hdu} (galaxy {ident})")
                    planes.append(np.asarray(hl[hdu].data, dtype=float))
                    scales.append(scale)
                    noise = nz if noise is None else noise
                shapes = {p.shape for p in planes}
                if len(shapes) > 1:
                    raise LenskitFileError(f"galaxy {ident}: bands have different shapes {sorted(shapes)}")
                if len(set(scales)) > 1:
                    raise LenskitFileError(f"galaxy {ident}: bands have different pixel scales {scales}")
                yield ident, np.stack(planes), scales[0], str(rows[0][ident][0]), \
                    (noise * np.sqrt(len(planes)) if noise is not None and noise > 0 else None)
        finally:
            for hl in opened.values():
                hl.close()
