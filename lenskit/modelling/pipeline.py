"""
From a real cutout to SIE parameters: deblend, estimate with a CNN, refine by maximum likelihood.

`model_lens` chains what lenskit offers for one real lens image (one band):

1. artefacts: cosmic rays and hot pixels are masked (`lenskit.modelling.outliers.outlier_mask`);
2. lens light: an elliptical Sérsic fit is subtracted
   (the ``sersic`` deblender, `~lenskit.deblenders.sersic.SersicDeblender`; skip it for images whose
   lens light is already removed);
3. CNN: the arcs are resampled (flux conserved) onto the shipped
   estimator's grid, centred on the lens light, and estimated in milliseconds;
   sources beyond where the lens's images can lie (a companion, a neighbour in the corner) are
   replaced by noise and the CNN asked again (``mask_neighbours``);
4. refinement: `lenskit.fit` (SIE + external shear, Sérsic source) on the arcs
   at the cutout's own resolution with its PSF and noise, within a box about
   the lens, the central ``core_radius`` (where the lens-light residuals
   are) masked, started from the CNN's estimate (and its other starts), with
   the Einstein radius bounded by the masked core and the box (otherwise a
   faint ring can be "explained" by an unlensed, elongated source).

Positions are in arcsec from the lens-light centre; ``phi`` is measured from
the image's +x axis (columns) towards +y (rows), and is converted to a
position angle east of north when the cutout has a WCS.
"""

import math
import os
import time
import warnings
from typing import Any

import astropy.units as u
import numpy as np
from astropy.table import QTable
from numpy.typing import ArrayLike

from lenskit.core.conventions import ellipticity_to_q_phi, phi_to_position_angle
from lenskit.core.exceptions import LenskitDataWarning
from lenskit.core.interfaces import Estimator
from lenskit.core.statistics import robust_sigma
from lenskit.core.validation import as_float
from lenskit.estimators.inputs import check_expects
from lenskit.estimators.pretrained import load_estimator
from lenskit.estimators.tta import check_targets
from lenskit.io.fits import Cutout, read_cutout
from lenskit.modelling.fit import fit
from lenskit.modelling.outliers import neighbour_mask, outlier_mask
from lenskit.plugins import get

__all__ = ["model_lens", "LensModel"]

#: `model_lens` (``mask_neighbours``): sources beyond ``max(NEIGHBOUR_FIELD x`` the network stamp's half-width,
#: ``NEIGHBOUR_SCALE[0] x theta_E + NEIGHBOUR_SCALE[1]`` arcsec) of the lens centre are neighbours, theta_E from
#: the CNN's answer with them (below).
NEIGHBOUR_FIELD = 0.9
NEIGHBOUR_SCALE = (2.0, 0.5)
#: ... with theta_E the CNN's first answer less this many of its own standard deviations (when it has one).
NEIGHBOUR_SIGMAS = 2.0
#: `model_lens` (``cnn_core``): radius (arcsec) of the disc about the lens centre masked in the CNN's input after
#: the lens light is removed (the deblender's residuals): the radius of the training's masks.
CNN_CORE = 0.2
#: Starts of the fit's search that `model_lens` refines at full resolution (``fit(n_refine=...)``).
MODEL_LENS_REFINE = 6
#: `model_lens` warns when the refined fit's Einstein radius and the CNN's differ by more than this many of their
#: combined standard deviations (``fit_cnn_tension``): the CNN's are calibrated on simulations (99.6% of its
#: errors within three), so a larger difference says that one of them failed.
FIT_CNN_TENSION = 3.0


class LensModel:
    """
    What `model_lens` found for one cutout.

    Attributes
    ----------
    table : `~astropy.table.QTable`
        One row: ``theta_E, e1, e2, q, phi, x0, y0`` of the refined fit (with
        ``*_std`` Laplace errors), the same with a ``cnn_`` prefix for the CNN
        (with ``cnn_*_std``, the network's own predicted standard deviation,
        when it has uncertainties -- a large one flags an image unlike its
        training set; see :doc:`/real_lenses`),
        ``pa`` / ``cnn_pa`` (degrees east of north, where a WCS exists),
        ``cnn_field_outside`` (the fraction of the network's field beyond the cutout, filled with the
        cutout's background noise: `~lenskit.io.fits.Cutout.check_field`),
        ``reduced_chi2``, ``fit_at_bound`` (the fitted parameters, comma-separated, that ended at an end of
        their range -- theta_E at the masked core or the box's edge: then the fit failed and its values are
        not measurements; empty for a fit inside its ranges), ``fit_no_error`` (those inside their ranges
        without a Laplace error: ``FitResult.no_error``), ``fit_cnn_tension`` (the fit's and the CNN's
        Einstein radii apart in units of their combined standard deviation, for networks with uncertainties:
        above `FIT_CNN_TENSION` `model_lens` warns that one of them failed), ``seconds_cnn``, ``seconds_fit``,
        ``seconds_deblend``.
    cutout : `~lenskit.io.fits.Cutout`
    arcs : ndarray
        The cutout with the lens light subtracted.
    lens_light : ndarray or None
    mask : ndarray of bool
        Pixels excluded from the fit (artefacts, core, outside the box), on the cutout's grid.
    box : tuple of slice
        The fitted region of the cutout.
    estimate : `~lenskit.Estimate`
        The CNN's estimate (in the frame of the resampled, lens-centred stamp).
    fit : `~lenskit.modelling.fit.FitResult` or None
    centre : (float, float)
        Pixel (x, y) of the lens centre the table's positions are measured from.
    arcs_cutout : `~lenskit.io.fits.Cutout` or None
        What the CNN step started from, on the cutout's grid: the arcs (neighbours
        replaced by noise) with the noise map and the mask of artefacts it used.
        ``model_lens(result.arcs_cutout, deblend=False, mask_outliers=False,
        mask_neighbours=False, centre=result.centre, refine=False)`` repeats that
        step exactly, so that one choice (the centre, say) can be changed alone.
    """

    def __init__(self, table, cutout, arcs, lens_light, mask, box, estimate, fit, centre=None, arcs_cutout=None):
        self.table = table
        self.arcs_cutout = arcs_cutout
        self.centre = centre
        self.cutout = cutout
        self.arcs = arcs
        self.lens_light = lens_light
        self.mask = mask
        self.box = box
        self.estimate = estimate
        self.fit = fit

    def __getitem__(self, name):
        return self.table[name][0]

    def __repr__(self):
        t = self.table[0]
        ml = "" if self.fit is None else f", fit theta_E={t['theta_E'].value:.3f}\" q={t['q']:.2f}"
        if self.fit is not None and self.fit.at_bound:
            ml += f" (at the end of its range: {t['fit_at_bound']})"
        if "fit_cnn_tension" in t.colnames and t["fit_cnn_tension"] > FIT_CNN_TENSION:
            ml += f" (fit and CNN {t['fit_cnn_tension']:.1f} sigma apart)"
        sd = f" +- {t['cnn_theta_E_std'].value:.3f}" if "cnn_theta_E_std" in t.colnames else ""
        return f"<LensModel CNN theta_E={t['cnn_theta_E'].value:.3f}{sd}\" q={t['cnn_q']:.2f}{ml}>"


def _tension(fit_value, fit_std, cnn_value, cnn_std):
    """``|fit - cnn|`` in units of their combined standard deviation (a fit without an error counts as exact)."""
    fit_std = fit_std if math.isfinite(fit_std) else 0.0
    sd = math.hypot(fit_std, cnn_std)
    diff = abs(fit_value - cnn_value)
    return diff / sd if sd > 0 else (0.0 if diff == 0 else math.inf)


def _background_noise(image, mask):
    h, w = image.shape
    yy, xx = np.indices(image.shape)
    outer = np.hypot(xx - (w - 1) / 2, yy - (h - 1) / 2) > 0.35 * min(h, w)
    use = ~mask & outer
    return robust_sigma(image[use if use.sum() > 50 else ~mask])


def _pa(cutout, phi):
    """Position angle east of north (deg, 0-180) of the image-frame angle ``phi``, or NaN without a WCS."""
    return np.nan if cutout.wcs is None else float(phi_to_position_angle(phi, cutout.wcs))


def model_lens(cutout: Cutout | str | os.PathLike | Any, estimator: str | Estimator = "hst_wfc3",
               deblend: bool = True, refine: bool = True, psf: ArrayLike | None = None,
               core_radius: float | u.Quantity = 0.35, box: float | u.Quantity = 3.0, mask_outliers: bool = True,
               centre: tuple[float, float] | None = None, fit_kwargs: dict[str, Any] | None = None,
               tta: int = 1, conditions: dict[str, Any] | None = None, mask_neighbours: bool = True,
               cnn_core: float | u.Quantity = CNN_CORE, band: str | None = None) -> LensModel:
    """
    SIE parameters of a real lens in one band: deblend, estimate with a CNN, refine by maximum likelihood.

    Parameters
    ----------
    cutout : `~lenskit.io.fits.Cutout`, path, or `~astropy.nddata.NDData` / `~astropy.nddata.CCDData`
        The image (``read_cutout`` for files, `~lenskit.io.fits.Cutout.from_nddata`
        for NDData; its noise map and PSF are used when present).  Without a
        noise map the background's robust sigma is used everywhere (the
        background-limited case).
    estimator : str or estimator
        A shipped estimator name or object whose ``expects`` has ``pixel_scale``.
    deblend : bool
        Subtract a Sérsic lens light first (False for lens-subtracted images).
    refine : bool
        Refine with `lenskit.fit` (False: the CNN alone).
    psf : array-like, optional
        PSF kernel on the cutout's pixel grid (overrides the cutout's).
    core_radius : float or `~astropy.units.Quantity`
        Arcsec about the lens centre excluded from the fit.
    cnn_core : float or `~astropy.units.Quantity`
        When the lens light is removed here (``deblend``), the disc of this radius (arcsec) about the lens
        centre is masked in the CNN's input (zeros, as the training's masks): the deblender's residuals lie
        there (default `CNN_CORE`, 0.2", the radius of the training's masks; 0 keeps the core).  On
        150 simulated lenses with a wide lens-light population the CNN's bias falls from -0.084" to +0.002"
        and its 68% error from 0.157" to 0.148" (lenses below 0.8": 0.127" to 0.153";
        ``benchmarks/core_mask.py``; see :doc:`/real_lenses`).
    box : float or `~astropy.units.Quantity`
        Half-size (arcsec) of the square about the lens that is fitted.
    mask_outliers : bool
        Mask cosmic rays and hot pixels (`~lenskit.modelling.outliers.outlier_mask`).
    centre : (float, float), optional
        Pixel (x, y, 0-based) of the lens centre.  Default: the lens light's
        peak (`~lenskit.io.fits.Cutout.light_centre`), or the middle of the
        cutout when ``deblend`` is False (a lens-subtracted image has no
        light centre).
    tta : {1, 2, 4, 8}
        Test-time augmentation of the CNN step (``estimator.predict(tta=...)``):
        averaged over this many symmetries of the pixel grid.
    fit_kwargs : dict, optional
        Passed to `lenskit.fit` (``n_starts``, ``adam_steps``, ...); ``n_refine`` is 6 unless given.
    conditions : dict, optional
        For an estimator with conditions (`~lenskit.estimators.cnn.CNNEstimator`), the numbers it reads
        beside the image, e.g. ``{"psf_fwhm": 0.7 * u.arcsec}`` (checked before any work).
    mask_neighbours : bool
        Sources farther from the lens than its images can lie are not the lens: after a first CNN
        estimate, the pixels of sources (`~lenskit.modelling.outliers.neighbour_mask`) beyond
        ``max(0.9 x`` the network stamp's half-width ``, 2 theta_E + 0.5")`` of the lens centre (3.46"
        for ``hst_wfc3`` up to theta_E = 1.5"), theta_E the first answer less two of the network's own
        standard deviations (a neighbour that inflates the answer inflates its uncertainty more, and
        must not widen the radius that protects it), are replaced by noise of the noise map about the
        background's median and the CNN asked again (``cnn_theta_E_first`` keeps its first answer,
        ``neighbour_pixels`` counts the replaced pixels).  The fit is not changed: masking them there
        moved SDSS J0029-0055's fit to another optimum (see :doc:`/real_lenses`).  The networks never
        saw neighbours in training.
    band : str, optional
        The filter the cutout was taken through, as the estimator names it
        (default: the cutout's own, from its header's ``FILTER``; a cutout
        whose header names none matches any).  The estimator refuses a band
        it was not trained on, before any work: for an image taken through a
        like filter (F775W for the F814W network), say so.

    Returns
    -------
    `LensModel`
    """
    if not isinstance(cutout, Cutout):
        cutout = Cutout.from_nddata(cutout) if hasattr(cutout, "uncertainty") else read_cutout(cutout)
    what = str(estimator) if isinstance(estimator, (str, os.PathLike)) else "the estimator"  # for messages
    if isinstance(estimator, (str, os.PathLike)):
        estimator = load_estimator(estimator)
    if "pixel_scale" not in getattr(estimator, "expects", {}):
        raise ValueError("estimator must record the pixel scale it expects (estimator.expects['pixel_scale'])")
    if tta != 1:
        check_targets(estimator.targets, tta, estimator.in_shape)
    if conditions is not None or getattr(estimator, "conditions", ()):
        if not hasattr(estimator, "condition_values"):
            raise ValueError(f"conditions: the estimator {estimator!r} reads none")
        estimator.condition_values(None, 1, conditions)  # refused now, not after the deblending
    if band is not None and (not isinstance(band, str) or not band.strip()):
        raise ValueError(f"band must be a filter name (a non-empty str); got {band!r}")
    band = band if band is not None else cutout.band
    if "bands" in estimator.expects:  # refused now, as the CNN step's predict would after the deblending
        check_expects(cutout.to_dataset(band=band), {"bands": estimator.expects["bands"]})
    core_radius = as_float(core_radius, "core_radius", u.arcsec)
    cnn_core = as_float(cnn_core, "cnn_core", u.arcsec)
    if not cnn_core >= 0:
        raise ValueError(f"cnn_core must be >= 0 arcsec; got {cnn_core}")
    box = as_float(box, "box", u.arcsec)
    if not core_radius >= 0:
        raise ValueError(f"core_radius must be >= 0 arcsec; got {core_radius}")
    if not box > core_radius:
        raise ValueError(f"box must exceed core_radius; got {box} and {core_radius}")
    kern = cutout.psf if psf is None else np.asarray(psf, float)
    if kern is not None:
        if kern.ndim != 2 or not np.all(np.isfinite(kern)) or kern.sum() <= 0:
            raise ValueError(f"psf must be a finite 2-D kernel with positive sum; got shape {kern.shape}")
        kern = kern / kern.sum()
    ps = cutout.pixel_scale
    mask = cutout.mask.copy()
    noise = cutout.noise
    if noise is None:
        noise = np.full(cutout.shape, _background_noise(cutout.image, mask))
    noise = np.where(mask, np.inf, noise)
    if mask_outliers:
        mask |= outlier_mask(cutout.image, noise)
    if centre is not None:
        cx, cy = (float(v) for v in centre)
        if not (0 <= cx < cutout.shape[1] and 0 <= cy < cutout.shape[0]):
            raise ValueError(f"centre must be a pixel (x, y) inside the {cutout.shape} cutout; got {centre}")
    elif deblend:
        cx, cy = cutout.light_centre()
    else:
        cx, cy = (cutout.shape[1] - 1) / 2, (cutout.shape[0] - 1) / 2
    # how much of the network's field the cutout covers: refused (or warned about) before any work
    field_outside = cutout.check_field(estimator.expects["pixel_scale"], estimator.in_shape[1:], centre=(cx, cy),
                                       what=what)
    # -- lens light ----------------------------------------------------------------------------------------
    t0 = time.perf_counter()
    lens_light = None
    arcs = cutout.image
    if deblend:
        work = Cutout(cutout.image, ps, noise=np.where(mask, np.nan, noise), psf=kern, mask=mask)
        res = get("deblender", "sersic")().separate(work.to_dataset(), psf=kern)
        arcs = np.where(mask, 0.0, res.arcs[0, 0])
        lens_light = res.lens_light[0, 0]
    t_deblend = time.perf_counter() - t0
    # -- CNN on the estimator's grid ------------------------------------------------------------------------
    yy, xx = np.indices(cutout.shape)
    cnn_mask = mask
    if deblend and cnn_core > 0:  # the deblender's residuals at the centre: masked, as the training's masks are
        cnn_mask = mask | (np.hypot(xx - cx, yy - cy) * ps < cnn_core)

    def cnn_step(image):
        cut = Cutout(image, ps, noise=np.where(cnn_mask, np.nan, noise), psf=kern, wcs=cutout.wcs, mask=cnn_mask)
        stamp = cut.to_stamp(estimator.expects["pixel_scale"], estimator.in_shape[1:], centre=(cx, cy), check=False)
        answer = estimator.predict(stamp.to_dataset(band=band, lens_light="deblended" if deblend else False),
                                   **({"tta": tta} if tta != 1 else {}),
                                   **({"conditions": conditions} if conditions else {}))
        return cut, answer, {k: float(getattr(answer.table[k][0], "value", answer.table[k][0]))
                             for k in ("theta_E", "e1", "e2", "x0", "y0")}

    t0 = time.perf_counter()
    arcs_cut, est, cnn = cnn_step(arcs)
    first = cnn["theta_E"]
    neighbours = np.zeros(cutout.shape, bool)
    if mask_neighbours:  # beyond where the images of the first answer can lie, and the stamp's inner 90%
        floor = NEIGHBOUR_FIELD * 0.5 * min(estimator.in_shape[1:]) * float(estimator.expects["pixel_scale"])
        sd = est.table["theta_E_std"][0] if "theta_E_std" in est.table.colnames else 0.0
        low = first - NEIGHBOUR_SIGMAS * float(getattr(sd, "value", sd))
        radius = max(floor, NEIGHBOUR_SCALE[0] * low + NEIGHBOUR_SCALE[1])
        neighbours = neighbour_mask(arcs, noise, (cx, cy), radius / ps, mask=mask)
        if neighbours.any():  # noise in their place (the same draw every time), and the CNN asked again
            rest = ~mask & ~neighbours
            level = float(np.median(arcs[rest])) if rest.any() else 0.0
            fill = level + np.random.default_rng(0).standard_normal(arcs.shape) * np.where(np.isfinite(noise),
                                                                                           noise, 0.0)
            arcs_cut, est, cnn = cnn_step(np.where(neighbours, fill, arcs))
    t_cnn = time.perf_counter() - t0
    row = QTable()
    q_c, phi_c = (float(np.ravel(v)[0]) for v in ellipticity_to_q_phi(cnn["e1"], cnn["e2"]))
    for k, v in cnn.items():
        unit = u.arcsec if k in ("theta_E", "x0", "y0") else 1
        row[f"cnn_{k}"] = [v] * unit
        if f"{k}_std" in est.table.colnames:  # the network's own uncertainty, when it has one
            row[f"cnn_{k}_std"] = [float(getattr(est.table[f"{k}_std"][0], "value", est.table[f"{k}_std"][0]))] * unit
    row["cnn_field_outside"] = [field_outside]
    row["cnn_q"] = [q_c]
    row["cnn_phi"] = [phi_c] * u.rad
    row["cnn_pa"] = [_pa(cutout, phi_c)] * u.deg
    row["cnn_theta_E_first"] = [first] * u.arcsec
    row["neighbour_pixels"] = [int(neighbours.sum())]
    row["seconds_deblend"] = [t_deblend] * u.s
    row["seconds_cnn"] = [t_cnn] * u.s
    # -- maximum-likelihood refinement ------------------------------------------------------------------------
    h, w = cutout.shape
    half = int(round(box / ps))
    ix, iy = int(round(cx)), int(round(cy))
    sl = (slice(max(iy - half, 0), min(iy + half + 1, h)), slice(max(ix - half, 0), min(ix + half + 1, w)))
    fit_mask = mask | (np.hypot(xx - cx, yy - cy) * ps < core_radius)
    result = None
    if refine:
        sub_h, sub_w = sl[0].stop - sl[0].start, sl[1].stop - sl[1].start
        # the fit's frame is centred on the box; the CNN's on the light centre
        off_x = (cx - (sl[1].start + (sub_w - 1) / 2)) * ps
        off_y = (cy - (sl[0].start + (sub_h - 1) / 2)) * ps
        init = {**cnn, "x0": cnn["x0"] + off_x, "y0": cnn["y0"] + off_y}
        k = kern
        if k is not None and k.shape[0] > 25 and k.shape[0] == k.shape[1]:  # the PSF core carries the likelihood
            c = k.shape[0] // 2
            k = k[c - 12:c + 13, c - 12:c + 13]
        if k is not None and (k.shape[0] != k.shape[1] or k.shape[0] % 2 == 0):
            raise ValueError(f"psf must be square and odd-sized for the fit; got shape {k.shape}")
        # the best six of the search's starts are refined (`fit`'s default: two), which the ranking after the
        # short search needs on real data: SDSS J0029-0055's fit missed its optimum with two from a CNN start
        # 0.001" away, and with four from the CNN start of the network trained with symmetry pairs
        kwargs = {"theta_E_range": (core_radius, box), "n_refine": MODEL_LENS_REFINE, **(fit_kwargs or {})}
        result = fit(arcs[sl], np.where(fit_mask, 1.0, noise)[sl], ps, psf=k, mask=fit_mask[sl], init=init,
                     lens_light=False, **kwargs)
        p = result.params
        vals = {n: float(getattr(p[n][0], "value", p[n][0])) for n in ("theta_E", "e1", "e2", "x0", "y0")}
        stds = {n: float(getattr(p[f"{n}_std"][0], "value", p[f"{n}_std"][0])) for n in vals}
        vals["x0"] -= off_x
        vals["y0"] -= off_y
        q_f, phi_f = (float(np.ravel(v)[0]) for v in ellipticity_to_q_phi(vals["e1"], vals["e2"]))
        for n in vals:
            unit = u.arcsec if n in ("theta_E", "x0", "y0") else 1
            row[n] = [vals[n]] * unit
            row[f"{n}_std"] = [stds[n]] * unit
        row["q"] = [q_f]
        row["phi"] = [phi_f] * u.rad
        row["pa"] = [_pa(cutout, phi_f)] * u.deg
        row["reduced_chi2"] = [result.reduced_chi2]
        # which fitted parameters ended at an end of their range (the core or the box for theta_E): not measurements
        row["fit_at_bound"] = [",".join(n for n, _, _ in result.at_bound)]
        # ... and which have no Laplace error though inside their ranges (no minimum found along them)
        row["fit_no_error"] = [",".join(result.no_error)]
        row["seconds_fit"] = [result.seconds] * u.s
        if "cnn_theta_E_std" in row.colnames:
            tension = _tension(vals["theta_E"], stds["theta_E"], cnn["theta_E"], row["cnn_theta_E_std"][0].value)
            row["fit_cnn_tension"] = [tension]
            if tension > FIT_CNN_TENSION:
                warnings.warn(LenskitDataWarning(
                    f"{cutout.path or 'the cutout'}: the fit's theta_E {vals['theta_E']:.3f}\" +- "
                    f"{stds['theta_E']:.3f}\" and the CNN's {cnn['theta_E']:.3f}\" +- "
                    f"{row['cnn_theta_E_std'][0].value:.3f}\" differ by {tension:.1f} of their standard "
                    f"deviations: one of them failed (a fit in another optimum, or an image unlike the CNN's "
                    f"training); look at the residuals (lenskit model's figure) before using either"), stacklevel=2)
    full_mask = np.ones(cutout.shape, bool)
    full_mask[sl] = fit_mask[sl]
    return LensModel(row, cutout, arcs, lens_light, full_mask, sl, est, result, centre=(cx, cy), arcs_cutout=arcs_cut)
