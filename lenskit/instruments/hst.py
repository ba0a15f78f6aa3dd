"""Hubble Space Telescope WFC3/UVIS, as simulated by Hezaveh et al. (2017)."""

import astropy.units as u

from lenskit.core.priors import Uniform
from lenskit.core.validation import as_float
from lenskit.instruments.camera import Camera
from lenskit.instruments.effects import (
    CircularMasks,
    CosmicRays,
    GaussianNoise,
    GaussianPSF,
    ImagePSF,
    Normalize,
    PoissonNoise,
)

__all__ = ["HSTWFC3", "hezaveh2017_effects"]


def hezaveh2017_effects(test=False, psf=None, psf_pixel_scale=None, noise_correlation="cosmos_acs_f814w"):
    """
    The observational effects of Hezaveh et al. (2017, Methods), in their order.

    1. PSF: Gaussian with rms drawn up to 0.1" (or a supplied PSF image);
    2. Poisson noise with a counts factor of 100-1000;
    3. Gaussian noise, rms 1-10% of the peak, white for half of the images
       and coloured by a measured blank-field spectrum for the other half
       (``noise_correlation``: by default the COSMOS ACS F814W one,
       `~lenskit.instruments.effects.noise_correlation`; None for white
       noise only);
    4. cosmic rays grown by friends-of-friends and up to 100 hot pixels;
    5. normalisation to a peak of 1 (rms 0.05) plus a zero bias (rms 0.05);
    6. circular masks of radius 0.2" covering up to 25% of the arc flux
       (under 2% when ``test`` is True, as for the paper's test set).
    """
    psf_effect = GaussianPSF(sigma=(0.0, 0.1)) if psf is None else ImagePSF(psf, pixel_scale=psf_pixel_scale)
    return [
        psf_effect,
        PoissonNoise(counts_factor=(100.0, 1000.0)),
        GaussianNoise(rms=(0.01, 0.1), correlation=noise_correlation),
        CosmicRays(),
        Normalize(peak_rms=0.05, bias_rms=0.05),
        CircularMasks(radius=0.2, max_flux_fraction=0.02 if test else 0.25),
    ]


class HSTWFC3(Camera):
    """
    HST WFC3/UVIS stamps as in Hezaveh et al. (2017): 192 x 192 pixels of 0.04".

    Parameters
    ----------
    bands : sequence of str
        WFC3/UVIS filters; default ``("F814W",)``.  The paper's ICA used
        ``("F475X", "F600LP")``.
    shape : tuple of int
        Stamp shape.  Default (192, 192) (Hezaveh et al. 2017).
    pixel_scale : float
        Default 0.04" (WFC3/UVIS; Dressel 2024, WFC3 Instrument Handbook).
    test : bool
        Test-set masks (under 2% of the arc flux) instead of training ones (25%).
    psf : array-like or dict, optional
        PSF image(s) to use instead of the random Gaussian PSF (for example
        the HST PSFs in ``shared/data/psf``), with ``psf_pixel_scale``.
    noise_correlation : str or array-like or None
        Blank-field noise correlation function colouring half of the images'
        Gaussian noise, as Hezaveh et al. (2017) did with "a power spectrum
        measured from blank fields of a sample of HST images": by default
        ``"cosmos_acs_f814w"`` (`~lenskit.instruments.effects.noise_correlation`,
        drizzled HST ACS images); an array of your own; None for white noise.
    effects : list, optional
        Replace the effect chain entirely.

    Notes
    -----
    Zero points are WFC3/UVIS AB magnitudes for 1 e-/s (infinite aperture,
    Kalirai et al. 2009, WFC3 ISR 2009-31; rounded to 0.01 mag).  Sky values
    are typical zodiacal-light levels (WFC3 Instrument Handbook, ch. 9) and
    are used only by photometric effect chains; the default chain follows the
    paper and normalises images to a peak of 1.  Colours are typical offsets
    of an early-type lens at z ~ 0.5 and a star-forming source at z ~ 2
    (relative to F814W), so that two-band images carry colour contrast.
    """

    name = "hst_wfc3"
    known_bands = ("F390W", "F438W", "F475X", "F555W", "F600LP", "F606W", "F814W")
    reference_band = "F814W"
    ZERO_POINTS = {"F390W": 25.37, "F438W": 24.83, "F475X": 26.15, "F555W": 25.81, "F600LP": 25.85,
                   "F606W": 26.08, "F814W": 25.09}
    SKY = {"F390W": 24.3, "F438W": 23.7, "F475X": 22.9, "F555W": 22.9, "F600LP": 22.3, "F606W": 22.6,
           "F814W": 22.4}
    colours = {"F390W": (3.0, 0.5), "F438W": (2.6, 0.4), "F475X": (2.0, 0.3), "F555W": (1.6, 0.25),
               "F600LP": (0.5, 0.05), "F606W": (1.2, 0.15), "F814W": (0.0, 0.0)}
    default_lens_light = False

    def __init__(self, bands=("F814W",), shape=(192, 192), pixel_scale=0.04, test=False, psf=None,
                 psf_pixel_scale=None, noise_correlation="cosmos_acs_f814w", effects=None, exposure_time=1200.0):
        pixel_scale = as_float(pixel_scale, "pixel_scale", u.arcsec)
        if effects is None:
            effects = hezaveh2017_effects(test=test, psf=psf, psf_pixel_scale=psf_pixel_scale,
                                          noise_correlation=noise_correlation)
        super().__init__(bands=bands, pixel_scale=pixel_scale, shape=shape, zero_points=self.ZERO_POINTS,
                         sky_brightness=self.SKY, exposure_time=exposure_time, effects=effects,
                         photometric=False)
        self.test = bool(test)
        # Hezaveh et al. (2017, Methods): theta_E flat in 0.1-3", ellipticity flat up to 0.9,
        # lens centre within the central 0.5"
        self.default_priors = {
            "theta_E": Uniform(0.1, 3.0), "ellipticity": Uniform(0.0, 0.9),
            "x0": Uniform(-0.25, 0.25), "y0": Uniform(-0.25, 0.25),
            "lens_mag": Uniform(17.5, 21.0), "source_mag": Uniform(21.0, 25.0),
            "light_R_e": Uniform(0.5, 2.0), "light_n": Uniform(2.5, 5.5),
        }
