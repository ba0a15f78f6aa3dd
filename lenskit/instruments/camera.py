"""`Camera`: the concrete instrument shared by HST, LSST and Euclid."""

import astropy.units as u
import numpy as np
import torch

from lenskit.core.interfaces import Instrument
from lenskit.core.priors import Normal, Uniform
from lenskit.core.validation import as_float
from lenskit.instruments.effects import Observation
from lenskit.lensing.render import pixel_grid

__all__ = ["Camera", "survey_priors"]


def survey_priors(pixel_scale):
    """
    Default simulation priors of the survey instruments (LSST, Euclid).

    Uniform Einstein radii of 0.5-2.5", 1 - q up to 0.5, lens centres
    scattered by one pixel about the stamp centre (Pearson et al. 2019),
    lens and source magnitudes in the reference band, and lens-light sizes
    and indices typical of massive early-type galaxies.
    """

    centre = Normal(0.0, pixel_scale, -3 * pixel_scale, 3 * pixel_scale)
    return {"theta_E": Uniform(0.5, 2.5), "ellipticity": Uniform(0.0, 0.5), "x0": centre, "y0": centre,
            "lens_mag": Uniform(18.5, 21.5), "source_mag": Uniform(20.5, 24.5),
            "light_R_e": Uniform(0.5, 2.0), "light_n": Uniform(2.5, 5.5)}


class Camera(Instrument):
    """
    An imaging instrument: bands, pixel grid, photometry and an ordered list of effects.

    Parameters
    ----------
    bands : sequence of str
        Bands to observe in; each must be in the instrument's `known_bands`.
    pixel_scale : float
        Arcsec per pixel.
    shape : tuple of int
        Stamp shape (H, W).
    zero_points : dict
        Band -> AB magnitude giving 1 electron per second.
    sky_brightness : dict
        Band -> sky in AB mag per arcsec**2.
    exposure_time : float
        Total exposure in seconds.
    effects : list of `~lenskit.instruments.effects.Effect`
        Applied in order by `observe`.
    photometric : bool
        True when images stay in electrons per second (survey instruments);
        False when the effects normalise them (the HST recipe of Hezaveh et al.).
    """

    #: Band -> (typical colour offsets of a lens galaxy, of a source galaxy) in magnitudes relative to
    #: an arbitrary reference; only differences between bands matter.
    colours = {}
    #: Bands this instrument knows.
    known_bands = ()
    #: Band in which magnitude priors are expressed.
    reference_band = None
    #: Simulation priors suited to this instrument (see `lenskit.core.priors`).
    default_priors = {}
    #: Add lens light by default in the Simulator.
    default_lens_light = True
    #: Selection the Simulator applies by default (see `lenskit.simulation.selection.as_selection`).
    default_selection = "hezaveh2017"

    def __init__(self, bands, pixel_scale, shape, zero_points, sky_brightness, exposure_time, effects,
                 photometric=True, psf_fwhm=None):
        if isinstance(bands, str):
            bands = (bands,)
        bands = tuple(bands)
        if not bands:
            raise ValueError("bands must name at least one band")
        unknown = [b for b in bands if b not in self.known_bands]
        if unknown:
            raise ValueError(f"{self.name}: unknown band(s) {unknown}; expected some of {list(self.known_bands)}")
        if len(set(bands)) != len(bands):
            raise ValueError(f"bands must not repeat; got {list(bands)}")
        pixel_scale = as_float(pixel_scale, "pixel_scale", u.arcsec)
        if not pixel_scale > 0:
            raise ValueError(f"pixel_scale must be > 0 arcsec; got {pixel_scale}")
        exposure_time = as_float(exposure_time, "exposure_time", u.s)
        shape = tuple(int(s) for s in shape)
        if len(shape) != 2 or min(shape) < 4:
            raise ValueError(f"shape must be (H, W) with H, W >= 4; got {shape}")
        self.bands = bands
        self.pixel_scale = float(pixel_scale) * u.arcsec
        self.shape = shape
        self.zero_points = {b: float(zero_points[b]) for b in bands}
        self.sky_brightness = {b: float(sky_brightness[b]) for b in bands}
        self.exposure_time = float(exposure_time) * u.s
        self.effects = list(effects)
        self.photometric = bool(photometric)
        self.psf_fwhm = None if psf_fwhm is None else as_float(psf_fwhm, "psf_fwhm", u.arcsec)

    # -- geometry --------------------------------------------------------------------
    def pixel_grid(self, supersample=1, device="cpu", dtype=torch.float32):
        """
        Pixel-centre coordinates (arcsec): ``x`` shaped (W*s,), ``y`` shaped (H*s,).

        Centres sit at ``(i - (n - 1) / 2) * scale``; with supersampling each
        pixel is split into ``s x s`` sub-pixels.
        """
        return pixel_grid(self.shape, self.pixel_scale.to_value(u.arcsec), supersample, device, dtype)

    @property
    def field_of_view(self):
        """(height, width) of the stamp in arcsec."""
        p = self.pixel_scale.to_value(u.arcsec)
        return self.shape[0] * p, self.shape[1] * p

    # -- photometry ------------------------------------------------------------------
    def flux(self, magnitude, band):
        """Electrons per second of a source of AB ``magnitude`` in ``band``."""
        return 10 ** (-0.4 * (np.asarray(magnitude, float) - self.zero_points[band]))

    def colour_offsets(self, kind):
        """
        Typical magnitude of each observed band minus that of `reference_band`.

        ``kind`` is ``"lens"`` (an early-type galaxy) or ``"source"`` (a
        star-forming galaxy at higher redshift).
        """
        i = {"lens": 0, "source": 1}[kind]
        ref = self.colours[self.reference_band][i]
        return np.array([self.colours[b][i] - ref for b in self.bands])

    # -- observing -------------------------------------------------------------------
    def observe(self, ideal, rng, *, sum_of=(), **truth):
        """
        Apply the effects to noise-free images.

        Parameters
        ----------
        ideal : `torch.Tensor`
            (N, bands, H, W) noise-free, unconvolved images in electrons per second per pixel.
        rng : `numpy.random.Generator`
        **truth
            Noise-free components (``arcs``, ``lens_light``) that are convolved
            and scaled along with the images.
        sum_of : tuple of str
            Names of ``truth`` components whose sum is exactly ``ideal``
            (`~lenskit.instruments.effects.Observation.sum_of`): linear
            effects then convolve the components alone and add them.

        Notes
        -----
        Two consecutive effects that fuse (`~lenskit.instruments.effects.Effect.then`)
        are applied as one step: a `~lenskit.instruments.effects.PoissonNoise`
        directly followed by a `~lenskit.instruments.effects.GaussianNoise`
        becomes `~lenskit.instruments.effects.poisson_gaussian_noise` (the same
        distribution, a pixel's photons and noise drawn together);
        ``PoissonNoise(exact=True)`` applies the two one after the other.

        Returns
        -------
        `~lenskit.instruments.effects.Observation`
        """
        if not isinstance(ideal, torch.Tensor):
            ideal = torch.as_tensor(np.asarray(ideal, dtype=np.float32))
        if ideal.dim() != 4 or tuple(ideal.shape[1:]) != (len(self.bands),) + self.shape:
            raise ValueError(f"ideal must be shaped (N, {len(self.bands)}, {self.shape[0]}, {self.shape[1]}); "
                             f"got {tuple(ideal.shape)}")
        obs = Observation(images=ideal, pixel_scale=self.pixel_scale.to_value(u.arcsec), bands=self.bands,
                          truth=dict(truth), sum_of=tuple(sum_of))
        effects, i = list(self.effects), 0
        while i < len(effects):
            fuse = getattr(effects[i], "then", None)  # (effects that are not `Effect`s do not fuse)
            step = fuse(effects[i + 1]) if fuse is not None and i + 1 < len(effects) else None
            if step is not None:  # two effects fused into one step (the same distribution)
                obs = step(obs, rng)
                i += 2
            else:
                obs = effects[i](obs, rng)
                i += 1
        return obs

    def to_config(self):
        """JSON-like description (recorded in dataset provenance)."""
        return {
            "name": self.name, "bands": list(self.bands), "pixel_scale": self.pixel_scale.to_value(u.arcsec),
            "shape": list(self.shape), "zero_points": self.zero_points, "sky_brightness": self.sky_brightness,
            "exposure_time": self.exposure_time.to_value(u.s), "photometric": self.photometric,
            "effects": [e.to_config() for e in self.effects],
        }

    def __repr__(self):
        return (f"<{type(self).__name__} '{self.name}' bands={list(self.bands)} {self.shape[0]}x{self.shape[1]} "
                f"at {self.pixel_scale.to_value(u.arcsec):g}\">")
