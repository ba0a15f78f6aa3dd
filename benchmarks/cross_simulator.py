"""
The shipped networks on lenses lenskit did not make: test sets rendered with lenstronomy.

Every figure a weight file quotes is measured on lenskit's own simulations.
Users' lenses come from elsewhere, so this benchmark renders deterministic test
sets with another code -- lenstronomy (``pip install lenskit-astro[peers]``,
never a runtime dependency) -- with choices of its own, and measures each
shipped network with its paper's metrics beside its own-simulator figure (read
from its weight file):

``lsst_gri`` / ``lsst_gri_no_lens_light``
    Pearson et al. (2019) protocol: LSST g, r, i, 57 x 57 at 0.2", one 30 s
    visit (lenstronomy's LSST zero points, sky and read noise), their
    Einstein-radius and axis-ratio distributions and detection criteria.
    Without lens light: the same noisy images minus the true lens light (its
    shot noise stays), as Pearson et al. made theirs.  Metric: RMS.
``euclid_vis`` / ``euclid_vis_no_lens_light``
    The same for Euclid VIS (0.1", lenstronomy's VIS noise, four 566 s exposures).
``hst_wfc3``
    Hezaveh et al. (2017) protocol: 192 x 192 at 0.04", no lens light, theta_E
    flat in 0.1-3", magnification >= 2.  Metric: 68% error.
``deeplens_lsst_g``
    Lanusse et al. (2018) protocol: LSST g 45 x 45 at 0.18", one 3000 s
    exposure, a lens galaxy in every cutout, half of them lensing a source
    (magnified >= 5 as in the finder's own test set, some below S/N 20),
    line-of-sight galaxies.  Metrics: AUROC (lenses with S/N > 20) and
    completeness at 1% false positives for theta_E > 1.4" and S/N > 20; at that
    threshold, the completeness and false positives split by arc S/N, seeing, the lens
    galaxy's brightness and whether a line-of-sight galaxy lies within 3" of the lens.

The other simulator's choices (not lenskit's defaults, and not tuned to them):

* lens light: a de Vaucouleurs-like bulge (Sérsic n 3-6, R_e log-normal about
  0.8" with 0.2 dex scatter) and, in 40% of lenses, an exponential disc with
  15-45% of the flux and 1.5-3 times the bulge's size, bluer than the bulge;
  light axis ratio the mass's + N(0.05, 0.08), angle the mass's + N(0, 12 deg);
  early-type colours g - r ~ N(1.25, 0.1), r - i ~ N(0.45, 0.06);
* sources: an elliptical Sérsic (n 0.5-2.5, R_e 0.08-0.35") with 0-3
  Gaussian star-forming clumps (10-40% of the flux) within 0.3", colours
  g - r ~ N(0.35, 0.15), r - i ~ N(0.15, 0.1); reference-band magnitudes 20.5-24.5 (LSST r),
  21-25 (VIS), 21.5-24.5 (HST F814W) and, for the finder, g 23-27.5 behind lens galaxies of g 19-22;
* PSFs: LSST, a Moffat (beta 2.5-4.5) with a FWHM per image and band about
  lenstronomy's seeing (0.77", 0.73", 0.71" g, r, i; 12% scatter); the finder's
  g cutouts, a Moffat of FWHM N(0.75", 0.1") within 0.55-1.0" (one exposure's
  seeing, not the best of ten; its completeness is also split at 0.75"); Euclid, a
  Gaussian of 0.15-0.20"; HST, a real empirical WFC3/UVIS F814W PSF (one of the
  56 positions of Anderson's grid, ``../shared/data/psf``);
* noise: Poisson on the source and lens counts, sky and read noise from
  lenstronomy's instrument configurations, drawn with this script's seed (a
  Poisson draw takes as many random numbers as its counts need, so a variant
  that changes one image -- another mass model, seeing or a diagnosis -- draws
  the systems after it anew from the same population: the same set
  statistically, not image by image);
* the sources are placed uniformly within 0.6 theta_E of the lens centre, then
  the paper's selection applies;
* mass: SIE lenses by default.  ``--mass epl_shear`` draws the same population
  (the slope and shear from a stream of their own) as elliptical
  power laws with the density slopes SLACS measured (Auger et al. 2010: mean
  2.08, intrinsic scatter 0.16; here N(2.08, 0.16) within 1.6-2.6) in an
  external shear of log-normal strength (median 0.04, 0.25 dex, at most 0.15;
  angle uniform), lenstronomy's ``EPL`` and ``SHEAR``.  The truth the networks
  are scored against is the power law's own theta_E, e1, e2, x0, y0 (the
  SIE-equivalent parameters lenskit's robust preset trains on).

Usage::

    python benchmarks/cross_simulator.py                   # every set, 1000 systems each (the finder 4000)
    python benchmarks/cross_simulator.py --sets lsst_gri --n 2000 --weights /tmp/lsst_gri_robust.asdf
    python benchmarks/cross_simulator.py --store          # and write the figures into the weight files
    python benchmarks/cross_simulator.py --sets hst_wfc3 --tta 1,8   # both on one rendering
    python benchmarks/cross_simulator.py --sets lsst_gri --mass epl_shear   # lenses that are not isothermal

Prints JSON: per set, the shipped (or given) network's figures on the other
simulator's images beside its own-simulator figures, and their ratio.
"""

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LENSKIT_SHARED", ROOT.parent / "shared")) / "data"

SETS = ("lsst_gri", "lsst_gri_no_lens_light", "euclid_vis", "euclid_vis_no_lens_light", "hst_wfc3",
        "deeplens_lsst_g")
MISSING_MAG = 99.0  # a component that is absent: zero flux
#: Systems per set; the finder set has more: its 1% false-positive threshold is its 20th highest non-lens of 2,000, not its 5th of 500
DEFAULT_N, FINDER_N = 1000, 4000
#: Mass models of the sets: ``--mass``
MASSES = ("sie", "epl_shear")


# ------------------------------------------------------------------------------------------ populations
def _q_to_e(q, phi):
    c = (1 - q) / (1 + q)
    return c * np.cos(2 * phi), c * np.sin(2 * phi)


def draw_lenses(rng, n, theta_E, q, centre_sigma, centre_max):
    """SIE lenses: theta_E (n,), q (n,) given; angle uniform; centres N(0, sigma) truncated."""
    phi = rng.uniform(0, np.pi, n)
    e1, e2 = _q_to_e(q, phi)
    x0 = np.clip(rng.normal(0, centre_sigma, n), -centre_max, centre_max)
    y0 = np.clip(rng.normal(0, centre_sigma, n), -centre_max, centre_max)
    return {"theta_E": theta_E, "e1": e1, "e2": e2, "x0": x0, "y0": y0, "q": q, "phi": phi}


def draw_mass(lens, mrng, mass):
    """With ``mass="epl_shear"``, add a power-law slope and an external shear to ``lens`` from ``mrng``.

    ``mrng`` is a stream of its own, so that the lenses, sources and noise are those of the SIE set."""
    if mass == "sie":
        return lens
    if mass != "epl_shear":
        raise ValueError(f"mass must be one of {MASSES}; got {mass!r}")
    n = len(lens["theta_E"])
    slope = np.clip(mrng.normal(2.08, 0.16, n), 1.6, 2.6)
    strength = np.clip(0.04 * 10 ** mrng.normal(0.0, 0.25, n), 0.0, 0.15)
    angle = mrng.uniform(0, np.pi, n)
    return {**lens, "slope": slope, "gamma1": strength * np.cos(2 * angle), "gamma2": strength * np.sin(2 * angle)}


def draw_lens_light(rng, lens, ref_mag):
    """The bulge (+ disc) population described in the module docstring; magnitudes in the reference band."""
    n = len(ref_mag)
    q_l = np.clip(lens["q"] + rng.normal(0.05, 0.08, n), 0.3, 1.0)
    phi_l = lens["phi"] + np.deg2rad(rng.normal(0, 12, n))
    R_e = np.clip(10 ** rng.normal(np.log10(0.8), 0.2, n), 0.25, 3.0)
    disc = rng.random(n) < 0.4
    f_disc = np.where(disc, rng.uniform(0.15, 0.45, n), 0.0)
    return {"q": q_l, "phi": phi_l, "R_e": R_e, "n_s": rng.uniform(3.0, 6.0, n), "f_disc": f_disc,
            "R_d": R_e * rng.uniform(1.5, 3.0, n), "q_d": np.clip(q_l - rng.uniform(0.0, 0.2, n), 0.25, 1.0),
            "mag": ref_mag, "disc_blue": rng.uniform(0.3, 0.8, n)}


def draw_sources(rng, n, ref_mag, theta_E, lens, radius=0.6):
    """Sérsic + Gaussian clumps, placed uniformly within ``radius`` theta_E (0.6) of the lens centre."""
    r = radius * theta_E * np.sqrt(rng.random(n))
    a = rng.uniform(0, 2 * np.pi, n)
    q = rng.uniform(0.4, 1.0, n)
    e1, e2 = _q_to_e(q, rng.uniform(0, np.pi, n))
    n_clumps = rng.integers(0, 4, n)
    f_clumps = np.where(n_clumps > 0, rng.uniform(0.1, 0.4, n), 0.0)
    cr = 0.3 * np.sqrt(rng.random((n, 3)))
    ca = rng.uniform(0, 2 * np.pi, (n, 3))
    return {"x": lens["x0"] + r * np.cos(a), "y": lens["y0"] + r * np.sin(a), "R_e": rng.uniform(0.08, 0.35, n),
            "n_s": rng.uniform(0.5, 2.5, n), "e1": e1, "e2": e2, "mag": ref_mag, "n_clumps": n_clumps,
            "f_clumps": f_clumps, "clump_dx": cr * np.cos(ca), "clump_dy": cr * np.sin(ca),
            "clump_sigma": rng.uniform(0.02, 0.06, (n, 3)), "clump_w": rng.dirichlet(np.ones(3), n)}


def _mag_split(mag, fraction):
    """Magnitude of ``fraction`` of a total ``mag`` (absent for fraction 0)."""
    return MISSING_MAG if fraction <= 0 else float(mag - 2.5 * np.log10(fraction))


def lenstronomy_kwargs(i, lens, light, src, band_offset_lens, band_offset_src, disc_offset):
    """lenstronomy's keyword lists (magnitudes in place of amplitudes) for system i in one band."""
    kl = [{"theta_E": lens["theta_E"][i], "e1": lens["e1"][i], "e2": lens["e2"][i],
           "center_x": lens["x0"][i], "center_y": lens["y0"][i]}]
    if "slope" in lens:  # a power law in an external shear (lenstronomy's EPL and SHEAR)
        kl[0]["gamma"] = lens["slope"][i]
        kl.append({"gamma1": lens["gamma1"][i], "gamma2": lens["gamma2"][i], "ra_0": 0.0, "dec_0": 0.0})
    ks = []
    m_src = src["mag"][i] + band_offset_src
    f_c = src["f_clumps"][i]
    e1, e2 = src["e1"][i], src["e2"][i]
    ks.append({"magnitude": _mag_split(m_src, 1 - f_c), "R_sersic": src["R_e"][i], "n_sersic": src["n_s"][i],
               "e1": e1, "e2": e2, "center_x": src["x"][i], "center_y": src["y"][i]})
    for k in range(3):
        f = f_c * src["clump_w"][i, k] if k < src["n_clumps"][i] else 0.0
        ks.append({"magnitude": _mag_split(m_src, f), "sigma": src["clump_sigma"][i, k],
                   "center_x": src["x"][i] + src["clump_dx"][i, k], "center_y": src["y"][i] + src["clump_dy"][i, k]})
    kll = []
    if light is not None:
        m = light["mag"][i] + band_offset_lens
        fd = light["f_disc"][i]
        le1, le2 = _q_to_e(light["q"][i], light["phi"][i])
        de1, de2 = _q_to_e(light["q_d"][i], light["phi"][i])
        kll.append({"magnitude": _mag_split(m, 1 - fd), "R_sersic": light["R_e"][i], "n_sersic": light["n_s"][i],
                    "e1": le1, "e2": le2, "center_x": lens["x0"][i], "center_y": lens["y0"][i]})
        kll.append({"magnitude": _mag_split(m + disc_offset * light["disc_blue"][i], fd), "R_sersic": light["R_d"][i],
                    "n_sersic": 1.0, "e1": de1, "e2": de2, "center_x": lens["x0"][i], "center_y": lens["y0"][i]})
    return kl, ks, kll


# ------------------------------------------------------------------------------------------ PSFs
def moffat_kernel(fwhm_pix, beta, half):
    """A pixel-integrated (5x5 sub-pixels) round Moffat kernel, unit sum."""
    s = 5
    g = (np.arange((2 * half + 1) * s) - ((2 * half + 1) * s - 1) / 2) / s
    r2 = g[None, :] ** 2 + g[:, None] ** 2
    alpha = fwhm_pix / (2 * math.sqrt(2 ** (1 / beta) - 1))
    k = (1 + r2 / alpha**2) ** (-beta)
    k = k.reshape(2 * half + 1, s, 2 * half + 1, s).mean((1, 3))
    return k / k.sum()


def gaussian_kernel(fwhm_pix, half):
    s = 5
    g = (np.arange((2 * half + 1) * s) - ((2 * half + 1) * s - 1) / 2) / s
    sig = fwhm_pix / 2.3548
    k = np.exp(-(g[None, :] ** 2 + g[:, None] ** 2) / (2 * sig**2))
    k = k.reshape(2 * half + 1, s, 2 * half + 1, s).mean((1, 3))
    return k / k.sum()


def hst_psfs():
    """The 56 empirical WFC3/UVIS F814W PSFs (4x supersampled, 0.01"/px) binned to 0.04": (56, 25, 25)."""
    from astropy.io import fits

    path = SHARED / "psf" / "emp_psf_f814w.fits"
    if not path.exists():
        raise FileNotFoundError(f"{path}: the HST set needs the shared data's empirical PSF grid")
    grid = fits.getdata(path).astype(float)  # (56, 101, 101), centred on pixel 50
    cut = grid[:, 0:100, 0:100]  # 25 x 25 bins of 4: the centre pixel 50 falls in bin 12, at its sub-pixel 2
    k = cut.reshape(-1, 25, 4, 25, 4).sum((2, 4))
    k = np.clip(k, 0, None)
    return k / k.sum((1, 2), keepdims=True)


# ------------------------------------------------------------------------------------------ rendering
def band_config(survey, band):
    from lenstronomy.SimulationAPI.ObservationConfig.Euclid import Euclid
    from lenstronomy.SimulationAPI.ObservationConfig.LSST import LSST

    if survey == "lsst":
        kw = LSST(band=band, psf_type="GAUSSIAN").kwargs_single_band()
        kw.update(num_exposures=2, exposure_time=15.0)  # one 30 s visit (2 x 15 s snaps)
    elif survey == "lsst_finder":
        kw = LSST(band=band, psf_type="GAUSSIAN").kwargs_single_band()
        kw.update(num_exposures=1, exposure_time=3000.0, pixel_scale=0.18)  # Lanusse et al.'s single epoch
    elif survey == "euclid":
        kw = Euclid(band="VIS", psf_type="GAUSSIAN").kwargs_single_band()
        kw.update(pixel_scale=0.1)  # the estimator's grid (lenstronomy's VIS is 0.101")
    else:  # HST WFC3/UVIS F814W, one orbit
        kw = {"read_noise": 3.0, "pixel_scale": 0.04, "ccd_gain": 1.5, "exposure_time": 2200.0,
              "sky_brightness": 22.3, "magnitude_zero_point": 25.1, "num_exposures": 1, "seeing": None,
              "psf_type": "GAUSSIAN"}
    return kw


def render_one(numpix, kw_band, psf_kernel, kwargs, with_light, supersampling):
    """Noise-free arcs and lens light (e-/s) of one system in one band with lenstronomy's SimAPI."""
    from lenstronomy.SimulationAPI.sim_api import SimAPI

    kw = dict(kw_band)
    kw.update(psf_type="PIXEL", kernel_point_source=psf_kernel, seeing=None)
    lens_models = ["EPL", "SHEAR"] if len(kwargs[0]) == 2 else ["SIE"]
    model = {"lens_model_list": lens_models, "source_light_model_list": ["SERSIC_ELLIPSE"] + ["GAUSSIAN"] * 3,
             "lens_light_model_list": ["SERSIC_ELLIPSE", "SERSIC_ELLIPSE"] if with_light else []}
    sim = SimAPI(num_pix=numpix, kwargs_single_band=kw, kwargs_model=model)
    kl, ks_mag, kll_mag = kwargs
    kll, ks, _ = sim.magnitude2amplitude(kll_mag or None, ks_mag, None)
    im = sim.image_model_class({"supersampling_factor": supersampling})
    arcs = im.image(kl, ks, kll, lens_light_add=False)
    light = im.image(kl, ks, kll, source_add=False) if with_light else np.zeros_like(arcs)
    total = sum(10 ** (-0.4 * (k["magnitude"] - kw["magnitude_zero_point"])) for k in ks_mag)
    return arcs, light, total, sim.background_noise, kw["exposure_time"] * kw["num_exposures"]


def observe(rng, arcs, light, bkg, t_exp):
    """Poisson counts on the noise-free image and Gaussian sky + read noise: image and variance (e-/s)."""
    ideal = np.clip(arcs + light, 0, None)
    img = rng.poisson(ideal * t_exp) / t_exp + rng.normal(0, bkg, ideal.shape)
    return img, ideal / t_exp + bkg**2


def arc_snr(arcs, variance):
    """Lanusse et al. (2018, eq. 10) per band, lenskit's definition (`lenskit.simulation.assembly.arc_snr`)."""
    from lenskit.simulation.assembly import arc_snr as snr

    return snr(torch.as_tensor(arcs), torch.as_tensor(variance))


# ------------------------------------------------------------------------------------------ the sets
LSST_SEEING = {"g": 0.77, "r": 0.73, "i": 0.71}
# the population's colours, reference band first: offsets (mag) of each band from the reference band
LENS_COLOUR = {"g": (1.25, 0.10), "r": (0.0, 0.0), "i": (-0.45, 0.06)}
SOURCE_COLOUR = {"g": (0.35, 0.15), "r": (0.0, 0.0), "i": (-0.15, 0.10)}
# the disc's colour relative to the bulge's (mag, times a blueness of 0.3-0.8 per lens): bluer outside
DISC_COLOUR = {"g": -0.7, "r": 0.0, "i": 0.25, "VIS": 0.0}
# --as-lenskit: a diagnosis that renders the population with one of lenskit's own choices in place of this
# script's (which part of the other simulator a network fails on); never the benchmark
AS_LENSKIT = ("colours", "psf", "neighbours", "placement", "sources", "lens_light", "sampling", "noise", "seeing",
              "lens_mag")


def lenskit_sources(rng, src):
    """--as-lenskit sources: ``src`` (`draw_sources`) with the Sérsic shapes of lenskit's Pearson et al. sources
    (`~lenskit.simulation.presets.pearson2019_source`: n ~ N(4, 1) within 0.5-8, R_e 0.05-0.8", 1 - q 0-0.5) and
    no clumps, drawn from ``rng`` (a stream of their own); positions and magnitudes kept."""
    n = len(src["R_e"])
    e1, e2 = _q_to_e(1 - rng.uniform(0.0, 0.5, n), rng.uniform(0, np.pi, n))
    return {**src, "R_e": rng.uniform(0.05, 0.8, n), "n_s": np.clip(rng.normal(4.0, 1.0, n), 0.5, 8.0), "e1": e1,
            "e2": e2, "n_clumps": np.zeros(n, int), "f_clumps": np.zeros(n)}


def lenskit_lens_light(rng, lens, light):
    """--as-lenskit lens_light: ``light`` (`draw_lens_light`) as lenskit's LSST lens galaxies, drawn from ``rng``
    (a stream of their own): one Sérsic component (n 2.5-5.5, R_e 0.5-2.0"), no disc, its axis ratio the mass's
    divided by N(1.02, 0.12) and its angle the mass's + N(0, 10 deg) (Pearson et al.); magnitudes kept."""
    n = len(light["mag"])
    q_l = np.clip(lens["q"] / np.clip(rng.normal(1.02, 0.12, n), 0.5, 2.0), 0.05, 1.0)
    return {**light, "q": q_l, "phi": lens["phi"] + np.deg2rad(rng.normal(0, 10, n)),
            "R_e": rng.uniform(0.5, 2.0, n), "n_s": rng.uniform(2.5, 5.5, n), "f_disc": np.zeros(n)}


def lenskit_colours(bands):
    """lenskit's LSST lens and source colours (its typical offsets, its default 0.1 mag scatter) as this script's."""
    from lenskit.instruments.lsst import LSST
    from lenskit.simulation.drawing import GENERIC_PRIORS

    scatter, typical = GENERIC_PRIORS["colour_scatter"], LSST.colours
    return ({b: (typical[b][0], scatter if typical[b][0] else 0.0) for b in bands},
            {b: (typical[b][1], scatter if typical[b][1] else 0.0) for b in bands})


def survey_set(survey, n, seed, mass="sie", as_lenskit=()):
    """
    Pearson et al. protocol systems for ``survey`` ("lsst" g, r, i or "euclid" VIS) until ``n`` pass their
    selection: images with and without (subtracted) lens light, variance, truths.

    ``as_lenskit`` (a diagnosis): "colours", lenskit's LSST colours; "psf", Gaussian PSFs of the same FWHMs;
    "placement", sources uniform within theta_E (Pearson et al.'s "within the Einstein radius") instead of 0.6
    theta_E; "sources", lenskit's Pearson et al. source shapes (`lenskit_sources`); "lens_light", lenskit's lens
    galaxies (`lenskit_lens_light`); "sampling", each pixel's surface brightness at its centre (lenskit's default
    ``supersample=1``) instead of averaged over 3 x 3 sub-pixels; "noise", lenskit's LSST zero points (0.3-0.55 mag
    deeper) and read noise (5 e-); "seeing", lenskit's LSST seeing (0.7" in every band and image); "lens_mag",
    lenskit's LSST lens magnitudes (r 18.5-21.5 instead of 18-21).  What they replace is drawn all the same, so that
    the rest of the population is this script's.
    """
    from lenskit.simulation.presets import PEARSON2019_THETA_E

    rng, mrng = np.random.default_rng(seed), np.random.default_rng([seed, 1])
    srng, lrng = np.random.default_rng([seed, 3]), np.random.default_rng([seed, 4])  # --as-lenskit sources, lens_light
    bands = ("g", "r", "i") if survey == "lsst" else ("VIS",)
    pix, numpix = (0.2 if survey == "lsst" else 0.1), 57
    kws = {b: band_config(survey, b) for b in bands}
    if "noise" in as_lenskit and survey == "lsst":  # lenskit's LSST zero points and read noise (e- per read)
        from lenskit.instruments.lsst import LSST as LenskitLSST

        for b in bands:
            kws[b].update(magnitude_zero_point=LenskitLSST.ZERO_POINTS[b], read_noise=5.0, ccd_gain=1.0)
    mean, width = PEARSON2019_THETA_E[survey]
    lens_colour, source_colour = lenskit_colours(bands) if "colours" in as_lenskit and survey == "lsst" else \
        (LENS_COLOUR, SOURCE_COLOUR)
    out = {k: [] for k in ("with", "without", "variance", "params")}
    tried = 0
    while len(out["params"]) < n:
        m = 64
        tried += m
        th = np.clip(rng.normal(mean, width, m), 0.5, 2.5)
        q = np.clip(rng.normal(0.78, 0.12, m), 0.5, 1.0)
        lens = draw_mass(draw_lenses(rng, m, th, q, pix, 3 * pix), mrng, mass)
        lens_mag = rng.uniform(18.0, 21.0, m) if survey == "lsst" else rng.uniform(18.5, 21.5, m)
        if "lens_mag" in as_lenskit and survey == "lsst":  # lenskit's LSST lens galaxies, half a magnitude fainter
            lens_mag = lens_mag + 0.5
        light = draw_lens_light(rng, lens, lens_mag)
        src = draw_sources(rng, m, rng.uniform(20.5, 24.5, m) if survey == "lsst" else rng.uniform(21.0, 25.0, m),
                           th, lens, radius=1.0 if "placement" in as_lenskit else 0.6)
        if "sources" in as_lenskit:
            src = lenskit_sources(srng, src)
        if "lens_light" in as_lenskit:
            light = lenskit_lens_light(lrng, lens, light)
        col_l = {b: rng.normal(*lens_colour[b], m) if survey == "lsst" else np.zeros(m) for b in bands}
        col_s = {b: rng.normal(*source_colour[b], m) if survey == "lsst" else np.zeros(m) for b in bands}
        seeing = {b: (LSST_SEEING[b] * np.clip(1 + 0.12 * rng.standard_normal(m), 0.7, 1.4) if survey == "lsst"
                      else rng.uniform(0.15, 0.20, m)) for b in bands}
        if "seeing" in as_lenskit and survey == "lsst":  # lenskit's LSST seeing: 0.7" in every band and image
            seeing = {b: np.full(m, 0.7) for b in bands}
        beta = rng.uniform(2.5, 4.5, m)
        for i in range(m):
            arcs, lights, var_b, imgs, mu = [], [], [], [], []
            for b in bands:
                fw = seeing[b][i] / pix
                half = int(min(28, math.ceil(4 * fw)))
                k = moffat_kernel(fw, beta[i], half) if survey == "lsst" and "psf" not in as_lenskit \
                    else gaussian_kernel(fw, half)
                kwargs = lenstronomy_kwargs(i, lens, light, src, col_l[b][i], col_s[b][i], DISC_COLOUR[b])
                a, lt, total, bkg, t_exp = render_one(numpix, kws[b], k, kwargs, True,
                                                      1 if "sampling" in as_lenskit else 3)
                img, var = observe(rng, a, lt, bkg, t_exp)
                arcs.append(a)
                lights.append(lt)
                var_b.append(var)
                imgs.append(img)
                mu.append(a.sum() / total)
            arcs, lights, var_b, imgs = map(np.stack, (arcs, lights, var_b, imgs))
            snr = arc_snr(arcs[None], var_b[None])[0]
            best_seeing = min(seeing[b][i] for b in bands)
            mu_tot = float(np.mean(mu))
            R_e = src["R_e"][i]
            keep = (th[i] ** 2 > R_e**2 + best_seeing**2 / 2) and mu_tot > 3 and mu_tot * R_e > best_seeing \
                and snr.max() > 20
            if not keep:
                continue
            out["with"].append(imgs)
            out["without"].append(imgs - lights)
            out["variance"].append(var_b)
            out["params"].append({"theta_E": th[i], "e1": lens["e1"][i], "e2": lens["e2"][i], "x0": lens["x0"][i],
                                  "y0": lens["y0"][i], "arc_snr": float(snr.max()), "magnification": mu_tot,
                                  "psf_fwhm": float(np.mean([seeing[b][i] for b in bands]))})
            if len(out["params"]) == n:
                break
    out["tried"] = tried
    out["bands"], out["pixel_scale"] = bands, pix
    return out


def hst_set(n, seed, mass="sie"):
    """Hezaveh et al. protocol systems (no lens light) with real WFC3 PSFs until ``n`` have magnification >= 2."""
    rng, mrng = np.random.default_rng(seed), np.random.default_rng([seed, 1])
    psfs = hst_psfs()
    kw = band_config("hst", "F814W")
    out = {k: [] for k in ("without", "variance", "params")}
    tried = 0
    while len(out["params"]) < n:
        m = 32
        tried += m
        th = rng.uniform(0.1, 3.0, m)
        q = 1 - rng.uniform(0.0, 0.9, m) * rng.random(m) ** 0.5  # flat-ish in ellipticity up to 0.9, rounder on average
        lens = draw_mass(draw_lenses(rng, m, th, np.clip(q, 0.1, 1.0), 0.15, 0.5), mrng, mass)
        src = draw_sources(rng, m, rng.uniform(21.5, 24.5, m), th, lens)
        for i in range(m):
            k = psfs[rng.integers(len(psfs))]
            kwargs = lenstronomy_kwargs(i, lens, None, src, 0.0, 0.0, 0.0)
            a, _, total, bkg, t_exp = render_one(192, kw, k, kwargs, False, 2)
            mu = a.sum() / total
            if mu < 2:
                continue
            img, var = observe(rng, a, 0.0, bkg, t_exp)
            snr = arc_snr(a[None, None], var[None, None])[0]
            out["without"].append(img[None])
            out["variance"].append(var[None])
            out["params"].append({"theta_E": th[i], "e1": lens["e1"][i], "e2": lens["e2"][i], "x0": lens["x0"][i],
                                  "y0": lens["y0"][i], "arc_snr": float(snr.max()), "magnification": float(mu)})
            if len(out["params"]) == n:
                break
    out["tried"] = tried
    out["bands"], out["pixel_scale"] = ("F814W",), 0.04
    return out


def finder_set(n, seed, seeing_scale=1.0, as_lenskit=(), neighbours="all"):
    """Lanusse et al. protocol cutouts: half lenses (no S/N cut), half lens galaxies alone; line-of-sight galaxies.

    ``seeing_scale`` multiplies every FWHM (sharper or blurrier: a diagnosis); ``as_lenskit`` (diagnoses):
    "psf", Gaussian PSFs of the same FWHMs; "neighbours", lenskit's counts of
    line-of-sight galaxies (`lenskit_neighbours`); one band: "colours" changes nothing.  ``neighbours`` (a
    diagnosis): which of the drawn line-of-sight galaxies are rendered (`NEIGHBOURS`); the others are drawn all the
    same, so that every cutout keeps its lens, source, noise and the rest of its neighbours."""
    rng, nrng = np.random.default_rng(seed), np.random.default_rng([seed, 2])
    kw = band_config("lsst_finder", "g")
    pix, numpix = 0.18, 45
    images, labels, rows = [], [], []
    want = {True: n // 2, False: n - n // 2}  # exactly half lenses
    have = {True: 0, False: 0}
    while len(images) < n:
        m = 64
        th = rng.uniform(0.6, 2.6, m)
        q = np.clip(rng.normal(0.78, 0.12, m), 0.4, 1.0)
        lens = draw_lenses(rng, m, th, q, pix, 3 * pix)
        lens_mag = rng.uniform(19.0, 22.0, m)
        light = draw_lens_light(rng, lens, lens_mag)
        src = draw_sources(rng, m, rng.uniform(23.0, 27.5, m), th, lens)
        is_lens = rng.random(m) < 0.5
        seeing = np.clip(rng.normal(0.75, 0.1, m), 0.55, 1.0) * seeing_scale
        beta = rng.uniform(2.5, 4.5, m)
        for i in range(m):
            if have[bool(is_lens[i])] == want[bool(is_lens[i])]:
                continue
            fw = seeing[i] / pix
            half = int(min(22, math.ceil(4 * fw)))
            k = gaussian_kernel(fw, half) if "psf" in as_lenskit else moffat_kernel(fw, beta[i], half)
            kwargs = lenstronomy_kwargs(i, lens, light, src, 0.0, 0.0, DISC_COLOUR["g"])
            a, lt, total, bkg, t_exp = render_one(numpix, kw, k, kwargs, True, 3)
            if not is_lens[i]:  # the same galaxy, nothing behind it
                a = np.zeros_like(a)
            # line-of-sight galaxies: 0-4 unlensed Sérsic galaxies anywhere in the cutout
            los = np.zeros_like(a)
            drawn = [draw_los(rng, numpix, pix) for _ in range(rng.poisson(1.5))]
            if "neighbours" in as_lenskit:  # the same stream drawn, lenskit's counts rendered (a stream of their own)
                drawn = lenskit_neighbours(nrng, numpix, pix)
            for params in drawn:
                if rendered(params, neighbours):
                    los += render_los(params, numpix, kw, k)
            img, var = observe(rng, a, lt + los, bkg, t_exp)
            snr = float(arc_snr(a[None, None], var[None, None])[0].max()) if is_lens[i] else 0.0
            mu = a.sum() / total if is_lens[i] else 0.0
            if is_lens[i] and mu < 5:  # the own test set's lenses are magnified >= 5: the same protocol
                continue
            images.append(img[None])
            labels.append(bool(is_lens[i]))
            have[bool(is_lens[i])] += 1
            shown = [g for g in drawn if rendered(g, neighbours)]
            near = [g["magnitude"] for g in shown if math.hypot(g["center_x"], g["center_y"]) < NEAR_RADIUS]
            rows.append({"theta_E": th[i] if is_lens[i] else 0.0, "arc_snr": snr, "magnification": float(mu),
                         "lens_mag_g": float(lens_mag[i]), "psf_fwhm": float(seeing[i]),
                         "neighbours_near": len(near), "neighbour_near_g": float(min(near, default=np.nan))})
            if len(images) == n:
                break
    return {"images": np.stack(images), "labels": np.asarray(labels), "params": rows, "bands": ("g",),
            "pixel_scale": pix}


#: --finder-neighbours: which line-of-sight galaxies of the finder's cutouts are rendered (a diagnosis)
NEIGHBOURS = {"all": lambda r, m: True,
              "near": lambda r, m: r < NEAR_RADIUS, "far": lambda r, m: r >= NEAR_RADIUS,
              "bright": lambda r, m: m < BRIGHT_MAG, "faint": lambda r, m: m >= BRIGHT_MAG}
NEAR_RADIUS = 3.0  # arcsec from the lens centre: where the arcs of theta_E 0.6-2.6" and their neighbours lie
BRIGHT_MAG = 23.5  # g


def rendered(params, which):
    """Whether the `draw_los` galaxy ``params`` is rendered under ``--finder-neighbours which``."""
    return NEIGHBOURS[which](math.hypot(params["center_x"], params["center_y"]), params["magnitude"])


def draw_los(rng, numpix, pix, magnitude=None):
    """One unlensed Sérsic galaxy (g 21-26, or ``magnitude``) at a random place in the cutout: its parameters."""
    half = numpix * pix / 2
    q = rng.uniform(0.3, 1.0)
    e1, e2 = _q_to_e(q, rng.uniform(0, np.pi))
    mag = rng.uniform(21.0, 26.0)
    return {"magnitude": mag if magnitude is None else magnitude, "R_sersic": rng.uniform(0.1, 0.8),
            "n_sersic": rng.uniform(0.7, 4.0), "e1": e1, "e2": e2, "center_x": rng.uniform(-half, half),
            "center_y": rng.uniform(-half, half)}


def lenskit_neighbours(rng, numpix, pix):
    """--as-lenskit neighbours: lenskit's default counts (`~lenskit.simulation.line_of_sight.LineOfSight`: 60 per
    square arcminute, r 20-27 with dN/dm ~ 10**(0.3 m), at most 12; g = r + 0.2, its source colour) of this
    script's galaxies."""
    from lenskit.simulation.line_of_sight import LineOfSight

    los = LineOfSight()
    area = (numpix * pix) ** 2 / 3600.0
    mags = los.draw_magnitudes(rng, min(int(rng.poisson(los.density * area)), los.max_per_stamp)) + 0.2
    return [draw_los(rng, numpix, pix, magnitude=m) for m in mags]


def render_los(params, numpix, kw, kernel):
    """The image of one `draw_los` galaxy through ``kernel``."""
    from lenstronomy.SimulationAPI.sim_api import SimAPI

    k = dict(kw, psf_type="PIXEL", kernel_point_source=kernel, seeing=None)
    sim = SimAPI(num_pix=numpix, kwargs_single_band=k, kwargs_model={"lens_light_model_list": ["SERSIC_ELLIPSE"]})
    kll, _, _ = sim.magnitude2amplitude([params])
    return sim.image_model_class({"supersampling_factor": 2}).image(kwargs_lens_light=kll)


# ------------------------------------------------------------------------------------------ measuring
def as_dataset(images, variance, params, bands, pixel_scale, instrument, lens_light):
    from astropy.table import QTable

    import lenskit
    from lenskit.core.provenance import Provenance

    table = None
    if params:
        table = QTable(rows=params)
        for col in ("theta_E", "x0", "y0", "psf_fwhm"):  # psf_fwhm: what an estimator with conditions reads
            if col in table.colnames:
                table[col].unit = "arcsec"
    prov = Provenance.current(config={"lens_light": lens_light, "simulator": "lenstronomy (benchmarks/cross_simulator.py)"})
    return lenskit.LensDataset(np.asarray(images, dtype=np.float32), table, bands=bands, pixel_scale=pixel_scale,
                               instrument=instrument, noise=None if variance is None else np.sqrt(variance),
                               provenance=prov)


def regression_figures(est, ds, metric, tta=1):
    from lenskit.estimators.metrics import summary

    e = est.predict(ds, batch_size=128, **({"tta": tta} if tta != 1 else {}))
    s = summary(e, ds.params)
    d = np.asarray(e.table["theta_E"]) - np.asarray(ds.params["theta_E"])
    return {"n": len(ds), "theta_E_" + metric: s["theta_E"][metric], "theta_E_bias": float(np.mean(d)),
            "e1_" + metric: s["e1"][metric], "e2_" + metric: s["e2"][metric],
            "theta_E_rms_snr_gt_50": float(np.sqrt(np.mean(d[np.asarray(ds.params["arc_snr"]) > 50] ** 2)))}


def own_figure(est, key, metric, tta=1):
    m = est.metrics if tta == 1 else est.metrics.get(f"tta{tta}", {})
    for name in (key, "test"):
        if name in m and "theta_E" in m[name]:
            return m[name]["theta_E"][metric], name
    return None, None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--sets", default=",".join(SETS), help=f"comma-separated from {', '.join(SETS)}")
    ap.add_argument("--n", type=int, default=None,
                    help=f"systems per set (default {DEFAULT_N}; the finder's {FINDER_N}: its threshold at 1%% "
                         f"false positives needs thousands of non-lenses)")
    ap.add_argument("--weights", default=None, help="measure these weights instead of the shipped ones "
                                                   "(one set only)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tta", default="1",
                    help="test-time augmentation (predict(tta=...)), comma-separated from 1, 2, 4, 8 to measure "
                         "several on one rendering (e.g. 1,8); the own-simulator figure is then the weight "
                         "file's tta one, where it has one")
    ap.add_argument("--store", action="store_true",
                    help="write each set's figures into its weight file's metrics (``cross_simulator``), beside "
                         "the own-simulator ones (float16, as shipped)")
    ap.add_argument("--finder-seeing-scale", type=float, default=1.0, metavar="S",
                    help="a diagnosis, not the benchmark: render the finder cutouts with every PSF FWHM times S "
                         "(0.8: a median of 0.6\", as the best of ten epochs of lenskit's test set)")
    ap.add_argument("--mass", default="sie", choices=MASSES,
                    help="the lenses' mass model: SIE (the benchmark), or the same population as power laws with SLACS's "
                         "slopes in an external shear (epl_shear; the estimators' sets only, not stored)")
    ap.add_argument("--finder-noise-match", action="store_true",
                    help="score the finder's cutouts after DeepLensFinder.match_noise, as lenskit find scores a "
                         "real cutout (a diagnosis: their units are the finder's already)")
    ap.add_argument("--finder-neighbours", default="all", choices=tuple(NEIGHBOURS),
                    help="a diagnosis, not the benchmark: render only some of the finder cutouts' line-of-sight "
                         f"galaxies (all drawn, so the cutouts are otherwise the same): near / far, within or beyond "
                         f"{NEAR_RADIUS:g}\" of the lens centre; bright / faint, brighter or fainter than g "
                         f"{BRIGHT_MAG:g}")
    ap.add_argument("--as-lenskit", default="", metavar="NAMES",
                    help="a diagnosis, not the benchmark: render the set with some of lenskit's own choices "
                         "in place of this script's, comma-separated from colours (lenskit's LSST lens and source "
                         "colours and their 0.1 mag scatter), psf (Gaussian PSFs of the same FWHMs, not Moffats) "
                         "and neighbours (the finder's line-of-sight galaxies in lenskit's default numbers and "
                         "magnitudes, 60 per square arcminute at r 20-27 with counts rising as 10**(0.3 m), not 1.5 "
                         "per cutout, 82 per square arcminute, uniform in g 21-26), placement (sources uniform "
                         "within theta_E, not 0.6 theta_E), sources (lenskit's Pearson et al. Sérsic sources: n about "
                         "4, R_e 0.05-0.8\", no clumps), lens_light (lenskit's lens galaxies: one Sérsic of n "
                         "2.5-5.5 and R_e 0.5-2\", no disc), sampling (each pixel's surface brightness at its "
                         "centre, lenskit's default supersample=1, not 3 x 3 sub-pixels), noise (lenskit's LSST zero "
                         "points and read noise), seeing (lenskit's LSST 0.7\" in every band and image) and lens_mag "
                         "(lenskit's LSST lens magnitudes, r 18.5-21.5): which difference a network fails "
                         "on")
    args = ap.parse_args(argv)
    as_lenskit = tuple(a.strip() for a in args.as_lenskit.split(",") if a.strip())
    if any(a not in AS_LENSKIT for a in as_lenskit):
        ap.error(f"--as-lenskit takes comma-separated names from {', '.join(AS_LENSKIT)}; got {args.as_lenskit!r}")
    if as_lenskit and args.store:
        ap.error("--as-lenskit changes the benchmark's images: it cannot --store")
    if args.mass != "sie" and args.store:
        ap.error("--mass epl_shear is a second benchmark beside the stored one: it cannot --store")
    if not 0.2 <= args.finder_seeing_scale <= 2.0:
        ap.error(f"--finder-seeing-scale must lie in 0.2-2; got {args.finder_seeing_scale}")
    if args.finder_neighbours != "all" and args.store:
        ap.error("--finder-neighbours changes the benchmark's cutouts: it cannot --store")
    if args.finder_seeing_scale != 1.0 and args.store:
        ap.error("--finder-seeing-scale changes the benchmark's cutouts: it cannot --store")
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    bad = [s for s in sets if s not in SETS]
    if bad:
        ap.error(f"unknown set(s) {bad}; expected some of {list(SETS)}")
    if args.finder_neighbours != "all" and "deeplens_lsst_g" not in sets:
        ap.error("--finder-neighbours applies to the finder's cutouts: pass --sets deeplens_lsst_g")
    if args.finder_noise_match and (args.store or "deeplens_lsst_g" not in sets):
        ap.error("--finder-noise-match measures the finder's cutouts matched to its noise (a diagnosis): pass --sets "
                 "deeplens_lsst_g, without --store")
    if args.mass != "sie" and "deeplens_lsst_g" in sets:
        ap.error("--mass applies to the estimators' sets; the finder's cutouts stay SIE lenses")
    if args.weights and len(sets) != 1:
        ap.error("--weights measures one set; pass --sets with one name")
    try:
        ttas = sorted({int(t) for t in str(args.tta).split(",") if t.strip()})
    except ValueError:
        ttas = []
    if not ttas or any(t not in (1, 2, 4, 8) for t in ttas):
        ap.error(f"--tta must be comma-separated values from 1, 2, 4, 8; got {args.tta!r}")
    try:
        import lenstronomy
    except ImportError:
        sys.exit("the cross-simulator sets are rendered with lenstronomy: pip install lenskit-astro[peers]")
    torch.set_num_threads(args.threads)
    from lenskit.estimators.pretrained import load_estimator

    res = {"lenstronomy": lenstronomy.__version__, "n": args.n or DEFAULT_N, "tta": ttas[0] if len(ttas) == 1 else ttas,
           "cpu_threads": torch.get_num_threads(), "mass": args.mass, "sets": {}}
    if as_lenskit:
        res["as_lenskit"] = list(as_lenskit)
    if args.finder_neighbours != "all":
        res["finder_neighbours"] = args.finder_neighbours
    if args.finder_noise_match:
        res["finder_noise_match"] = True
    cache = {}
    for name in sets:
        t0 = time.time()
        est = load_estimator(args.weights or name)
        if name.startswith(("lsst_gri", "euclid_vis")):
            survey = "lsst" if name.startswith("lsst") else "euclid"
            if survey not in cache:
                cache[survey] = survey_set(survey, args.n or DEFAULT_N, seed={"lsst": 2501, "euclid": 2502}[survey],
                                           mass=args.mass, as_lenskit=as_lenskit)
            d = cache[survey]
        elif name == "hst_wfc3":
            d = hst_set(args.n or DEFAULT_N, seed=2503, mass=args.mass)
        else:
            d = finder_set(args.n or FINDER_N, seed=2504, seeing_scale=args.finder_seeing_scale,
                           as_lenskit=as_lenskit, neighbours=args.finder_neighbours)
        render_seconds = round(time.time() - t0, 1)
        for tta in ttas:  # one rendering, measured with each augmentation
            t1 = time.time()
            entry = measure(est, name, d, tta, match_noise=args.finder_noise_match)
            entry["seconds"] = {"render": render_seconds, "measure": round(time.time() - t1, 1)}
            key = name if len(ttas) == 1 else f"{name} tta{tta}"
            res["sets"][key] = entry
            if args.store:
                store(est, name, args, entry, tta, lenstronomy.__version__)
            print(json.dumps({key: entry}), file=sys.stderr, flush=True)
    print(json.dumps(res, indent=1, default=float))


def measure(est, name, d, tta, match_noise=False):
    """The figures of one network on one rendered set, with test-time augmentation ``tta`` (and, for the finder,
    its cutouts matched to its training noise with ``match_noise``)."""
    from lenskit.estimators.finder_metrics import auroc, threshold_at_fpr, tpr_at_fpr

    if name.startswith(("lsst_gri", "euclid_vis")):
        light = not name.endswith("no_lens_light")
        ds = as_dataset(d["with"] if light else d["without"], d["variance"], d["params"], d["bands"],
                        d["pixel_scale"], est.expects.get("instrument"), True if light else "subtracted")
        fig = regression_figures(est, ds, "rms", tta)
        own, own_key = own_figure(est, "test_pearson2019", "rms", tta)
        entry = {"cross_simulator": fig, "own_simulator_theta_E_rms": own, "own_set": own_key,
                 "candidates_rendered": d["tried"]}
        entry["ratio"] = fig["theta_E_rms"] / own if own else None
        return entry
    if name == "hst_wfc3":
        ds = as_dataset(d["without"], d["variance"], d["params"], d["bands"], d["pixel_scale"],
                        est.expects.get("instrument"), False)
        fig = regression_figures(est, ds, "err68", tta)
        own, own_key = own_figure(est, "test", "err68", tta)
        return {"cross_simulator": fig, "own_simulator_theta_E_err68": own, "own_set": own_key,
                "candidates_rendered": d["tried"], "ratio": fig["theta_E_err68"] / own if own else None}
    ds = as_dataset(d["images"], None, d["params"], d["bands"], d["pixel_scale"],
                    est.expects.get("instrument"), True)
    if match_noise:
        ds = est.match_noise(ds)
    p = np.asarray(est.predict(ds, batch_size=256, **({"tta": tta} if tta != 1 else {}))
                   .table["p_lens"])
    lab = d["labels"]
    th = np.array([r["theta_E"] for r in d["params"]])
    snr = np.array([r["arc_snr"] for r in d["params"]])
    bright = ~lab | (snr > 20)
    sel = ~lab | ((th > 1.4) & (snr > 20))
    fig = {"n": len(lab), "lenses": int(lab.sum()), "lenses_snr_gt_20": int((lab & (snr > 20)).sum()),
           "auroc_all": auroc(p, lab), "auroc_snr_gt_20": auroc(p[bright], lab[bright]),
           "completeness_fpr1pc_theta_gt_1.4_snr_gt_20": tpr_at_fpr(p[sel], lab[sel], 0.01)}
    # where it fails: completeness at the same threshold for faint (S/N 20-40) and bright arcs, and the false
    # positives among bright (g < 20) and fainter lens galaxies
    thr = threshold_at_fpr(p[sel], lab[sel], 0.01)  # the threshold of the headline completeness
    big = lab & (th > 1.4)
    for key, m in (("snr_20_40", big & (snr > 20) & (snr <= 40)), ("snr_gt_40", big & (snr > 40))):
        fig[f"completeness_fpr1pc_theta_gt_1.4_{key}"] = float(np.mean(p[m] >= thr)) if m.any() else None
        fig[f"lenses_theta_gt_1.4_{key}"] = int(m.sum())
    fw = np.array([r.get("psf_fwhm", np.nan) for r in d["params"]])
    for key, m in (("seeing_lt_0.75", big & (snr > 20) & (fw < 0.75)), ("seeing_gt_0.75", big & (snr > 20) & (fw >= 0.75))):
        fig[f"completeness_fpr1pc_theta_gt_1.4_snr_gt_20_{key}"] = float(np.mean(p[m] >= thr)) if m.any() else None
        fig[f"lenses_theta_gt_1.4_snr_gt_20_{key}"] = int(m.sum())
    mag = np.array([r.get("lens_mag_g", np.nan) for r in d["params"]])
    for key, m in (("lens_g_lt_20", ~lab & (mag < 20)), ("lens_g_gt_20", ~lab & (mag >= 20))):
        fig[f"fpr_at_threshold_{key}"] = float(np.mean(p[m] >= thr)) if m.any() else None
    # the false positives and the lenses found with and without a line-of-sight galaxy within NEAR_RADIUS of the lens
    near = np.array([r.get("neighbours_near", 0) > 0 for r in d["params"]])
    for key, m in (("neighbour_near", near), ("no_neighbour_near", ~near)):
        fig[f"fpr_at_threshold_{key}"] = float(np.mean(p[~lab & m] >= thr)) if (~lab & m).any() else None
        fig[f"completeness_fpr1pc_theta_gt_1.4_snr_gt_20_{key}"] = (
            float(np.mean(p[big & (snr > 20) & m] >= thr)) if (big & (snr > 20) & m).any() else None)
        fig[f"non_lenses_{key}"] = int((~lab & m).sum())
    fig["false_positives_with_neighbour_near"] = int((~lab & near & (p >= thr)).sum())
    fig["false_positives"] = int((~lab & (p >= thr)).sum())
    own = {}
    own_key = "single_epoch" if tta == 1 else f"single_epoch_tta{tta}"
    for row in est.metrics.get("test", {}).get(own_key, {}).get("completeness_at_validation_threshold", []):
        if row["theta_E_min"] == 1.4 and row["snr_min"] == 20.0:
            own = {"auroc_theta_gt_1.4_snr_gt_20": row["auroc"], "completeness_theta_gt_1.4_snr_gt_20": row[
                "completeness"]}
    return {"cross_simulator": fig, "own_simulator": own}


def store(est, name, args, entry, tta, version):
    """Write one set's figures into the weight file's metrics (``cross_simulator``; ``tta<k>`` beside)."""
    from lenskit.estimators.pretrained import WEIGHTS_DIR

    w = args.weights or name
    path = Path(w) if str(w).endswith(".asdf") else WEIGHTS_DIR / f"{w}.asdf"
    n = args.n or (FINDER_N if name == "deeplens_lsst_g" else DEFAULT_N)
    cmd = f"python benchmarks/cross_simulator.py --sets {name} --n {n}" + (
        f" --weights {Path(str(w)).stem}" if args.weights else "") + (f" --tta {tta}" if tta != 1 else "")
    record = {"figures": entry["cross_simulator"], "lenstronomy": version, "set": name, "command": cmd}
    old = est.metrics.get("cross_simulator", {})
    if tta == 1:  # the plain figures, beside any tta ones measured before
        est.metrics["cross_simulator"] = {**{k: v for k, v in old.items() if k.startswith("tta")}, **record}
    else:
        est.metrics["cross_simulator"] = {**old, f"tta{tta}": record}
    est.save(path, dtype=np.float16)


if __name__ == "__main__":
    main()
