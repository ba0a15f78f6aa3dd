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


def _mag_pair(value, name):
    """(bright, faint) magnitudes, checked."""
    if np.ndim(value) != 1 or len(value) != 2:
        raise ValueError(f"{name} must be (bright, faint) magnitudes; got {value!r}")
    lo, hi = (as_float(m, name, u.mag) for m in value)
    if not lo < hi:
        raise ValueError(f"{name} must be (bright, faint) with bright < faint; got {value}")
    return lo, hi


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
    satellites : float
        Mean number of further galaxies per stamp near its centre, where the
        lens galaxy lies (default 0): the satellites and group members that
        crowd massive galaxies, with magnitudes from the same counts.  Their
        distances from the centre are uniform within ``satellite_radius`` (a
        surface density falling as 1/r, as an isothermal group's) at uniform
        angles.  A blob beside a lens galaxy is what a finder trained on a
        uniform field alone most often takes for a lensed image; lenses and
        non-lenses get them alike.
    satellite_radius : (float, float)
        Inner and outer distance of the satellites from the stamp's centre,
        in arcsec (default 0.5-3").
    satellite_mags : (float, float), optional
        Reference-band magnitudes of the satellites (default ``mag_range``).
    satellite_slope : float, optional
        Logarithmic slope of the satellites' counts (default ``slope``).  A
        group's luminosity function is about flat in magnitude below its
        brightest galaxies (a Schechter slope alpha ~ -1), so satellites a few
        magnitudes fainter than the lens galaxy are far more common than the
        field's steep faint counts (0.3) make them: ``satellite_slope=0``
        with ``satellite_mags`` from a magnitude below the lens galaxies draws
        them so.
    """

    def __init__(self, density=60.0, mag_range=(20.0, 27.0), slope=0.3, source=None, max_per_stamp=12,
                 satellites=0.0, satellite_radius=(0.5, 3.0), satellite_mags=None, satellite_slope=None):
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
        lo, hi = _mag_pair(mag_range, "mag_range")
        if int(max_per_stamp) != max_per_stamp or max_per_stamp < 1:
            raise ValueError(f"max_per_stamp must be a positive integer; got {max_per_stamp}")
        satellites = as_float(satellites, "satellites")
        if not 0 <= satellites <= max_per_stamp:
            raise ValueError(f"satellites must be a mean number per stamp in [0, max_per_stamp={max_per_stamp}]; "
                             f"got {satellites}")
        if np.ndim(satellite_radius) != 1 or len(satellite_radius) != 2:
            raise ValueError(f"satellite_radius must be (inner, outer) in arcsec; got {satellite_radius!r}")
        r_in, r_out = (as_float(r, "satellite_radius", u.arcsec) for r in satellite_radius)
        if not 0 <= r_in < r_out:
            raise ValueError(f"satellite_radius must be (inner, outer) arcsec with 0 <= inner < outer; "
                             f"got {satellite_radius}")
        self.satellites = satellites
        self.satellite_radius = (r_in, r_out)
        self.satellite_mags = None if satellite_mags is None else _mag_pair(satellite_mags, "satellite_mags")
        self.satellite_slope = None if satellite_slope is None else as_float(satellite_slope, "satellite_slope",
                                                                                 u.mag ** -1)
        self.density = density if isinstance(density, Prior) else float(density)
        self.mag_range = (lo, hi)
        self.slope = as_float(slope, "slope", u.mag ** -1)
        self.max_per_stamp = int(max_per_stamp)
        if source is None:
            source = get("source", "sersic")(R_e=(0.1, 1.0), n=(0.5, 4.0), ellipticity=(0.0, 0.6))
        elif isinstance(source, str):
            source = get("source", source)()
        self.source = source

    def draw_magnitudes(self, rng, k, satellites=False):
        """Magnitudes from ``dN/dm ~ 10**(slope m)`` within ``mag_range`` (inverse transform); the satellites' own
        range and slope with ``satellites=True``."""
        lo, hi = self.mag_range
        slope = self.slope
        if satellites:
            lo, hi = self.satellite_mags or (lo, hi)
            slope = slope if self.satellite_slope is None else self.satellite_slope
        if slope == 0:
            return rng.uniform(lo, hi, k)
        a = slope * np.log(10)
        u = rng.uniform(0, 1, k)
        return np.log(np.exp(a * lo) + u * (np.exp(a * hi) - np.exp(a * lo))) / a

    def render(self, n, rng, simulator):
        """
        Noise-free images (n, bands, H, W) of the galaxies, in the simulator's units.

        Positions are uniform over the stamp (the satellites': within
        ``satellite_radius`` of its centre); fluxes follow the instrument's
        zero points with source-like colours.  The counts returned include
        the satellites.
        """
        inst = simulator.instrument
        x, y = inst.pixel_grid(1, simulator.device, simulator.dtype)
        h, w = inst.shape
        pix = float(inst.pixel_scale.value)
        area = h * w * pix * pix / 3600.0  # arcmin^2
        density = self.density.sample(rng, n) if isinstance(self.density, Prior) else self.density
        counts = np.minimum(rng.poisson(density * area, n), self.max_per_stamp)
        near = np.zeros(n, int)
        if self.satellites > 0:  # drawn only when asked for: the field's draws stay those of before
            near = np.minimum(rng.poisson(self.satellites, n), self.max_per_stamp - counts)
        out = torch.zeros((n, len(inst.bands), h, w), dtype=simulator.dtype, device=simulator.device)
        field = int(counts.sum())
        total = field + int(near.sum())
        if total == 0:
            return out, counts + near
        owner = np.concatenate([np.repeat(np.arange(n), counts), np.repeat(np.arange(n), near)])
        xc = rng.uniform(-w * pix / 2, w * pix / 2, field)
        yc = rng.uniform(-h * pix / 2, h * pix / 2, field)
        if total > field:
            r = rng.uniform(*self.satellite_radius, total - field)
            phi = rng.uniform(0.0, 2 * np.pi, total - field)
            xc, yc = np.concatenate([xc, r * np.cos(phi)]), np.concatenate([yc, r * np.sin(phi)])
        # one stream: the field's magnitudes, then the satellites' (as one draw when they share the counts)
        mags = np.concatenate([self.draw_magnitudes(rng, field),
                               self.draw_magnitudes(rng, total - field, satellites=True)])
        fluxes, _ = simulator.drawer.band_fluxes(mags, "source", rng)  # (total, bands) e-/s
        gal = self.source.sample(total, rng)
        X = (x.reshape(1, 1, -1) - simulator.renderer.tensor(xc).reshape(-1, 1, 1)).expand(total, h, w)
        Y = (y.reshape(1, -1, 1) - simulator.renderer.tensor(yc).reshape(-1, 1, 1)).expand(total, h, w)
        sb = gal.brightness(X, Y)  # (total, H, W) per arcsec^2, integrating to gal.flux
        norm = simulator.renderer.tensor(fluxes / np.asarray(gal.flux, float)[:, None] * pix * pix)  # (total, bands)
        img = sb.unsqueeze(1) * norm.reshape(total, -1, 1, 1)
        out.index_add_(0, torch.as_tensor(owner, device=simulator.device), img)
        return out, counts + near

    def to_config(self):
        density = self.density.to_config() if isinstance(self.density, Prior) else self.density
        config = {"density": density, "mag_range": list(self.mag_range), "slope": self.slope,
                  "source": getattr(self.source, "name", type(self.source).__name__),
                  "max_per_stamp": self.max_per_stamp}
        if self.satellites:
            config.update(satellites=self.satellites, satellite_radius=list(self.satellite_radius))
            if self.satellite_mags is not None:
                config["satellite_mags"] = list(self.satellite_mags)
            if self.satellite_slope is not None:
                config["satellite_slope"] = self.satellite_slope
        return config

    def __repr__(self):
        near = f", satellites={self.satellites}" if self.satellites else ""
        return f"LineOfSight(density={self.density}/arcmin^2, mag_range={self.mag_range}{near})"
