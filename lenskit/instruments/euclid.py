"""Euclid VIS stamps (Pearson et al. 2019)."""

import astropy.units as u

from lenskit.core.validation import as_float
from lenskit.instruments.camera import Camera, survey_priors
from lenskit.instruments.effects import CCDNoise, GaussianPSF

__all__ = ["EuclidVIS"]


class EuclidVIS(Camera):
    """
    Euclid VIS single exposures.

    Parameters
    ----------
    stamp : int
        Stamp size; default 57 (Pearson et al. 2019).
    pixel_scale : float
        Default 0.1" (Racca et al. 2016).
    psf_fwhm : float
        Gaussian PSF FWHM; default 0.17" (Pearson et al. 2019).
    exposure_time : float
        Seconds; default 565, one exposure (Cropper et al. 2012).
    n_exposures : int
        Exposures stacked (the wide survey takes 4).  Default 1.
    sky_brightness : float
        AB mag per arcsec**2; default 22.35 (Collett 2015).
    read_noise : float
        Electrons per read; default 4.5 (Cropper et al. 2016).
    dark_current : float
        Electrons per pixel per second; default 0.001 (Cropper et al. 2016).
    gain : float
        Electrons per ADU; default 3.1 (Cropper et al. 2016).

    Notes
    -----
    Zero point 25.5 AB for 1 e-/s (Collett 2015, as Pearson et al. 2019).
    """

    name = "euclid_vis"
    known_bands = ("VIS",)
    reference_band = "VIS"
    ZERO_POINTS = {"VIS": 25.5}
    colours = {"VIS": (0.0, 0.0)}
    default_lens_light = True
    default_selection = "pearson2019"

    def __init__(self, stamp=57, pixel_scale=0.1, psf_fwhm=0.17, exposure_time=565.0, n_exposures=1,
                 sky_brightness=22.35, read_noise=4.5, dark_current=0.001, gain=3.1, effects=None, bands=("VIS",)):
        pixel_scale = as_float(pixel_scale, "pixel_scale", u.arcsec)
        psf_fwhm = as_float(psf_fwhm, "psf_fwhm", u.arcsec)
        t = as_float(exposure_time, "exposure_time", u.s) * int(n_exposures)
        sky = {"VIS": float(sky_brightness)}
        if effects is None:
            effects = [
                GaussianPSF(fwhm=psf_fwhm),
                CCDNoise(exposure_time=t, n_exposures=int(n_exposures), sky_brightness=sky,
                         zero_points=self.ZERO_POINTS, read_noise=read_noise, dark_current=dark_current, gain=gain),
            ]
        super().__init__(bands=bands, pixel_scale=pixel_scale, shape=(stamp, stamp), zero_points=self.ZERO_POINTS,
                         sky_brightness=sky, exposure_time=t, effects=effects, photometric=True, psf_fwhm=psf_fwhm)
        self.default_priors = survey_priors(pixel_scale)
