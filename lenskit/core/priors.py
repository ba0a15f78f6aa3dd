"""
Prior distributions for simulation parameters.

A prior can be given as a number (fixed), a ``(low, high)`` tuple (uniform),
or a `Prior` instance (`Uniform`, `Normal`, `LogUniform`, `Fixed`).
"""

import numbers

import astropy.units as u
import numpy as np
from astropy.constants import c
from astropy.cosmology import Planck18

from lenskit.core.config import Configurable
from lenskit.core.validation import as_float

__all__ = ["Prior", "Fixed", "Uniform", "LogUniform", "Normal", "EinsteinRadius", "as_prior", "check_support"]


class Prior(Configurable):
    """A one-dimensional distribution sampled with a `numpy.random.Generator`."""

    #: The smallest and largest value a draw can take, where the distribution says (unknown: unbounded).
    support = (-np.inf, np.inf)

    def sample(self, rng, n):
        raise NotImplementedError

    def to_config(self):
        raise NotImplementedError


class Fixed(Prior):
    def __init__(self, value, name="Fixed value", unit=None):
        self.value = as_float(value, name, unit)

    @property
    def support(self):
        return (self.value, self.value)

    def sample(self, rng, n):
        return np.full(n, self.value)

    def to_config(self):
        return {"fixed": self.value}

    def __repr__(self):
        return f"Fixed({self.value})"


class Uniform(Prior):
    def __init__(self, low, high, name="Uniform", unit=None):
        self.low, self.high = as_float(low, f"{name} low", unit), as_float(high, f"{name} high", unit)
        if not self.low <= self.high:
            raise ValueError(f"{name} needs low <= high; got ({low}, {high})")

    def sample(self, rng, n):
        return rng.uniform(self.low, self.high, n)

    def to_config(self):
        return {"uniform": [self.low, self.high]}

    @property
    def support(self):
        return (self.low, self.high)

    def __repr__(self):
        return f"Uniform({self.low}, {self.high})"


class LogUniform(Prior):
    def __init__(self, low, high, name="LogUniform", unit=None):
        self.low, self.high = as_float(low, f"{name} low", unit), as_float(high, f"{name} high", unit)
        if not (0 < self.low <= self.high):
            raise ValueError(f"{name} needs 0 < low <= high; got ({low}, {high})")

    def sample(self, rng, n):
        return np.exp(rng.uniform(np.log(self.low), np.log(self.high), n))

    def to_config(self):
        return {"loguniform": [self.low, self.high]}

    @property
    def support(self):
        return (self.low, self.high)

    def __repr__(self):
        return f"LogUniform({self.low}, {self.high})"


class Normal(Prior):
    """Normal distribution, optionally truncated to [low, high] (by resampling)."""

    def __init__(self, mean, sigma, low=-np.inf, high=np.inf, name="Normal", unit=None):
        self.mean, self.sigma = as_float(mean, f"{name} mean", unit), as_float(sigma, f"{name} sigma", unit)
        self.low = as_float(low, f"{name} low", unit, finite=False)
        self.high = as_float(high, f"{name} high", unit, finite=False)
        if not (self.sigma >= 0 and self.low < self.high):
            raise ValueError(f"{name} needs sigma >= 0 and low < high; got sigma={sigma}, [{low}, {high}]")

    def sample(self, rng, n):
        out = rng.normal(self.mean, self.sigma, n)
        bad = (out < self.low) | (out > self.high)
        for _ in range(100):
            if not bad.any():
                break
            out[bad] = rng.normal(self.mean, self.sigma, int(bad.sum()))
            bad = (out < self.low) | (out > self.high)
        return np.clip(out, self.low, self.high)

    def to_config(self):
        return {"normal": [self.mean, self.sigma, self.low, self.high]}

    @property
    def support(self):
        return (self.low, self.high)

    def __repr__(self):
        return f"Normal({self.mean}, {self.sigma}, low={self.low}, high={self.high})"


class EinsteinRadius(Prior):
    """
    Einstein radii of singular isothermal lenses from a velocity dispersion and redshifts.

    ``theta_E = 4 pi (sigma_v / c)**2 D_ls / D_s`` (arcsec), with the angular
    diameter distances of ``cosmology``.  This is the lens population of
    Lanusse et al. (2018): sigma_v uniform in 150-350 km/s, z_l in 0.2-0.7
    and sources at z_s = 2.

    `sample_aux` also returns the drawn ``sigma_v`` (km/s), ``z_lens`` and
    ``z_source``; the `~lenskit.Simulator` records them in the parameter table.

    Parameters
    ----------
    sigma_v, z_lens, z_source : prior
        Velocity dispersion (km/s) and redshifts (numbers, ``(low, high)``
        tuples or `Prior` instances).
    cosmology : `astropy.cosmology.Cosmology`, optional
        Default `astropy.cosmology.Planck18`.
    """

    def __init__(self, sigma_v=(150.0, 350.0), z_lens=(0.2, 0.7), z_source=2.0, cosmology=None):
        self.sigma_v = as_prior(sigma_v, "sigma_v")
        self.z_lens = as_prior(z_lens, "z_lens")
        self.z_source = as_prior(z_source, "z_source")
        self.cosmology = Planck18 if cosmology is None else cosmology
        self._table = None

    def _ratio(self, z_l, z_s):
        """D_ls / D_s, interpolated on a fine redshift grid (exact to < 1e-5)."""
        if self._table is None:
            grid = np.linspace(0.0, 10.0, 4001)
            self._table = (grid, self.cosmology.comoving_transverse_distance(grid).value)
        grid, dm = self._table
        if np.any(z_l < 0) or np.any(z_s > grid[-1]) or np.any(z_l >= z_s):
            raise ValueError("EinsteinRadius needs 0 <= z_lens < z_source <= 10")
        dm_l, dm_s = np.interp(z_l, grid, dm), np.interp(z_s, grid, dm)
        # D_ls / D_s = D_M(z_l, z_s) / D_M,s; Hogg (1999, eq. 19) for a curved universe, (D_M,s - D_M,l) when flat
        ok = float(getattr(self.cosmology, "Ok0", 0.0) or 0.0)
        if ok:
            dh = self.cosmology.hubble_distance.value
            return (dm_s * np.sqrt(1 + ok * (dm_l / dh) ** 2) - dm_l * np.sqrt(1 + ok * (dm_s / dh) ** 2)) / dm_s
        return (dm_s - dm_l) / dm_s

    def sample_aux(self, rng, n):
        """Einstein radii (arcsec) and a dict of the drawn ``sigma_v``, ``z_lens``, ``z_source``."""

        sv = self.sigma_v.sample(rng, n)
        zl = self.z_lens.sample(rng, n)
        zs = self.z_source.sample(rng, n)
        if np.any(sv <= 0):
            raise ValueError("sigma_v prior produced a non-positive velocity dispersion")
        theta = 4 * np.pi * (sv / c.to_value("km/s")) ** 2 * self._ratio(zl, zs) * (180 / np.pi) * 3600
        return theta, {"sigma_v": sv, "z_lens": zl, "z_source": zs}

    def sample(self, rng, n):
        return self.sample_aux(rng, n)[0]

    def to_config(self):
        return {"einstein_radius": {"sigma_v": self.sigma_v.to_config(), "z_lens": self.z_lens.to_config(),
                                    "z_source": self.z_source.to_config(), "cosmology": self.cosmology.name}}

    def __repr__(self):
        return f"EinsteinRadius(sigma_v={self.sigma_v}, z_lens={self.z_lens}, z_source={self.z_source})"


def check_support(prior, name, low=None, high=None, low_open=False, high_open=False):
    """
    Refuse, naming ``name``, a prior whose stated support (`Prior.support`: the bounds of a uniform, a fixed
    value, a truncated normal's truncation) reaches beyond ``[low, high]`` (open ends with ``low_open`` /
    ``high_open``): when it is built, not at the first draw that falls outside.  A prior without bounds
    (an untruncated normal) passes; its draws are checked where they are used.
    """
    lo, hi = prior.support
    bad_low = low is not None and (lo < low or (low_open and lo == low))
    bad_high = high is not None and (hi > high or (high_open and hi == high))
    if (bad_low and np.isfinite(lo)) or (bad_high and np.isfinite(hi)):
        left = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
        right = "" if high is None else f"{'<' if high_open else '<='} {high:g}"
        raise ValueError(f"{name} must stay {' and '.join(x for x in (left, right) if x)}; its prior {prior!r} "
                         f"reaches [{lo:g}, {hi:g}]")
    return prior


def as_prior(value, name="prior", unit=None):
    """
    Turn a number, a (low, high) tuple or a `Prior` into a `Prior`.

    Numbers may be `~astropy.units.Quantity` (``0.8 * u.arcsec``, or a
    ``(low, high)`` Quantity pair): they are converted to ``unit`` (lenskit's
    unit of their kind when None) and a wrong kind of unit is an error naming
    ``name``.
    """
    if isinstance(value, Prior):
        return value
    if isinstance(value, u.Quantity) and not value.isscalar:
        if value.shape != (2,):
            raise ValueError(f"{name} must be a number, a (low, high) pair or a Prior; got a Quantity of shape "
                             f"{value.shape}")
        value = (value[0], value[1])
    if isinstance(value, u.Quantity) or (isinstance(value, numbers.Real) and not isinstance(value, bool)):
        return Fixed(value, name, unit)
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return Uniform(*value, name=name, unit=unit)
    if isinstance(value, dict) and len(value) == 1:
        (kind, args), = value.items()
        table = {"fixed": Fixed, "uniform": Uniform, "loguniform": LogUniform, "normal": Normal}
        if kind in table:
            return table[kind](*np.atleast_1d(args), name=f"{name} {kind}", unit=unit)
    raise TypeError(f"{name} must be a number, a (low, high) tuple, a Prior or a one-key dict; got {value!r}")
