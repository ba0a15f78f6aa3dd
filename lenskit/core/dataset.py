"""`LensDataset`: simulated or real lens images with their true parameters."""

import os
import threading
from collections.abc import MutableMapping

import astropy.units as u
import numpy as np
from astropy.table import QTable, Table

from lenskit.core import storage
from lenskit.core.provenance import Provenance, array_checksum
from lenskit.core.validation import check_images, check_positive, indefinite, row_indices

__all__ = ["LensDataset", "LazyArrays", "Deferred", "PARAM_UNITS", "UNKNOWN_BAND"]

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


class LazyArrays(MutableMapping):
    """
    A mapping of names to arrays, some of which are made when first read.

    `LensDataset.truth` of a simulated dataset (`lenskit.Simulator.sample`)
    is one: the noise-free components are concatenated from the simulator's
    chunks the first time one is read (``dataset.truth["arcs"]``), not when
    the dataset is made, so that the many datasets whose truth is never read
    (estimation, training) do not pay for copying it.  Reading one, or
    anything that reads them all (``dict(truth)``, writing, slicing,
    pickling), makes it once; what is made is checked like an array given to
    `LensDataset`.  Membership, ``len`` and iteration over the names make
    nothing.  Set values are stored as given.

    Parameters
    ----------
    makers : dict, optional
        Name -> callable returning the array.
    """

    def __init__(self, makers=None):
        self._arrays = {}
        self._makers = dict(makers or {})
        self._order = list(self._makers)
        self._check = None
        self._lock = threading.Lock()

    def __getitem__(self, key):
        if key in self._arrays:
            return self._arrays[key]
        with self._lock:
            if key not in self._arrays:
                if key not in self._makers:
                    raise KeyError(key)
                arr = self._makers[key]()
                if self._check is not None:
                    arr = self._check(key, arr)
                self._arrays[key] = arr
                del self._makers[key]  # its chunks are freed with it
        return self._arrays[key]

    def __setitem__(self, key, value):
        with self._lock:
            self._makers.pop(key, None)
            if key not in self._arrays:
                self._order.append(key)
            self._arrays[key] = value

    def __delitem__(self, key):
        with self._lock:
            if key not in self._arrays and key not in self._makers:
                raise KeyError(key)
            self._arrays.pop(key, None)
            self._makers.pop(key, None)
            self._order.remove(key)

    def __contains__(self, key):
        return key in self._arrays or key in self._makers

    def __iter__(self):
        return iter(list(self._order))

    def __len__(self):
        return len(self._order)

    def pending(self):
        """The names whose arrays are not made yet."""
        return [k for k in self._order if k in self._makers]

    def __repr__(self):
        return "LazyArrays({" + ", ".join(f"{k!r}: {'<not made yet>' if k in self._makers else 'array'}"
                                         for k in self._order) + "})"

    def __getstate__(self):  # pickling makes every array (the makers hold chunks and closures)
        return {"arrays": {k: self[k] for k in self._order}}

    def __setstate__(self, state):
        self.__init__()
        for k, v in state["arrays"].items():
            self[k] = v


class Deferred:
    """
    An array that `LensDataset` makes when it is first read (``noise=Deferred(make)``).

    What the simulator passes for the noise map: ``make()`` returns it, and
    the dataset checks it then, as it checks an array given directly.
    """

    def __init__(self, make):
        if not callable(make):
            raise TypeError(f"make must be callable; got {type(make).__name__}")
        self.make = make


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
    noise : array-like or `Deferred`, optional
        Per-pixel 1-sigma noise, shaped like ``images`` (a `Deferred` one,
        what the simulator gives, is made and checked when first read).
    masks : array-like of bool, optional
        True where a pixel is masked, shaped like ``images``.
    truth : dict or `LazyArrays`, optional
        Named noise-free components (for example ``"arcs"``,
        ``"lens_light"``), each shaped like ``images``.  A `LazyArrays`
        (what the simulator gives) is kept as it is: its arrays are checked
        when they are made.
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
        self._noise = self._noise_maker = None
        if isinstance(noise, Deferred):  # the simulator's noise map, made (and checked) when first read
            self._noise_maker = noise.make
        elif noise is not None:
            self._noise = self._checked_noise(noise)
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
        def check_truth(key, arr):
            arr = check_images(arr, f"truth['{key}']")
            if arr.shape != images.shape:
                raise ValueError(f"truth['{key}'] must have the shape of images {images.shape}; got {arr.shape}")
            return arr

        if isinstance(truth, LazyArrays):
            if any(not isinstance(k, str) for k in truth):
                raise TypeError(f"truth's names must be str; got {list(truth)}")
            truth._check = check_truth
            for key in [k for k in truth if k not in truth.pending()]:  # those already made: checked now
                truth[key] = check_truth(key, truth[key])
            self.truth = truth
        else:
            self.truth = {}
            for key, arr in (truth or {}).items():
                self.truth[str(key)] = check_truth(key, arr)
        if provenance is None:
            provenance = Provenance.current(checksums={"images": array_checksum(images)})
        elif isinstance(provenance, dict):
            provenance = Provenance.from_dict(provenance)
        elif not isinstance(provenance, Provenance):
            raise TypeError(f"provenance must be a Provenance or dict; got {type(provenance).__name__}")
        if "images" not in provenance.checksums:  # every dataset records its images' SHA-256 (checked on read)
            provenance = provenance.with_checksums(images=array_checksum(images))
        self.provenance = provenance

    def _checked_noise(self, noise):
        noise = check_images(noise, "noise")
        if noise.shape != self.images.shape:
            raise ValueError(f"noise must have the shape of images {self.images.shape}; got {noise.shape}")
        if noise.size and noise.min() < 0:  # one pass, no temporary (NaN was refused above)
            raise ValueError("noise must be >= 0 everywhere")
        return noise

    @property
    def noise(self):
        """Per-pixel 1-sigma noise shaped like ``images``, or None (a simulated one is made when first read)."""
        if self._noise_maker is not None:
            self._noise = self._checked_noise(self._noise_maker())
            self._noise_maker = None  # its chunks are freed with it
        return self._noise

    @noise.setter
    def noise(self, value):
        self._noise_maker = None
        self._noise = None if value is None else self._checked_noise(value)

    # -- container protocol -------------------------------------------------------
    def __len__(self):
        return self.images.shape[0]

    @property
    def shape(self):
        """Image stack shape (N, bands, H, W)."""
        return self.images.shape

    def __getitem__(self, index):
        idx = row_indices(index, len(self), "a dataset", "system(s)")
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
            raise TypeError(f"{path} holds {indefinite(type(obj).__name__)}, not a LensDataset")
        return obj
