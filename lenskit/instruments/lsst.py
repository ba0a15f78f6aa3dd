"""Rubin Observatory LSST stamps (Pearson et al. 2019; Lanusse et al. 2018)."""

from lenskit.instruments.camera import Camera, survey_priors
from lenskit.instruments.effects import CCDNoise, GaussianPSF

__all__ = ["LSST"]


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
    def lanusse2018(cls, bands=("g",), **kwargs):
        """
        The mock LSST observations of Lanusse et al. (2018, Table 1).

        45 x 45 stamps of 0.18", seeing 0.81", g-band sky 21.7 mag/arcsec**2,
        3000 s in total.
        """
        args = dict(bands=bands, stamp=45, pixel_scale=0.18, seeing=0.81, sky_brightness={"g": 21.7},
                    n_visits=100, exposure_per_visit=30.0)
        args.update(kwargs)
        return cls(**args)
