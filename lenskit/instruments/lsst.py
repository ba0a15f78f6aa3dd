"""Rubin Observatory LSST stamps (Pearson et al. 2019; Lanusse et al. 2018)."""

import math

import astropy.units as u
import numpy as np

from lenskit.core.priors import Prior
from lenskit.core.validation import as_float
from lenskit.instruments.camera import Camera, survey_priors
from lenskit.instruments.effects import CCDNoise, GaussianPSF, MoffatPSF

__all__ = ["LSST", "EpochSeeing"]

FWHM_TO_SIGMA = 1 / (2 * math.sqrt(2 * math.log(2)))


class EpochSeeing(Prior):
    """
    PSF width of the best or worst of ``n_epochs`` exposures.

    Each exposure's FWHM is log-normal about ``median`` with ``scatter``
    (natural-log rms); `sample` returns the Gaussian rms width (arcsec) of
    the best exposure (a single-epoch image) or of the worst one (a stack
    degraded to its worst seeing), as in Lanusse et al. (2018, Section 4.3);
    with ``returns="fwhm"`` its FWHM (for `~lenskit.instruments.effects.MoffatPSF`).

    ``n_epochs`` may be a pair ``(lo, hi)``: each stamp then has its own
    number of exposures, uniform in lo..hi (both included), so that the
    seeing spans a survey's single visits (``lo = 1``: the median seeing and
    worse) to the best of many (``which="best"``) — for training a network
    that must hold at any seeing.
    """

    def __init__(self, median=0.81, scatter=0.2, n_epochs=10, which="best", returns="sigma"):
        if not median > 0 or not scatter >= 0:
            raise ValueError(f"median must be > 0 and scatter >= 0; got {median}, {scatter}")
        lo, hi = _epoch_range(n_epochs)
        if which not in ("best", "worst"):
            raise ValueError(f"which must be 'best' or 'worst'; got {which!r}")
        if returns not in ("sigma", "fwhm"):
            raise ValueError(f"returns must be 'sigma' or 'fwhm'; got {returns!r}")
        self.median, self.scatter, self.which = float(median), float(scatter), which
        self.n_epochs = lo if lo == hi else (lo, hi)
        self.returns = returns

    def sample(self, rng, n):
        lo, hi = _epoch_range(self.n_epochs)
        f = self.median * np.exp(self.scatter * rng.standard_normal((n, hi)))
        if lo < hi:  # each stamp its own number of exposures: the ones beyond it do not count
            k = rng.integers(lo, hi + 1, n)
            f = np.where(np.arange(hi)[None, :] < k[:, None], f, np.inf if self.which == "best" else -np.inf)
        f = f.min(1) if self.which == "best" else f.max(1)
        return f if self.returns == "fwhm" else f * FWHM_TO_SIGMA

    def to_config(self):
        n_epochs = list(self.n_epochs) if isinstance(self.n_epochs, tuple) else self.n_epochs
        return {"epoch_seeing": {"median": self.median, "scatter": self.scatter, "n_epochs": n_epochs,
                                 "which": self.which, "returns": self.returns}}


def _epoch_range(n_epochs):
    """(lo, hi) from an ``n_epochs`` that is a positive integer or an increasing pair of them."""
    pair = n_epochs if isinstance(n_epochs, (tuple, list)) else (n_epochs, n_epochs)
    ok = len(pair) == 2
    try:
        ok = ok and all(int(v) == v and v >= 1 for v in pair) and pair[0] <= pair[1]
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"n_epochs must be a positive integer or a pair (lo, hi) of them with lo <= hi; "
                         f"got {n_epochs!r}")
    return int(pair[0]), int(pair[1])


class LSST(Camera):
    """
    LSST single visits or stacks of N visits.

    Parameters
    ----------
    bands : sequence of str
        Any of u, g, r, i, z, y.  Default ``("g", "r", "i")``.
    stamp : int
        Stamp size in pixels: 57 for parameter estimation (Pearson et al.
        2019), 45 for lens finding (Lanusse et al. 2018).
    pixel_scale : float
        Default 0.2" (Ivezić et al. 2019).
    n_visits : int
        Visits stacked (each of ``exposure_per_visit`` seconds in
        ``reads_per_visit`` reads).  Default 1.
    seeing : float or dict
        PSF FWHM in arcsec (Gaussian), or band -> FWHM.  Default 0.7"
        (Pearson et al. 2019).
    sky_brightness : dict, optional
        Band -> mag per arcsec**2; default the dark-sky values of Ivezić et
        al. (2019, Table 2): u 22.99, g 22.26, r 21.20, i 20.48, z 19.60, y 18.61.
    exposure_per_visit : float
        Seconds; default 30 (2 x 15 s; Abell et al. 2009).
    read_noise : float
        Electrons per read; default 5 (Radeka et al. 2009, as Pearson et al. 2019).
    dark_current : float
        Electrons per pixel per second; default 2 (as Pearson et al. 2019).
    gain : float
        Electrons per ADU; default 1.

    Notes
    -----
    Zero points (AB magnitude giving 1 e-/s) u..y: 27.09, 28.58, 28.50,
    28.34, 27.95, 27.18 (Ivezić et al. 2010, as used by Pearson et al. 2019).
    Colours are typical offsets of an early-type lens at z ~ 0.5 and a
    star-forming source at z ~ 2, relative to r.
    """

    name = "lsst"
    known_bands = ("u", "g", "r", "i", "z", "y")
    reference_band = "r"
    ZERO_POINTS = {"u": 27.09, "g": 28.58, "r": 28.50, "i": 28.34, "z": 27.95, "y": 27.18}
    SKY = {"u": 22.99, "g": 22.26, "r": 21.20, "i": 20.48, "z": 19.60, "y": 18.61}
    colours = {"u": (3.0, 0.5), "g": (1.5, 0.2), "r": (0.0, 0.0), "i": (-0.6, -0.1), "z": (-0.95, -0.15),
               "y": (-1.15, -0.2)}
    default_lens_light = True
    default_selection = "pearson2019"

    def __init__(self, bands=("g", "r", "i"), stamp=57, pixel_scale=0.2, n_visits=1, seeing=0.7,
                 sky_brightness=None, exposure_per_visit=30.0, reads_per_visit=2, read_noise=5.0,
                 dark_current=2.0, gain=1.0, effects=None):
        if int(n_visits) != n_visits or n_visits < 1:
            raise ValueError(f"n_visits must be a positive integer; got {n_visits}")
        pixel_scale = as_float(pixel_scale, "pixel_scale", u.arcsec)
        seeing = as_float(seeing, "seeing", u.arcsec)
        exposure_per_visit = as_float(exposure_per_visit, "exposure_per_visit", u.s)
        sky = dict(self.SKY)
        sky.update(sky_brightness or {})
        exposure = float(exposure_per_visit) * int(n_visits)
        if effects is None:
            effects = [
                GaussianPSF(fwhm=seeing),
                CCDNoise(exposure_time=exposure, n_exposures=int(reads_per_visit) * int(n_visits),
                         sky_brightness=sky, zero_points=self.ZERO_POINTS, read_noise=read_noise,
                         dark_current=dark_current, gain=gain),
            ]
        super().__init__(bands=bands, pixel_scale=pixel_scale, shape=(stamp, stamp), zero_points=self.ZERO_POINTS,
                         sky_brightness=sky, exposure_time=exposure, effects=effects, photometric=True,
                         psf_fwhm=seeing)
        self.n_visits = int(n_visits)
        self.default_priors = survey_priors(pixel_scale)

    @classmethod
    def lanusse2018(cls, bands=("g",), mode=None, n_epochs=10, seeing_scatter=0.2, psf="gaussian", **kwargs):
        """
        The mock LSST observations of Lanusse et al. (2018, Table 1).

        45 x 45 stamps of 0.18", median seeing 0.81", g-band sky
        21.7 mag/arcsec**2 and 3000 s exposures (in 30 s reads).

        Parameters
        ----------
        bands : sequence of str
            ``("g",)`` as in the paper, or for example ``("g", "r", "i")``.
        mode : {None, "single_epoch", "stack"}
            None: the fixed median seeing.  ``"single_epoch"``: one 3000 s
            exposure, with the best seeing of ``n_epochs`` drawn per stamp.
            ``"stack"``: ``n_epochs`` such exposures co-added after degrading
            them to the worst seeing among them (deeper, blurrier), per
            Section 4.3 of the paper.
        n_epochs : int or (int, int)
            Exposures drawn per field.  Default 10.  A pair (lo, hi) draws
            the number per stamp, uniform in lo..hi (``"single_epoch"``
            only): ``(1, 10)`` spans single visits at the median seeing and
            worse to the best of ten (see `EpochSeeing`).
        seeing_scatter : float
            Log-normal scatter of the per-exposure FWHM about the median.
        psf : {"gaussian", "moffat"}
            With a ``mode``: Gaussian PSFs (the paper's), or Moffat PSFs of
            the same FWHM with wings (beta 2-8) and ellipticity up to 0.08
            (`~lenskit.instruments.effects.MoffatPSF`).
        """
        if mode not in (None, "single_epoch", "stack"):
            raise ValueError(f"mode must be None, 'single_epoch' or 'stack'; got {mode!r}")
        if psf not in ("gaussian", "moffat"):
            raise ValueError(f"psf must be 'gaussian' or 'moffat'; got {psf!r}")
        sky = {"u": 22.99, "g": 21.7, "r": 21.20, "i": 20.48, "z": 19.60, "y": 18.61}
        args = dict(bands=bands, stamp=45, pixel_scale=0.18, seeing=0.81, sky_brightness=sky,
                    n_visits=100, exposure_per_visit=30.0)
        args.update(kwargs)
        lo, hi = _epoch_range(n_epochs)
        if lo < hi and mode != "single_epoch":
            raise ValueError(f"n_epochs as a range {tuple(n_epochs)!r} needs mode='single_epoch' (a stack's depth "
                             f"follows its number of exposures); got mode={mode!r}")
        if mode is not None:
            stack = mode == "stack"
            nv = int(args["n_visits"]) * (int(n_epochs) if stack else 1)
            which = "worst" if stack else "best"
            if psf == "gaussian":
                effect = GaussianPSF(sigma=EpochSeeing(float(args["seeing"]), seeing_scatter, n_epochs, which))
            else:
                effect = MoffatPSF(fwhm=EpochSeeing(float(args["seeing"]), seeing_scatter, n_epochs, which,
                                                    returns="fwhm"), beta=(2.0, 8.0), ellipticity=(0.0, 0.08),
                                   band_scatter=0.1 if len(bands) > 1 else 0.0)
            default = cls(**{**args, "n_visits": nv})
            # the PSF passed to the constructor (not swapped in afterwards), so that the instrument's config
            # records it and Simulator.from_config rebuilds the epoch seeing
            return cls(**{**args, "n_visits": nv}, effects=[effect, *default.effects[1:]])
        return cls(**args)
