"""
The three papers' simulation recipes, and their test sets, as library calls.

Each preset returns a configured simulator, so a paper's setting is one line
and a user's variant is one keyword away::

    from lenskit.simulation import presets

    sim = presets.hezaveh2017(seed=1)                        # HST WFC3, Hezaveh et al. (2017)
    test = presets.pearson2019_test_set("lsst", 2000)        # Pearson et al. (2019)'s test set, LSST g, r, i
    finder = presets.lanusse2018(mode="single_epoch", seed=3)  # Lanusse et al. (2018) labelled cutouts

The shipped estimators were trained on lenskit's own source mixture with real
galaxies (their recipes are recorded in their weight files); these presets
are the papers' settings, so that a figure can be compared with the paper's
on the paper's kind of data.
"""

import astropy.units as u

from lenskit.core.priors import LogUniform, Normal, Uniform
from lenskit.core.validation import as_float, check_choice, check_int
from lenskit.instruments.effects import MoffatPSF
from lenskit.plugins import get
from lenskit.simulation.finder import LensFinderSimulator
from lenskit.simulation.line_of_sight import LineOfSight
from lenskit.simulation.simulator import Simulator

__all__ = ["hezaveh2017", "pearson2019", "pearson2019_priors", "pearson2019_source", "pearson2019_test_set",
           "lanusse2018", "robust", "robust_priors", "robust_instrument", "robust_line_of_sight",
           "PEARSON2019_THETA_E"]

#: Einstein radius distribution of Pearson et al. (2019, Fig. 1): survey -> (mean, width) in arcsec.
PEARSON2019_THETA_E = {"lsst": (1.22, 0.40), "euclid": (0.97, 0.45)}
_SURVEYS = ("lsst", "euclid")


def _instrument(name, test=False):
    if name == "hst":
        return get("instrument", "hst_wfc3")(test=test)
    if name == "lsst":
        return get("instrument", "lsst")(bands=("g", "r", "i"))
    return get("instrument", "euclid_vis")()


def hezaveh2017(test=False, source="sersic_clump", seed=None, **kwargs):
    """
    Hezaveh, Perreault Levasseur & Marshall (2017): HST WFC3 192 x 192 stamps at 0.04".

    SIE lenses with theta_E flat in 0.1-3", ellipticity flat up to 0.9 and
    the lens centre within the central 0.5"; clumpy Sérsic sources; their
    observational effects (PSF, noise, cosmic rays, hot pixels, masks,
    normalisation) and selection.  No lens light: their images are
    lens-subtracted.

    Parameters
    ----------
    test : bool
        Their test-set masks (covering under 2% of the arc flux) instead of
        the training masks.
    source : str or `~lenskit.core.Source`
        Default ``"sersic_clump"``, as in the paper.
    seed : int or `numpy.random.Generator`, optional
    **kwargs
        Further `~lenskit.Simulator` options (``split``, ``priors``, ``mass_model``
        instead of their SIE ...).

    Returns
    -------
    `~lenskit.Simulator`
    """
    return Simulator(mass_model=kwargs.pop("mass_model", "sie"), source=source,
                     instrument=_instrument("hst", test=test), seed=seed, selection="hezaveh2017", **kwargs)


def pearson2019_priors(survey, pixel_scale=None):
    """
    The test distribution of Pearson, Li & Dye (2019).

    Einstein radii as their Fig. 1 (LSST mean 1.22", width 0.40"; Euclid
    0.97", 0.45"), truncated to 0.5-2.5"; axis ratios q ~ N(0.78, 0.12)
    (Koopmans et al. 2006), here 1 - q in 0-0.5; lens centres N(0, 1 pixel)
    within 3 pixels.

    Parameters
    ----------
    survey : {"lsst", "euclid"}
    pixel_scale : float or Quantity, optional
        Default the survey's (0.2" LSST, 0.1" Euclid).
    """
    check_choice("survey", survey, _SURVEYS)
    if pixel_scale is None:
        pixel_scale = {"lsst": 0.2, "euclid": 0.1}[survey]
    ps = as_float(pixel_scale, "pixel_scale", u.arcsec)
    mean, width = PEARSON2019_THETA_E[survey]
    centre = Normal(0.0, ps, -3 * ps, 3 * ps)
    return {"theta_E": Normal(mean, width, 0.5, 2.5), "ellipticity": Normal(0.22, 0.12, 0.0, 0.5),
            "x0": centre, "y0": centre}


def pearson2019_source():
    """Pearson et al.'s source model: Sérsic galaxies with indices around 4 (N(4, 1) within 0.5-8)."""

    return get("source", "sersic")(n=Normal(4.0, 1.0, 0.5, 8.0))


def pearson2019(survey="lsst", lens_light=True, source=None, seed=None, **kwargs):
    """
    Pearson, Li & Dye (2019): LSST g, r, i or Euclid VIS 57 x 57 stamps.

    Their distribution (`pearson2019_priors`), their Sérsic sources
    (`pearson2019_source`) and their selection (arc S/N > 20, magnification
    > 3: the survey instruments' default).

    Parameters
    ----------
    survey : {"lsst", "euclid"}
    lens_light : {True, False, "subtracted"}
        With the lens light; without it; or as they removed it
        (``"subtracted"``: the true lens light subtracted from the noisy image,
        its shot noise kept).
    source : str or `~lenskit.core.Source`, optional
        Default `pearson2019_source`.
    seed : int or `numpy.random.Generator`, optional
    **kwargs
        Further `~lenskit.Simulator` options; ``priors`` are merged over theirs.

    Returns
    -------
    `~lenskit.Simulator`
    """
    check_choice("survey", survey, _SURVEYS)
    inst = _instrument(survey)
    priors = {**pearson2019_priors(survey, inst.pixel_scale), **kwargs.pop("priors", {})}
    source = pearson2019_source() if source is None else source
    return Simulator(mass_model=kwargs.pop("mass_model", "sie"), source=source, instrument=inst, seed=seed,
                     lens_light=lens_light, priors=priors, **kwargs)


def pearson2019_test_set(survey="lsst", n=2000, lens_light=True, seed=97):
    """
    Pearson et al.'s test set as they made it: `pearson2019` sampled ``n`` times.

    Without lens light it is their way of removing it
    (``lens_light=False`` gives ``"subtracted"``: the lens light's shot noise
    stays in the images and noise maps).  The default seed is the one of
    lenskit's published figures (``benchmarks/train_estimators.py``).

    Returns
    -------
    `~lenskit.LensDataset`
    """
    n = check_int("n", n, minimum=1)
    return pearson2019(survey, lens_light=True if lens_light else "subtracted", seed=seed).sample(n)


def lanusse2018(mode="single_epoch", bands=("g",), seed=None, robust=False, n_epochs=10, **kwargs):
    """
    Lanusse et al. (2018): labelled LSST cutouts for the CMU DeepLens lens finder.

    45 x 45 cutouts at 0.18" (their Table 1), lenses from velocity
    dispersions 150-350 km/s at z 0.2-0.7 with sources at z = 2, unlensed
    line-of-sight galaxies, half of the cutouts lensed.

    Parameters
    ----------
    mode : {"single_epoch", "stack"}
        The best-seeing single exposure, or the worst-seeing deep stack.
    bands : sequence of str
        ``("g",)`` as in the paper.
    seed : int or `numpy.random.Generator`, optional
    robust : bool
        Widen what a finder must not depend on (for training): Moffat PSFs
        with the same epoch seeing (``LSST.lanusse2018(psf="moffat")``) and
        the lens-light population of `robust_priors` (Sérsic indices 1-8,
        discs with twists and colour gradients, light-mass offsets, wider
        colour scatter; the finder keeps light and mass aligned), the
        Einstein radii, lens magnitudes and sizes staying the paper's.
    n_epochs : int or (int, int)
        Exposures per field (`~lenskit.instruments.lsst.LSST.lanusse2018`):
        the paper's 10, or a range such as ``(1, 10)`` for single-epoch
        cutouts whose seeing spans single visits (median 0.81" and worse)
        to the best of ten (about 0.6"), for a finder that must hold at any
        seeing.
    **kwargs
        Further `~lenskit.simulation.finder.LensFinderSimulator` options
        (``priors`` are merged over the robust ones).

    Returns
    -------
    `~lenskit.simulation.finder.LensFinderSimulator`
    """
    check_choice("mode", mode, ("single_epoch", "stack"))
    if "instrument" in kwargs and (robust or n_epochs != 10):
        raise ValueError("pass an instrument, or robust / n_epochs to make one, not both")
    if robust:
        inst = get("instrument", "lsst").lanusse2018(bands=tuple(bands), mode=mode, psf="moffat", n_epochs=n_epochs)
        wide = {k: v for k, v in robust_priors("lsst", inst.pixel_scale).items()
                if k.startswith("light_") or k == "colour_scatter"}
        wide.pop("light_R_e", None)  # the finder's sizes stay its instrument's
        kwargs = {**kwargs, "instrument": inst, "priors": {**wide, **kwargs.get("priors", {})}}
    elif n_epochs != 10:
        kwargs = {"instrument": get("instrument", "lsst").lanusse2018(bands=tuple(bands), mode=mode,
                                                                      n_epochs=n_epochs), **kwargs}
    return LensFinderSimulator(mode=mode, bands=bands, seed=seed, **kwargs)


# ------------------------------------------------------------------------------------------ robust training
_ROBUST_SURVEYS = ("lsst", "euclid", "hst")


def robust_priors(survey="lsst", pixel_scale=None):
    """
    Wide priors for training estimators that must not depend on the simulator's lens-light choices.

    Around lenskit's survey defaults (`lenskit.instruments.camera.survey_priors`), what an estimate of the
    mass must not depend on is drawn widely: lens light with Sérsic indices 1-8, effective radii 0.3-3",
    magnitudes 17.5-22.5 in the reference band, a second, exponential component (a disc: 0-80% of the flux,
    1-3 times the bulge's size, its own axis ratio, twisted by N(0, 20) deg and bluer by up to the source's
    colours), light-mass misalignments twice Pearson et al.'s (axis-ratio ratio N(1, 0.2), angle
    N(0, 20 deg)), light centres up to ~0.1" off the mass, wider colour scatter (0.25 mag), and lens centres
    N(0, 1.5 pixels) within 5 pixels of the stamp centre.  Einstein radii, mass ellipticities and source
    magnitudes keep the survey defaults.

    For HST (``"hst"``) the lens centres and magnitudes keep the Hezaveh et
    al. recipe's (centres within 0.25", lens F814W 17.5-21); the light's
    shape priors are the same.

    Parameters
    ----------
    survey : {"lsst", "euclid", "hst"}
    pixel_scale : float or Quantity, optional
        Default the survey's (0.2" LSST, 0.1" Euclid, 0.04" HST).
    """
    check_choice("survey", survey, _ROBUST_SURVEYS)
    if pixel_scale is None:
        pixel_scale = {"lsst": 0.2, "euclid": 0.1, "hst": 0.04}[survey]
    ps = as_float(pixel_scale, "pixel_scale", u.arcsec)
    centre = Normal(0.0, 1.5 * ps, -5 * ps, 5 * ps)
    if survey == "hst":
        centre, mags = Uniform(-0.25, 0.25), Uniform(17.5, 21.0)
    else:
        mags = Uniform(17.5, 22.5)
    return {"x0": centre, "y0": centre, "lens_mag": mags, "light_R_e": Uniform(0.3, 3.0),
            "light_n": Uniform(1.0, 8.0), "light_q_ratio": Normal(1.0, 0.2, 0.4, 2.5),
            "light_dphi": Normal(0.0, 20.0), "colour_scatter": 0.25, "light_disc_fraction": Uniform(0.0, 0.8),
            "light_offset": Normal(0.0, 0.04, -0.12, 0.12)}  # the disc's shape: the generic priors


def robust_line_of_sight(source=None):
    """
    Neighbours for training networks that must not depend on how crowded the field is.

    Each stamp draws its own density of unlensed galaxies, log-uniform in 30-300 per square arcminute
    (field to group: massive lens galaxies live in overdense places, and clustered counts scatter far more
    than Poisson's), with reference-band magnitudes 19-27 from counts flatter than the faint counts'
    (``dN/dm ~ 10**(0.2 m)``), so that neighbours as bright as the arcs are common, not a rarity; up to
    20 per stamp.  The default `~lenskit.simulation.line_of_sight.LineOfSight` (60 per square arcminute,
    20-27 with slope 0.3) is the average field of the papers' simulations.

    Parameters
    ----------
    source : str or `~lenskit.core.Source`, optional
        The neighbours' light profiles (default the `LineOfSight` default, Sérsic galaxies).
    """
    return LineOfSight(density=LogUniform(30.0, 300.0), mag_range=(19.0, 27.0), slope=0.2, source=source,
                       max_per_stamp=20)


def robust_instrument(survey="lsst", bands=("g", "r", "i"), fwhm=None):
    """
    The survey instrument with a PSF drawn per image instead of one fixed Gaussian.

    Moffat PSFs (`~lenskit.instruments.effects.MoffatPSF`) with beta 2-8 (from wide wings to nearly
    Gaussian), isophote ellipticity up to 0.08 and 10% scatter between bands; FWHM 0.5-1.0" for LSST
    (about its median seeing 0.7"), 0.14-0.22" for Euclid VIS (0.18" nominal).  Noise is the survey's.
    For HST (``"hst"``, WFC3 F814W with Hezaveh et al.'s training effects): Moffat PSFs of FWHM
    0.05-0.2" with beta 1.5-5 (a space PSF's extended wings) and ellipticity up to 0.1 instead of their
    Gaussian of rms up to 0.1".

    ``fwhm`` replaces that FWHM prior (arcsec: a number, a ``(low, high)``
    range or a `~lenskit.core.priors.Prior`), for example ``(0.6, 0.8)`` for
    PSFs of every shape about LSST's median seeing: what a network that is not
    told the seeing meets in images taken near the seeing it was made for.
    """
    check_choice("survey", survey, _ROBUST_SURVEYS)
    make, kw = _survey_maker(survey, bands)
    default = make(**kw)  # its noise, with the PSF replaced (passed to the constructor, so its config records it)
    if survey == "hst":
        psf = MoffatPSF(fwhm=Uniform(0.05, 0.2) if fwhm is None else fwhm, beta=Uniform(1.5, 5.0),
                        ellipticity=Uniform(0.0, 0.1))
        return make(effects=[psf, *default.effects[1:]])
    if fwhm is None:
        fwhm = Uniform(0.5, 1.0) if survey == "lsst" else Uniform(0.14, 0.22)
    psf = MoffatPSF(fwhm=fwhm, beta=Uniform(2.0, 8.0), ellipticity=Uniform(0.0, 0.08),
                    band_scatter=0.1 if len(default.bands) > 1 else 0.0)
    return make(**kw, effects=[psf, *default.effects[1:]])


def _survey_maker(survey, bands=("g", "r", "i")):
    """The survey instrument's class and its arguments: HST WFC3 (Hezaveh et al.'s recipe), LSST, Euclid VIS."""
    if survey == "hst":
        return get("instrument", "hst_wfc3"), {}
    if survey == "lsst":
        return get("instrument", "lsst"), {"bands": tuple(bands)}
    return get("instrument", "euclid_vis"), {}


def _survey_instrument(survey):
    """The survey instrument with its own effects (what `robust_instrument` starts from)."""
    make, kw = _survey_maker(survey)
    return make(**kw)


#: What `robust` can leave at the survey's defaults (``without``).
ROBUST_INGREDIENTS = ("psf", "lens_light", "centring", "mass")


def robust(survey="lsst", lens_light=None, source=None, seed=None, line_of_sight=True, without=(), psf_fwhm=None,
           **kwargs):
    """
    A training simulator for estimators that hold up off lenskit's own simulations.

    The survey instrument with per-image Moffat PSFs (`robust_instrument`), the wide lens-light and
    centring priors of `robust_priors`, unlensed line-of-sight galaxies in the stamps, and lenses that are
    not exactly isothermal: an elliptical power law (``epl``, density slopes N(2, 0.1) within 1.6-2.4)
    with external shear (modulus 0-0.1), whose ``theta_E``, ``e1``, ``e2``, ``x0`` and ``y0`` are what an
    estimator trained on it regresses (the SIE-equivalent parameters).  The test sets of
    ``benchmarks/cross_simulator.py`` are rendered by another code with choices of their own; this
    simulator is not tuned to them, it varies what an estimate must not depend on.

    For HST the network sees arcs after lens-light removal, as on real data:
    the lens light is observed and an imperfect model of it subtracted
    (``lens_light="residual"``, `lenskit.simulation.residuals`), so the arcs
    carry its shot noise and the residuals a fit leaves.

    Parameters
    ----------
    survey : {"lsst", "euclid", "hst"}
    lens_light : {True, False, "subtracted", "residual"}, optional
        Default True for LSST and Euclid, ``"residual"`` for HST.
    source : str or `~lenskit.core.Source`, optional
        Default ``"sersic_clump"``.
    seed : int or `numpy.random.Generator`, optional
    line_of_sight : bool or `~lenskit.simulation.line_of_sight.LineOfSight`
        Default True (the default `~lenskit.simulation.line_of_sight.LineOfSight`).
    without : sequence of str
        Ingredients left at the survey instrument's defaults, for ablations
        (which of them an estimate depends on): ``"psf"`` (the survey's own
        PSF instead of `robust_instrument`'s), ``"lens_light"`` (the
        default lens-light population instead of `robust_priors`' wide one),
        ``"centring"`` (the default lens centres) and ``"mass"`` (an SIE
        without shear).  Neighbours have ``line_of_sight``.
    psf_fwhm : float, (low, high) or `~lenskit.core.priors.Prior`, optional
        The PSFs' FWHM in arcsec instead of `robust_instrument`'s wide range
        (its ``fwhm``): ``(0.6, 0.8)`` keeps LSST's PSFs of every shape near
        its median seeing.  Not with ``without=("psf",)``.
    **kwargs
        Further `~lenskit.Simulator` options; ``priors`` are merged over `robust_priors`.

    Returns
    -------
    `~lenskit.Simulator`
    """
    check_choice("survey", survey, _ROBUST_SURVEYS)
    if isinstance(without, str):
        without = (without,)
    for name in without:
        check_choice("without", name, ROBUST_INGREDIENTS)
    if psf_fwhm is not None and "psf" in without:
        raise ValueError("psf_fwhm: the robust PSFs are left out (without='psf'); pass one or the other")
    inst = _survey_instrument(survey) if "psf" in without else robust_instrument(survey, fwhm=psf_fwhm)
    if lens_light is None:
        lens_light = "residual" if survey == "hst" else True
    wide = robust_priors(survey, inst.pixel_scale)  # the lens centres, and the rest is the lens light's
    wide = {k: v for k, v in wide.items()
            if ("centring" if k in ("x0", "y0") else "lens_light") not in without}
    priors = {**wide, **kwargs.pop("priors", {})}
    mass = "sie" if "mass" in without else ["epl", "external_shear"]
    return Simulator(mass_model=kwargs.pop("mass_model", mass), source="sersic_clump" if source is None else source,
                     instrument=inst,
                     seed=seed, lens_light=lens_light, priors=priors, line_of_sight=line_of_sight, **kwargs)
