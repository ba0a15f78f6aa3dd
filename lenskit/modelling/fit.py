"""
Maximum-likelihood lens modelling: the baseline the CNNs replace.

`fit` models one image with any registered `~lenskit.core.MassModel` (SIE
by default; an external shear added through the composite model), an
elliptical Sérsic source and, optionally, an elliptical Sérsic lens light,
and maximises the Gaussian likelihood of the data with its noise map.  It
is assembled from parts that can be used alone:

* `lenskit.modelling.likelihood`: the model image (the one renderer, the
  PSF) and the likelihood, with the amplitudes solved exactly at every step;
* `lenskit.modelling.transforms`: each parameter's range mapped onto an
  unbounded coordinate (logarithms for radii, ``tanh`` for ellipticities and
  shears, logistic maps for bounded ones);
* `lenskit.modelling.starts`: a CNN estimate or the image's own light centre,
  the arcs' ring radius, a grid of Einstein radii, scattered starts, and the
  source placed where each start's lens equation maps the bright arc pixels;
* `lenskit.modelling.search`: every start optimised cheaply, the best
  refined by Adam and L-BFGS, and the Laplace approximation of the errors
  (the inverse Hessian by autograd, mapped with the transform's Jacobian).
"""

import time
import warnings
from collections.abc import Mapping
from typing import Any

import astropy.units as u
import numpy as np
import torch
from astropy.table import QTable
from numpy.typing import ArrayLike

from lenskit.core.exceptions import LenskitFitWarning
from lenskit.core.interfaces import MassModel
from lenskit.core.validation import as_float, as_real_array, check_int
from lenskit.modelling.likelihood import LIGHT, SOURCE, ImageLikelihood, lens_mass_model, light_centre_names
from lenskit.modelling.search import laplace_covariance, multistart
from lenskit.modelling.starts import light_centre, make_starts, place_source, ring_radius, start_values
from lenskit.modelling.transforms import LIGHT_RANGES, SOURCE_RANGES, ParameterTransform

__all__ = ["fit", "FitResult"]


class FitResult:
    """
    The maximum-likelihood fit of one image.

    Attributes
    ----------
    params : `~astropy.table.QTable`
        One row: best-fit values and ``<name>_std`` Laplace errors (in the
        mass model's units; arcsec for the source's and lens light's sizes and positions).
    model, residual : ndarray
        (H, W) model image and data minus model.
    lens_light : ndarray or None
        The fitted lens-light component.
    chi2, reduced_chi2 : float
    seconds : float
        Wall time of the fit.
    starts : list of float
        Final chi-square of each start of the search (NaN for those not refined).
    covariance : ndarray or None
        Laplace covariance of the parameters in ``names`` order.
    names : list of str
    mass_model : `~lenskit.core.MassModel`
        The fitted mass model (a composite when a shear was fitted).
    at_bound : list of (str, float, float)
        The parameters that ended at an end of their range, with their value and that end
        (`~lenskit.modelling.transforms.ParameterTransform.at_bounds`): the optimum lies outside the range,
        and their values and errors (NaN) are not measurements.  Empty for a fit inside its ranges.
    no_error : list of str
        The parameters (not at a bound) without a Laplace error: the likelihood's curvature along them is not
        positive at the optimum found (`~lenskit.modelling.search.laplace_covariance`), which is then no
        minimum there or the parameters are degenerate.  Empty for a fit at a minimum (or without ``laplace``).
    """

    def __init__(self, params, model, residual, lens_light, chi2, dof, seconds, starts, covariance, names,
                 mass_model=None, at_bound=(), no_error=()):
        self.params = params
        self.model = model
        self.residual = residual
        self.lens_light = lens_light
        self.chi2 = float(chi2)
        self.reduced_chi2 = float(chi2) / max(int(dof), 1)
        self.seconds = float(seconds)
        self.starts = list(starts)
        self.covariance = covariance
        self.names = list(names)
        self.mass_model = mass_model
        self.at_bound = list(at_bound)
        self.no_error = list(no_error)

    def __getitem__(self, name):
        return self.params[name][0]

    def __repr__(self):
        p = self.params[0]
        shown = " ".join(f"{n}={float(getattr(p[n], 'value', p[n])):.3f}" for n in self.names[:3])
        return f"<FitResult {shown} reduced chi2={self.reduced_chi2:.2f}, {self.seconds:.1f} s>"


def _unit(mass_model, name):
    if name in mass_model.param_units:
        return mass_model.param_units[name]
    return u.arcsec if name in ("src_R_e", "src_x", "src_y", "light_R_e", "light_x", "light_y") else u.dimensionless_unscaled


def _check_psf(psf):
    if psf is None:
        return None
    k = np.asarray(psf, dtype=np.float64)
    if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] % 2 == 0 or not np.all(np.isfinite(k)) or k.sum() <= 0:
        raise ValueError(f"psf must be a finite, square, odd-sized 2-D kernel; got shape {k.shape}")
    return torch.as_tensor(k / k.sum())


def _check_init(init, names):
    """
    ``init``'s starting values: finite numbers, and, in a plain dict, only the fit's parameter names (and
    ``*_std`` columns, as an estimate's row has): a misspelt name would otherwise be ignored, and the fit start
    from the defaults.  A table row (an `~lenskit.Estimate`'s) may carry other columns.
    """
    if init is None:
        return
    try:
        values = dict(init)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"init must be a dict or a table row of starting values; got {type(init).__name__}") from exc
    if isinstance(init, Mapping):
        unknown = [k for k in values if k not in names and not str(k).endswith("_std")]
        if unknown:
            raise ValueError(f"init: unknown parameter(s) {unknown}; this fit has {names}")
    for k, v in values.items():
        if k in names:
            try:
                x = float(getattr(v, "value", v))
            except (TypeError, ValueError) as exc:
                raise TypeError(f"init[{k!r}] must be a number; got {v!r}") from exc
            if not np.isfinite(x):
                raise ValueError(f"init[{k!r}] must be finite; got {x}")


def fit(image: ArrayLike, noise: ArrayLike, pixel_scale: float | u.Quantity, psf: ArrayLike | None = None,
        mask: ArrayLike | None = None, init: Mapping[str, Any] | None = None, shear: bool = True,
        lens_light: bool = True, n_starts: int = 12, search_steps: int = 60, n_refine: int = 2,
        adam_steps: int = 150, lbfgs_steps: int = 60, supersample: int = 2, seed: int = 0, laplace: bool = True,
        theta_E_range: tuple[float, float] | None = None, *, mass_model: str | MassModel = "sie") -> FitResult:
    """
    Maximum-likelihood fit of a lens model with a Sérsic source and Sérsic lens light.

    The search runs in two stages: ``n_starts`` starts are each optimised for
    ``search_steps`` Adam steps without supersampling (cheap); the
    ``n_refine`` best are then optimised at full resolution (Adam, then L-BFGS)
    and the best of those is kept.  Starts: ``init`` (e.g. a CNN estimate),
    the radius of the arcs' light (`~lenskit.modelling.starts.ring_radius`)
    with ``init``'s ellipticity, a third of ``n_starts`` on a logarithmic grid
    of Einstein radii across the image, and draws scattered about the first
    two; every start places the source where its own lens equation maps the
    bright arc pixels.

    Parameters
    ----------
    image, noise : array-like
        (H, W) data and its 1-sigma noise (same units).
    pixel_scale : float or `~astropy.units.Quantity`
        Arcsec per pixel.
    psf : array-like, optional
        PSF kernel (odd size, normalised here) on the image's pixel grid.
    mask : array-like of bool, optional
        True where pixels are excluded.
    init : dict or table row, optional
        Starting values (a CNN `~lenskit.Estimate` row works: ``theta_E, e1,
        e2, x0, y0``).  Further starts scatter about it.
    shear, lens_light : bool
        Model an external shear and the lens light.
    n_starts : int
        Starts of the search stage (the first is ``init`` itself).
    search_steps : int
        Adam steps per start in the search stage.
    n_refine : int
        Best starts refined at full resolution.
    adam_steps, lbfgs_steps : int
        Optimiser budget per refined start.
    supersample : int
        Sub-pixels per side for ray tracing (refinement stage).
    laplace : bool
        Compute the inverse-Hessian uncertainties.
    theta_E_range : (float, float), optional
        Bounds (arcsec) on the Einstein radius, e.g. the masked core and the
        fitted region: a prior that keeps the fit from explaining the arcs
        with an unlensed, elongated source.  Default: the model's range.
    mass_model : str or `~lenskit.core.MassModel`
        Any registered mass model (``lenskit.available("mass_model")``) or an
        instance; its ``param_ranges`` and ``param_defaults`` set the search.
        Default ``"sie"``.

    Returns
    -------
    `FitResult`
    """
    t0 = time.perf_counter()
    model = lens_mass_model(mass_model, shear)
    ranges = {**model.param_ranges, **SOURCE_RANGES, **LIGHT_RANGES}
    bounds = None
    if theta_E_range is not None:
        if "theta_E" not in model.param_names:
            raise ValueError(f"theta_E_range needs a mass model with theta_E; {model!r} has {list(model.param_names)}")
        lo, hi = (as_float(v, "theta_E_range", u.arcsec) for v in theta_E_range)
        if not 0 <= lo < hi:
            raise ValueError(f"theta_E_range must be (low, high) with 0 <= low < high arcsec; got {theta_E_range}")
        bounds = (lo, hi)
        ranges["theta_E"] = bounds
    img = as_real_array(image, "image")
    sig = as_real_array(noise, "noise")
    if img.ndim != 2 or min(img.shape) < 8:
        raise ValueError(f"image must be a 2-D array of at least 8 x 8 pixels; got shape {img.shape}")
    if sig.shape != img.shape:
        raise ValueError(f"noise must be shaped like image {img.shape}; got {sig.shape}")
    pixel_scale = as_float(pixel_scale, "pixel_scale", u.arcsec)
    if not pixel_scale > 0:
        raise ValueError(f"pixel_scale must be > 0 arcsec; got {pixel_scale}")
    m = np.zeros(img.shape, bool) if mask is None else np.asarray(mask, bool)
    if m.shape != img.shape:
        raise ValueError(f"mask must be shaped like image {img.shape}; got {m.shape}")
    m = m | ~np.isfinite(img) | ~np.isfinite(sig) | (sig <= 0)
    if m.all():
        raise ValueError("every pixel is masked or has a non-finite value or noise")
    for name, v, low in (("n_starts", n_starts, 1), ("n_refine", n_refine, 1), ("search_steps", search_steps, 0),
                         ("adam_steps", adam_steps, 0), ("lbfgs_steps", lbfgs_steps, 0), ("supersample", supersample, 1)):
        check_int(name, v, minimum=low)
    kern = _check_psf(psf)

    dt = torch.float64
    data = torch.as_tensor(np.where(m, 0.0, img), dtype=dt)
    wts = torch.as_tensor(np.where(m, 0.0, 1.0 / np.where(m, 1.0, sig)), dtype=dt)
    likelihood = ImageLikelihood(data, wts, pixel_scale, kern, model, lens_light, supersample)
    names = list(model.param_names) + list(SOURCE) + (list(LIGHT) if lens_light else [])
    cx, cy = light_centre_names(model)
    if lens_light and cx not in names:
        names += [cx, cy]
    transform = ParameterTransform(names, ranges)
    _check_init(init, names)

    # -- starts ----------------------------------------------------------------------------------------------
    base = start_values(model, init, light_centre(img, m, pixel_scale), lens_light)
    user_source = init is not None and "src_x" in dict(init)
    ring = ring_radius(img, sig, pixel_scale, (base[cx], base[cy]), m,
                       inner=0.3 if not lens_light else 0.5 * base.get("theta_E", 0.6))
    starts = make_starts(base, model, ring, n_starts, img.shape, pixel_scale, np.random.default_rng(seed), bounds)
    if not user_source:
        for st in starts:
            place_source(st, model, img, sig, m, pixel_scale, lens_light)

    # -- search ------------------------------------------------------------------------------------------------
    def cheap(z):
        return likelihood.nll(transform.physical(z), 1)

    def full(z):
        return likelihood.nll(transform.physical(z))

    (best, z), finals = multistart(cheap, full, [transform.free(st, dt) for st in starts], search_steps, n_refine,
                                   adam_steps, lbfgs_steps)
    vals = transform.physical(z)
    with torch.no_grad():
        model_img, amp, lens = likelihood.solve(vals)
    cov = laplace_covariance(full, z, transform) if laplace else None
    stds = {n: np.nan for n in names}
    if cov is not None:
        d = np.diag(cov)
        stds = {n: float(np.sqrt(d[i])) if d[i] > 0 else np.nan for i, n in enumerate(names)}
    at_bound = transform.at_bounds(z)
    for n, v, b in at_bound:
        stds[n] = np.nan  # the transform's derivative vanishes there: no Laplace error
    if at_bound:
        ends = ", ".join(f"{n} = {v:.4g} at {b:.4g}" for n, v, b in at_bound)
        warnings.warn(f"fit: {ends}, an end of its range; the optimum lies outside the range, so these values and "
                      f"their errors (NaN) are not measurements (FitResult.at_bound)", LenskitFitWarning, stacklevel=2)
    ended = {n for n, _, _ in at_bound}
    no_error = [n for n in names if laplace and n not in ended and not np.isfinite(stds[n])]
    if no_error:
        warnings.warn(f"fit: the likelihood is flat or not at a minimum along {', '.join(no_error)} (its curvature "
                      f"there is not positive: the search stopped short of the optimum, or these parameters are "
                      f"degenerate), so their Laplace errors are NaN (FitResult.no_error)", LenskitFitWarning,
                      stacklevel=2)

    # -- results --------------------------------------------------------------------------------------------
    row = QTable()
    for n in names:
        unit = _unit(model, n)
        row[n] = [float(vals[n])] * unit
        row[f"{n}_std"] = [stds[n]] * unit
    row["source_amplitude"] = [float(amp[0])]
    if lens_light:
        row["light_amplitude"] = [float(amp[1])]
    dof = int((~m).sum()) - len(names) - len(amp)
    model_np = model_img.numpy()
    lens_np = None if not lens_light else (amp[1] * lens).detach().numpy()
    return FitResult(row, model_np, np.where(m, 0.0, img - model_np), lens_np, 2 * best, dof,
                     time.perf_counter() - t0, finals, cov, names, model, at_bound, no_error)
