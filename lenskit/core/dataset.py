"""`LensDataset`: simulated or real lens images with their true parameters."""

import os

import astropy.units as u
import numpy as np
from astropy.table import QTable, Table

from lenskit.core import storage
from lenskit.core.provenance import Provenance, array_checksum
from lenskit.core.validation import check_images, check_positive

__all__ = ["LensDataset", "PARAM_UNITS", "UNKNOWN_BAND"]

#: Band name of images whose filter is not known (a FITS file without a FILTER keyword); estimators
#: compare such images with what they expect by pixel scale alone.
UNKNOWN_BAND = "unknown"

#: Units of the parameter columns lenskit knows; other columns are kept as given.
PARAM_UNITS = {
    "theta_E": u.arcsec,
    "e1": u.dimensionless_unscaled,
    "e2": u.dimensionless_unscaled,
    "x0": u.arcsec,
    "y0": u.arcsec,
    "gamma1": u.dimensionless_unscaled,
    "gamma2": u.dimensionless_unscaled,
}


def _as_qtable(params, n, name="params"):
    if isinstance(params, dict):
        params = QTable(params)
    elif isinstance(params, Table) and not isinstance(params, QTable):
        params = QTable(params)
    if not isinstance(params, QTable):
        raise TypeError(f"{name} must be an astropy QTable (or a dict of columns); got {type(params).__name__}")
    if len(params) != n:
        raise ValueError(f"{name} must have one row per image ({n}); got {len(params)} rows")
    for col, unit in PARAM_UNITS.items():
        if col in params.colnames:
            c = params[col]
            if unit is u.dimensionless_unscaled:
                if isinstance(c, u.Quantity) and c.unit != u.dimensionless_unscaled:
                    raise u.UnitConversionError(f"{name}['{col}'] must be dimensionless; got {c.unit}")
            else:
                if not isinstance(c, u.Quantity):
                    raise u.UnitsError(f"{name}['{col}'] must carry an angular unit (e.g. arcsec); got none")
                if not c.unit.is_equivalent(unit):
                    raise u.UnitConversionError(f"{name}['{col}'] must be in units of {unit}; got {c.unit}")
    return params


class LensDataset:
    """
    A stack of lens images with their true parameters and provenance.

    Parameters
    ----------
    images : array-like
        Images shaped (N, bands, H, W), indexed [y, x]; stored as float32.
    params : `~astropy.table.QTable` or dict
        One row per image.  Known columns (``theta_E``, ``e1``, ``e2``,
        ``x0``, ``y0``, ...) must carry the units in `PARAM_UNITS`.
    bands : sequence of str
        Band (filter) names, one per image plane.
    pixel_scale : `~astropy.units.Quantity` or float
        Pixel size (arcsec when a plain number).
    instrument : str, optional
        Name of the instrument the images were observed or simulated with.
    noise : array-like, optional
        Per-pixel 1-sigma noise, shaped like ``images``.
    masks : array-like of bool, optional
        True where a pixel is masked, shaped like ``images``.
    truth : dict, optional
        Named noise-free components (for example ``"arcs"``,
        ``"lens_light"``), each shaped like ``images``.
    provenance : `~lenskit.core.Provenance` or dict, optional

    Raises
    ------
    ValueError, TypeError, `~astropy.units.UnitsError`
        When a shape, dtype or unit is wrong; the message names the argument.
    """

    def __init__(self, images, params, *, bands, pixel_scale, instrument=None, noise=None,
                 masks=None, truth=None, provenance=None):
        images = check_images(images, "images")
        n, nb, h, w = images.shape
        self.images = images
        self.params = _as_qtable(params, n)
        if isinstance(bands, str) or not all(isinstance(b, str) for b in bands):
            raise TypeError(f"bands must be a sequence of str; got {bands!r}")
        if len(bands) != nb:
            raise ValueError(f"bands must name each of the {nb} image planes; got {list(bands)}")
        self.bands = tuple(bands)
        if not isinstance(pixel_scale, u.Quantity):
            pixel_scale = float(pixel_scale) * u.arcsec
        if not pixel_scale.unit.is_equivalent(u.arcsec) or not pixel_scale.isscalar:
            raise ValueError(f"pixel_scale must be a scalar angle; got {pixel_scale!r}")
        check_positive("pixel_scale", pixel_scale.value)
        self.pixel_scale = pixel_scale.to(u.arcsec)
        if instrument is not None and not isinstance(instrument, str):
            raise TypeError(f"instrument must be a str; got {type(instrument).__name__}")
        self.instrument = instrument
        self.noise = None
        if noise is not None:
            noise = check_images(noise, "noise")
            if noise.shape != images.shape:
                raise ValueError(f"noise must have the shape of images {images.shape}; got {noise.shape}")
            if noise.size and noise.min() < 0:  # one pass, no temporary (NaN was refused above)
                raise ValueError("noise must be >= 0 everywhere")
            self.noise = noise
        self.masks = None
        if masks is not None:
            masks = np.asarray(masks)
            if masks.ndim == 3:
                masks = masks[:, None]
            if masks.shape != images.shape:
                raise ValueError(f"masks must have the shape of images {images.shape}; got {masks.shape}")
            if masks.dtype != bool:
                raise TypeError(f"masks must be boolean (True = masked); got dtype {masks.dtype}")
            self.masks = np.ascontiguousarray(masks)
        self.truth = {}
        for key, arr in (truth or {}).items():
            arr = check_images(arr, f"truth['{key}']")
            if arr.shape != images.shape:
                raise ValueError(f"truth['{key}'] must have the shape of images {images.shape}; got {arr.shape}")
            self.truth[str(key)] = arr
        if provenance is None:
            provenance = Provenance.current(checksums={"images": array_checksum(images)})
        elif isinstance(provenance, dict):
            provenance = Provenance.from_dict(provenance)
        elif not isinstance(provenance, Provenance):
            raise TypeError(f"provenance must be a Provenance or dict; got {type(provenance).__name__}")
        if "images" not in provenance.checksums:  # every dataset records its images' SHA-256 (checked on read)
            provenance = provenance.with_checksums(images=array_checksum(images))
        self.provenance = provenance

    # -- container protocol -------------------------------------------------------
    def __len__(self):
        return self.images.shape[0]

    @property
    def shape(self):
        """Image stack shape (N, bands, H, W)."""
        return self.images.shape

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            index = slice(index, index + 1 if index != -1 else None)
        idx = np.arange(len(self))[index]
        return LensDataset(
            self.images[idx], self.params[idx], bands=self.bands, pixel_scale=self.pixel_scale,
            instrument=self.instrument,
            noise=None if self.noise is None else self.noise[idx],
            masks=None if self.masks is None else self.masks[idx],
            truth={k: v[idx] for k, v in self.truth.items()},
            provenance=self.provenance.with_checksums(images=array_checksum(self.images[idx])),
        )

    def __eq__(self, other):
        if not isinstance(other, LensDataset):
            return NotImplemented
        same = (
            np.array_equal(self.images, other.images)
            and self.bands == other.bands
            and self.pixel_scale == other.pixel_scale
            and self.instrument == other.instrument
            and self.params.colnames == other.params.colnames
            and all(np.array_equal(np.asarray(self.params[c]), np.asarray(other.params[c]))
                    for c in self.params.colnames)
            and set(self.truth) == set(other.truth)
            and all(np.array_equal(self.truth[k], other.truth[k]) for k in self.truth)
        )
        for a, b in ((self.noise, other.noise), (self.masks, other.masks)):
            same = same and ((a is None and b is None) or (a is not None and b is not None
                                                           and np.array_equal(a, b)))
        return bool(same)

    def __repr__(self):
        n, nb, h, w = self.images.shape
        return (f"<LensDataset {n} system(s), bands={list(self.bands)}, {h}x{w} px at "
                f"{self.pixel_scale.value:g} arcsec, instrument={self.instrument!r}>")

    # -- conversions ----------------------------------------------------------------
    def to_torch(self, device="cpu", dtype=None):
        """Images as a `torch.Tensor` on ``device``."""
        import torch  # heavy (torch): `import lenskit` stays light

        return torch.as_tensor(self.images, device=device, dtype=dtype or torch.float32)

    def write(self, path: str | os.PathLike, overwrite: bool = False, format: str | None = None) -> None:
        """Write the dataset to an ASDF file (atomically); its table alone goes anywhere with ``params.write``."""
        storage.write(self, path, overwrite=overwrite, format=format)

    @classmethod
    def read(cls, path: str | os.PathLike, format: str | None = None) -> "LensDataset":
        """Read a dataset written by `write`, validating it against its schema."""
        obj = storage.read(path, format=format)
        if not isinstance(obj, cls):
            raise TypeError(f"{path} holds a {type(obj).__name__}, not a LensDataset")
        return obj
