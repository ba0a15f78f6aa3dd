"""
Unlensed galaxies along the line of sight.

Survey cutouts around a lens hold other galaxies too; Lanusse et al. (2018,
Section 4.2) populate their fields with galaxies that are not lensed even when
they lie behind the deflector.  `LineOfSight` does the same for any
`~lenskit.core.Source` population, with magnitudes drawn from galaxy number
counts.
"""

import astropy.units as u
import numpy as np
import torch

from lenskit.core.config import Configurable
from lenskit.core.priors import Prior, as_prior
from lenskit.core.validation import as_float
from lenskit.plugins import get

__all__ = ["LineOfSight"]


class LineOfSight(Configurable):
    """
    A Poisson number of unlensed galaxies scattered uniformly over each stamp.

    Parameters
    ----------
    density : float or prior
        Mean number of galaxies per square arcminute between ``mag_range``
        (default 60: roughly the deep g-band counts to g ~ 27).  A prior
        (`~lenskit.core.priors.LogUniform`, a ``(low, high)`` pair ...) draws
        each stamp's own density, as fields differ: lens galaxies live in
        groups, and clustered counts scatter more than Poisson's.
    mag_range : (float, float)
        Reference-band magnitudes, drawn from counts ``dN/dm ~ 10**(slope m)``.
    slope : float
        Logarithmic slope of the counts (0.3 for faint optical counts).
    source : str or `~lenskit.core.Source`
        Their light profiles: a registered source (default ``"sersic"`` with
        sizes 0.1-1") or any instance, for example real galaxies.
    max_per_stamp : int
        Upper bound on galaxies per stamp (draws above it are capped).
    """

    def __init__(self, density=60.0, mag_range=(20.0, 27.0), slope=0.3, source=None, max_per_stamp=12):
        if isinstance(density, (Prior, tuple, list, dict)):
            density = as_prior(density, "density", u.arcmin ** -2)
            low = getattr(density, "low", getattr(density, "value", None))
            low = float(np.min(density.sample(np.random.default_rng(0), 1000)) if low is None else low)
            if not low >= 0:
                raise ValueError(f"density must be >= 0 per arcmin^2; the prior {density!r} reaches {low:.3g}")
        else:
            density = as_float(density, "density", u.arcmin ** -2)
            if not density >= 0:
                raise ValueError(f"density must be >= 0 per arcmin^2; got {density}")
        if np.ndim(mag_range) != 1 or len(mag_range) != 2:
            raise ValueError(f"mag_range must be (bright, faint) magnitudes; got {mag_range!r}")
        lo, hi = (as_float(m, "mag_range", u.mag) for m in mag_range)
        if not lo < hi:
            raise ValueError(f"mag_range must be (bright, faint) with bright < faint; got {mag_range}")
        if int(max_per_stamp) != max_per_stamp or max_per_stamp < 1:
            raise ValueError(f"max_per_stamp must be a positive integer; got {max_per_stamp}")
        self.density = density if isinstance(density, Prior) else float(density)
        self.mag_range = (lo, hi)
        self.slope = as_float(slope, "slope", u.mag ** -1)
        self.max_per_stamp = int(max_per_stamp)
        if source is None:
            source = get("source", "sersic")(R_e=(0.1, 1.0), n=(0.5, 4.0), ellipticity=(0.0, 0.6))
        elif isinstance(source, str):
            source = get("source", source)()
        self.source = source

    def draw_magnitudes(self, rng, k):
        """Magnitudes from ``dN/dm ~ 10**(slope m)`` within ``mag_range`` (inverse transform)."""
        lo, hi = self.mag_range
        if self.slope == 0:
            return rng.uniform(lo, hi, k)
        a = self.slope * np.log(10)
        u = rng.uniform(0, 1, k)
        return np.log(np.exp(a * lo) + u * (np.exp(a * hi) - np.exp(a * lo))) / a

    def render(self, n, rng, simulator):
        """
        Noise-free images (n, bands, H, W) of the galaxies, in the simulator's units.

        Positions are uniform over the stamp; fluxes follow the instrument's
        zero points with source-like colours.
        """
        inst = simulator.instrument
        x, y = inst.pixel_grid(1, simulator.device, simulator.dtype)
        h, w = inst.shape
        pix = float(inst.pixel_scale.value)
        area = h * w * pix * pix / 3600.0  # arcmin^2
        density = self.density.sample(rng, n) if isinstance(self.density, Prior) else self.density
        counts = np.minimum(rng.poisson(density * area, n), self.max_per_stamp)
        out = torch.zeros((n, len(inst.bands), h, w), dtype=simulator.dtype, device=simulator.device)
        total = int(counts.sum())
        if total == 0:
            return out, counts
        owner = np.repeat(np.arange(n), counts)
        xc = rng.uniform(-w * pix / 2, w * pix / 2, total)
        yc = rng.uniform(-h * pix / 2, h * pix / 2, total)
        mags = self.draw_magnitudes(rng, total)
        fluxes, _ = simulator.drawer.band_fluxes(mags, "source", rng)  # (total, bands) e-/s
        gal = self.source.sample(total, rng)
        X = (x.reshape(1, 1, -1) - simulator.renderer.tensor(xc).reshape(-1, 1, 1)).expand(total, h, w)
        Y = (y.reshape(1, -1, 1) - simulator.renderer.tensor(yc).reshape(-1, 1, 1)).expand(total, h, w)
        sb = gal.brightness(X, Y)  # (total, H, W) per arcsec^2, integrating to gal.flux
        norm = simulator.renderer.tensor(fluxes / np.asarray(gal.flux, float)[:, None] * pix * pix)  # (total, bands)
        img = sb.unsqueeze(1) * norm.reshape(total, -1, 1, 1)
        out.index_add_(0, torch.as_tensor(owner, device=simulator.device), img)
        return out, counts

    def to_config(self):
        density = self.density.to_config() if isinstance(self.density, Prior) else self.density
        return {"density": density, "mag_range": list(self.mag_range), "slope": self.slope,
                "source": getattr(self.source, "name", type(self.source).__name__),
                "max_per_stamp": self.max_per_stamp}

    def __repr__(self):
        return f"LineOfSight(density={self.density}/arcmin^2, mag_range={self.mag_range})"
