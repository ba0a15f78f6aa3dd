"""Elliptical Sérsic source."""

import astropy.units as u
import numpy as np
import torch
from astropy.table import QTable

from lenskit.core.interfaces import Source, SourceBatch
from lenskit.core.priors import as_prior, check_support
from lenskit.lensing.light import elliptical_sersic, sersic_b, sersic_total_flux

__all__ = ["SersicSource", "SersicBatch"]


class SersicBatch(SourceBatch):
    """N elliptical Sérsic profiles centred on the origin, each of total flux 1."""

    def __init__(self, R_e, n, e1, e2):
        self.R_e = np.asarray(R_e, float)
        self.n = np.asarray(n, float)
        self.e1 = np.asarray(e1, float)
        self.e2 = np.asarray(e2, float)
        self.b = sersic_b(self.n)
        self.I_e = 1.0 / sersic_total_flux(self.R_e, self.n, b=self.b)
        self.flux = np.ones(len(self.R_e))
        self.size = self.R_e

    @property
    def params(self):  # made when asked for (once per dataset), not for every chunk
        return QTable({"source_R_e": self.R_e * u.arcsec, "source_n": self.n,
                       "source_e1": self.e1, "source_e2": self.e2})

    def take(self, index):
        out = self._take_arrays(index, ("R_e", "n", "e1", "e2", "b", "I_e", "flux"))
        out.size = out.R_e
        return out

    @staticmethod
    def kernel(bx, by, e1, e2, R_e, n, b, I_e):
        return elliptical_sersic(bx, by, e1, e2, 0.0, 0.0, R_e, n, b, I_e)

    def kernel_args(self, shape, dtype, device):
        return [torch.as_tensor(getattr(self, k), dtype=dtype, device=device).reshape(shape)
                for k in ("e1", "e2", "R_e", "n", "b", "I_e")]

    def brightness(self, bx, by):
        shape = (-1,) + (1,) * (bx.dim() - 1)
        return self.kernel(bx, by, *self.kernel_args(shape, bx.dtype, bx.device))


class SersicSource(Source):
    """
    Elliptical Sérsic galaxies.

    Parameters
    ----------
    R_e : prior
        Half-light radius in arcsec (intermediate axis).  Default
        ``(0.05, 0.8)``, the apparent sizes of Hezaveh et al. (2017).
    n : prior
        Sérsic index.  Default ``(0.5, 4.0)``.
    ellipticity : prior
        ``1 - q``, with a uniform angle.  Default ``(0, 0.5)``.
    """

    name = "sersic"

    def __init__(self, R_e=(0.05, 0.8), n=(0.5, 4.0), ellipticity=(0.0, 0.5)):
        self.R_e = check_support(as_prior(R_e, "R_e"), "R_e", low=0, low_open=True)
        self.n = check_support(as_prior(n, "n"), "n", low=0.36, high=10)
        self.ellipticity = as_prior(ellipticity, "ellipticity")

    def sample(self, n, rng):
        if int(n) != n or n < 0:
            raise ValueError(f"n must be a non-negative integer; got {n}")
        R_e = self.R_e.sample(rng, n)
        idx = self.n.sample(rng, n)
        if np.any(R_e <= 0):
            raise ValueError("R_e prior produced a non-positive radius")
        if np.any(idx < 0.36) or np.any(idx > 10):
            raise ValueError("n prior must stay within [0.36, 10]")
        eps = np.clip(self.ellipticity.sample(rng, n), 0, 0.95)
        q = 1 - eps
        phi = rng.uniform(0, np.pi, n)
        c = (1 - q) / (1 + q)
        return SersicBatch(R_e, idx, c * np.cos(2 * phi), c * np.sin(2 * phi))
