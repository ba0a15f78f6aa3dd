"""
Clumpy star-forming galaxies made of Sérsic and Gaussian clumps.

The recipe of Hezaveh, Perreault Levasseur & Marshall (2017, Methods):
1-5 clumps whose positions follow a random correlated Gaussian whose long axis
is the galaxy radius; each clump a Sérsic profile (n = 1-5, R_eff = 0.1-0.2",
ellipticity 0-0.4) or a Gaussian; the whole galaxy then rescaled to an
apparent (unlensed) size of 0.05-0.8".
"""

import astropy.units as u
import numpy as np
import torch
from astropy.table import QTable

from lenskit.core.interfaces import Source, SourceBatch
from lenskit.core.priors import as_prior, check_support
from lenskit.lensing.light import elliptical_sersic, sersic_b, sersic_in_place, sersic_total_flux

__all__ = ["SersicClumpSource", "SersicClumpBatch"]


class SersicClumpBatch(SourceBatch):
    """
    N clumpy galaxies; arrays shaped (N, K) with K the maximum clump count.

    Each galaxy has total flux 1; inactive clump slots have zero weight.
    """

    def __init__(self, cx, cy, R_e, n, e1, e2, weight, size):
        self.cx, self.cy = np.asarray(cx, float), np.asarray(cy, float)
        self.R_e, self.n = np.asarray(R_e, float), np.asarray(n, float)
        self.e1, self.e2 = np.asarray(e1, float), np.asarray(e2, float)
        self.weight = np.asarray(weight, float)
        self.b = sersic_b(self.n)
        self.I_e = self.weight / sersic_total_flux(self.R_e, self.n, b=self.b)
        self.size = np.asarray(size, float)
        self.flux = self.weight.sum(axis=1)

    @property
    def params(self):  # made when asked for (once per dataset), not for every chunk
        return QTable({"source_size": self.size * u.arcsec, "source_n_clumps": (self.weight > 0).sum(axis=1)})

    def take(self, index):
        return self._take_arrays(index, ("cx", "cy", "R_e", "n", "e1", "e2", "weight", "b", "I_e", "size", "flux"))

    @staticmethod
    def kernel(bx, by, cx, cy, e1, e2, R_e, n, b, I_e):
        # clumps along dimension 1: (N, K, 1, ...) against coordinates (N, 1, ...)
        if not torch.compiler.is_compiling() and bx.dim() >= 2:
            nk = I_e.shape[:2]
            w = I_e.reshape(nk)
            if bool((w == 0).any()):  # galaxies with fewer clumps than K: evaluate only the clumps that are there
                g, k = torch.nonzero(w, as_tuple=True)
                shape = (-1,) + (1,) * (bx.dim() - 1)

                def pick(t, gi=g, ki=k):
                    return t.reshape(nk)[gi, ki].reshape(shape)

                out = torch.zeros_like(bx)
                if torch.is_grad_enabled() and any(t.requires_grad for t in (bx, by, e1, e2, cx, cy, R_e, n, b, I_e)):
                    each = elliptical_sersic(bx[g], by[g], *(pick(t) for t in (e1, e2, cx, cy, R_e, n, b, I_e)))
                    return out.index_add_(0, g, each)
                # Gaussian clumps (n = 1/2) and the others apart, each computed in place on its own rows
                gauss = pick(n).reshape(-1) == 0.5
                for rows in (gauss, ~gauss):
                    if bool(rows.any()):
                        gr, kr = g[rows], k[rows]
                        # index_select copies whole rows: 2-4x faster than advanced indexing's gather
                        each = sersic_in_place(bx.index_select(0, gr).sub_(pick(cx, gr, kr)),
                                               by.index_select(0, gr).sub_(pick(cy, gr, kr)),
                                               *(pick(t, gr, kr) for t in (e1, e2, R_e, n, b, I_e)))
                        out.index_add_(0, gr, each)
                return out
        bx, by = bx.unsqueeze(1), by.unsqueeze(1)
        return elliptical_sersic(bx, by, e1, e2, cx, cy, R_e, n, b, I_e).sum(1)

    def kernel_args(self, shape, dtype, device):
        kshape = (shape[0], self.cx.shape[1]) + tuple(shape[1:])
        return [torch.as_tensor(getattr(self, k), dtype=dtype, device=device).reshape(kshape)
                for k in ("cx", "cy", "e1", "e2", "R_e", "n", "b", "I_e")]

    def brightness(self, bx, by):
        shape = (-1,) + (1,) * (bx.dim() - 1)
        return self.kernel(bx, by, *self.kernel_args(shape, bx.dtype, bx.device))


class SersicClumpSource(Source):
    """
    Clumpy galaxies after Hezaveh et al. (2017).

    Parameters
    ----------
    n_clumps : tuple of int
        Inclusive range of the clump count.  Default (1, 5).
    size : prior
        Apparent size of the whole galaxy in arcsec (the flux-weighted radius
        defined above).  Default (0.05, 0.8).
    clump_R_e, clump_n, clump_ellipticity : prior
        Clump half-light radius (arcsec, before rescaling), Sérsic index and
        ``1 - q``.  Defaults (0.1, 0.2), (1, 5), (0, 0.4).
    gaussian_fraction : float
        Probability that a clump is a Gaussian (a Sérsic of index 1/2).  Default 0.5.
    radius : prior
        Long-axis rms of the clump positions (arcsec, before rescaling).
        Default (0.1, 0.6).
    axis_ratio : prior
        Short-to-long axis ratio of the clump-position Gaussian.  Default (0.3, 1).
    """

    name = "sersic_clump"

    def __init__(self, n_clumps=(1, 5), size=(0.05, 0.8), clump_R_e=(0.1, 0.2), clump_n=(1.0, 5.0),
                 clump_ellipticity=(0.0, 0.4), gaussian_fraction=0.5, radius=(0.1, 0.6),
                 axis_ratio=(0.3, 1.0)):
        lo, hi = n_clumps
        if not (1 <= lo <= hi):
            raise ValueError(f"n_clumps must be (low, high) with 1 <= low <= high; got {n_clumps}")
        self.n_clumps = (int(lo), int(hi))
        self.size = check_support(as_prior(size, "size"), "size", low=0, low_open=True)
        self.clump_R_e = check_support(as_prior(clump_R_e, "clump_R_e"), "clump_R_e", low=0, low_open=True)
        self.clump_n = check_support(as_prior(clump_n, "clump_n"), "clump_n", low=0.36, high=10)
        self.clump_ellipticity = as_prior(clump_ellipticity, "clump_ellipticity")
        if not 0 <= gaussian_fraction <= 1:
            raise ValueError(f"gaussian_fraction must lie in [0, 1]; got {gaussian_fraction}")
        self.gaussian_fraction = float(gaussian_fraction)
        self.radius = as_prior(radius, "radius")
        self.axis_ratio = as_prior(axis_ratio, "axis_ratio")

    def sample(self, n, rng):
        if int(n) != n or n < 0:
            raise ValueError(f"n must be a non-negative integer; got {n}")
        K = self.n_clumps[1]
        counts = rng.integers(self.n_clumps[0], self.n_clumps[1] + 1, n)
        active = np.arange(K)[None, :] < counts[:, None]
        # clump positions: correlated Gaussian, long axis = galaxy radius
        R = self.radius.sample(rng, n)[:, None]
        a = np.clip(self.axis_ratio.sample(rng, n), 0.05, 1)[:, None]
        th = rng.uniform(0, np.pi, n)[:, None]
        z1, z2 = rng.normal(size=(n, K)), rng.normal(size=(n, K))
        u_, v_ = R * z1, a * R * z2
        cx = np.cos(th) * u_ - np.sin(th) * v_
        cy = np.sin(th) * u_ + np.cos(th) * v_
        R_e = self.clump_R_e.sample(rng, n * K).reshape(n, K)
        idx = self.clump_n.sample(rng, n * K).reshape(n, K)
        gauss = rng.random((n, K)) < self.gaussian_fraction
        idx = np.where(gauss, 0.5, idx)
        eps = np.clip(self.clump_ellipticity.sample(rng, n * K).reshape(n, K), 0, 0.95)
        q = 1 - eps
        phi = rng.uniform(0, np.pi, (n, K))
        c = (1 - q) / (1 + q)
        e1, e2 = c * np.cos(2 * phi), c * np.sin(2 * phi)
        w = rng.uniform(0.2, 1.0, (n, K)) * active
        w = w / w.sum(axis=1, keepdims=True)
        # centre on the light centroid, then rescale to the target size
        cx = cx - (w * cx).sum(1, keepdims=True)
        cy = cy - (w * cy).sum(1, keepdims=True)
        native = np.sqrt((w * (cx**2 + cy**2 + R_e**2)).sum(axis=1))
        size = self.size.sample(rng, n)
        if np.any(size <= 0):
            raise ValueError("size prior produced a non-positive size")
        s = (size / native)[:, None]
        return SersicClumpBatch(cx * s, cy * s, R_e * s, idx, e1, e2, w, size)

