"""`Deblended`: lensed arcs separated from the lens galaxy's light."""

import astropy.units as u
import numpy as np
from astropy.table import QTable, Table

from lenskit.core import storage
from lenskit.core.dataset import LensDataset
from lenskit.core.provenance import Provenance
from lenskit.core.validation import as_float

__all__ = ["Deblended"]


class Deblended:
    """
    The result of a `~lenskit.core.Deblender`: arcs, lens light and diagnostics.

    Parameters
    ----------
    arcs : array-like
        (N, bands, H, W) lensed-arc images in the input's flux units, with
        the lens light (and, for the Sérsic deblender, the sky) removed.
    lens_light : array-like
        (N, bands, H, W) lens-light model or component, same units.
    bands : sequence of str
        Band names, one per plane.
    method : str
        Deblender name (``"ica"``, ``"sersic"`` ...).
    params : `~astropy.table.QTable` or dict, optional
        Fitted quantities with units, one row per image (ICA: the mixing
        coefficients and component scores) or per image and band (the Sérsic
        fit's centre, effective radius, index, axis ratio, angle and sky,
        with ``image`` and ``band`` columns).
    masks : array-like of bool, optional
        (N, H, W) pixels excluded from the fit (True = excluded).
    diagnostics : dict, optional
        JSON-like per-run information (iterations, convergence, warnings).
    provenance : `~lenskit.core.Provenance` or dict, optional
    """

    def __init__(self, arcs, lens_light, bands, method, params=None, masks=None, diagnostics=None, provenance=None):
        arcs = np.asarray(arcs, dtype=np.float32)
        lens_light = np.asarray(lens_light, dtype=np.float32)
        if arcs.ndim != 4:
            raise ValueError(f"arcs must be shaped (N, bands, H, W); got {arcs.shape}")
        if lens_light.shape != arcs.shape:
            raise ValueError(f"lens_light must have the shape of arcs {arcs.shape}; got {lens_light.shape}")
        bands = [str(b) for b in bands]
        if len(bands) != arcs.shape[1]:
            raise ValueError(f"bands must name the {arcs.shape[1]} band(s) of arcs; got {bands}")
        if not isinstance(method, str) or not method:
            raise TypeError(f"method must be a non-empty str; got {method!r}")
        if params is None:
            params = QTable()
        elif isinstance(params, dict) or (isinstance(params, Table) and not isinstance(params, QTable)):
            params = QTable(params)
        if not isinstance(params, QTable):
            raise TypeError(f"params must be a QTable or dict; got {type(params).__name__}")
        if len(params.colnames) and len(params) not in (len(arcs), len(arcs) * arcs.shape[1]):
            raise ValueError(f"params must have one row per image ({len(arcs)}) or per image and band "
                             f"({len(arcs) * arcs.shape[1]}); got {len(params)}")
        if masks is not None:
            masks = np.asarray(masks, dtype=bool)
            if masks.shape != (arcs.shape[0],) + arcs.shape[2:]:
                raise ValueError(f"masks must be shaped (N, H, W) = {(arcs.shape[0],) + arcs.shape[2:]}; "
                                 f"got {masks.shape}")
        if provenance is None:
            provenance = Provenance.current()
        elif isinstance(provenance, dict):
            provenance = Provenance.from_dict(provenance)
        self.arcs = arcs
        self.lens_light = lens_light
        self.bands = bands
        self.method = method
        self.params = params
        self.masks = masks
        self.diagnostics = dict(diagnostics or {})
        self.provenance = provenance

    def __len__(self):
        return self.arcs.shape[0]

    def band(self, name):
        """Arcs of one band, (N, H, W)."""
        if name not in self.bands:
            raise ValueError(f"no band {name!r}; this result has {self.bands}")
        return self.arcs[:, self.bands.index(name)]

    def to_dataset(self, pixel_scale=None):
        """
        The arcs as a `~lenskit.LensDataset`, for an estimator that expects the lens light removed.

        Parameters
        ----------
        pixel_scale : float or `~astropy.units.Quantity`, optional
            Arcsec per pixel; default the one the deblender recorded
            (``diagnostics["pixel_scale"]``).

        The dataset records ``lens_light="deblended"`` and the deblender in
        its provenance, so estimators know what they are given.
        """
        if pixel_scale is None:
            pixel_scale = self.diagnostics.get("pixel_scale")
        if pixel_scale is None:
            raise ValueError("pixel_scale: this Deblended does not record its pixel scale (made by an older "
                             "lenskit, or from plain arrays); pass pixel_scale= (arcsec per pixel)")
        pixel_scale = as_float(pixel_scale, "pixel_scale", u.arcsec)
        masks = None if self.masks is None else np.repeat(self.masks[:, None], self.arcs.shape[1], axis=1)
        prov = Provenance.current(config={"lens_light": "deblended", "deblender": self.method},
                                  checksums=dict(self.provenance.checksums or {}))
        return LensDataset(self.arcs, QTable({"image": np.arange(len(self))}), bands=self.bands,
                           pixel_scale=pixel_scale, masks=masks, provenance=prov)

    def write(self, path, overwrite=False):
        """Write to ASDF (atomically)."""
        storage.write(self, path, overwrite=overwrite)

    def __eq__(self, other):
        if not isinstance(other, Deblended):
            return NotImplemented
        return (self.method == other.method and self.bands == other.bands
                and np.array_equal(self.arcs, other.arcs) and np.array_equal(self.lens_light, other.lens_light))

    def __repr__(self):
        n, b, h, w = self.arcs.shape
        return f"<Deblended {self.method}: {n} image(s), bands={self.bands}, {h}x{w}>"
